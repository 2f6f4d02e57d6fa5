"""COVID-19 cases prediction (Kaggle ml2021spring-hw1) end to end: validate, train, ensemble, submit.

Predict ``tested_positive`` on the last day of a window from the survey answers of the window's
days, the state, and the state's earlier days rebuilt by chaining the overlapping windows (history
features, :mod:`trainlab.data._covid_history`). :func:`train_covid` cross-validates the network and
the references (training mean, persistence, ridge with and without history) on the same folds of
every validation scheme (blocked in time, random, the course's every-10th-row split), simulates
the held-out later days (each state's last windows, predicted exactly as ``trainlab covid
predict`` would), trains the final ensemble and writes a Kaggle submission, the metrics, the
resolved config, the weights, the end of every training series and learning curves.
:func:`predict_covid` applies a saved model to any file in the test layout, building history from
the stored training days and the file's own earlier rows; :func:`load_for_diagnosis` hands one
member to ``trainlab diagnose``.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainlab._io import atomic_torch_save, atomic_write_json, atomic_write_text
from trainlab.config import from_dict, to_dict
from trainlab.data.covid import (
    LAYOUTS,
    TEST_FILE,
    TRAIN_FILE,
    CovidFrame,
    HistorySpec,
    SeriesTails,
    Standardizer,
    build_timeline,
    load_covid_dir,
    read_covid,
    time_order,
    with_history,
)
from trainlab.errors import DataError
from trainlab.tasks._covid_config import (
    PRESETS,
    CovidConfig,
    HistoryConfig,
    ModelConfig,
    load_covid_config,
    preset,
)
from trainlab.tasks._covid_cv import (
    REFERENCES,
    Member,
    SchemeResult,
    cross_validate,
    fit_ridge,
    fit_tiers,
    history_columns,
    holdout_problem,
    holdout_split,
    prepare,
    subset,
    tiered_predict,
)
from trainlab.tasks._covid_model import CovidMLP, describe, make_loss
from trainlab.tasks._covid_report import format_table, metrics_dict, plot_curves, plot_predictions

__all__ = [
    "PRESETS",
    "REFERENCES",
    "TEST_FILE",
    "TRAIN_FILE",
    "CovidConfig",
    "CovidRun",
    "Ensemble",
    "HistoryConfig",
    "ModelConfig",
    "evaluate_covid",
    "load_covid_config",
    "load_ensemble",
    "load_for_diagnosis",
    "predict_covid",
    "preset",
    "train_covid",
]

FORMAT_VERSION = 2
HISTORY_FILE = "history.npz"


@dataclass
class Ensemble:
    """The saved members of a run, its description (``model.json``) and the stored end of every
    training series (what history features at prediction time start from)."""

    members: list[Member]
    meta: dict[str, Any]
    tails: SeriesTails | None = None

    @property
    def spec(self) -> HistorySpec | None:
        """The history features the history members read (None: no history tier)."""
        h = self.meta.get("history")
        return None if not h else HistorySpec(int(h["lags"]), int(h["weeks"]))

    def prepare(self, frame: CovidFrame) -> tuple[CovidFrame, dict[str, int]]:
        """``frame`` with history features built from the stored training days and the frame's
        own earlier rows, and counts of what was found.

        Returns:
            The frame and ``{"rows", "history_rows", "chains", "attached_chains"}``.
        """
        spec = self.spec
        if spec is None:
            return frame, {"rows": len(frame), "history_rows": 0, "chains": 0, "attached_chains": 0}
        timeline = build_timeline(frame, self.tails)
        out = with_history(frame, spec, timeline=timeline)
        hist = [m for m in self.members if m.uses_history]
        mask = np.isfinite(out.X[spec.columns()].to_numpy()).all(axis=1) if hist else None
        info = {
            "rows": len(frame),
            "history_rows": 0 if mask is None else int(mask.sum()),
            "chains": len(timeline.state),
            "attached_chains": int(timeline.attached.sum()),
        }
        return out, info

    def predict_info(self, frame: CovidFrame) -> tuple[np.ndarray, dict[str, int]]:
        """(N,) predictions for a frame as read from a file, and the counts of :meth:`prepare`."""
        prepared, info = self.prepare(frame)
        history = [m for m in self.members if m.uses_history]
        fallback = [m for m in self.members if not m.uses_history]
        pred, _ = tiered_predict(history, fallback, prepared)
        return pred, info

    def predict(self, frame: CovidFrame) -> np.ndarray:
        """(N,) the members' average prediction of ``tested_positive`` (history tier where a
        row's history is known, fallback tier elsewhere)."""
        return self.predict_info(frame)[0]


@dataclass
class CovidRun:
    """What :func:`train_covid` produced."""

    out_dir: Path
    metrics: dict[str, Any]
    table: str
    ensemble: Ensemble
    test_predictions: np.ndarray
    seconds: float


def train_covid(
    data_dir: str | Path,
    out_dir: str | Path,
    config: CovidConfig | None = None,
    log: Callable[[str], None] | None = None,
) -> CovidRun:
    """Cross-validate, simulate the later days, train the ensemble and write every output.

    Args:
        data_dir: folder with ``covid.train.csv`` and ``covid.test.csv``.
        out_dir: where ``submission.csv``, ``metrics.json``, ``config.json``, ``model/`` and the
            plots go (created if needed).
        config: the settings (default: the ``default`` preset).
        log: called with progress lines (None: silent).

    Returns:
        A :class:`CovidRun` with the metrics, the table and the ensemble.
    """
    cfg = config or preset("default")
    with _small_model_threads():
        return _train(cfg, Path(data_dir), Path(out_dir), log)


@contextlib.contextmanager
def _small_model_threads() -> Iterator[None]:
    """One intra-op thread while training: a ~2,000-row MLP gains nothing from more, and on a
    busy machine spinning OpenMP workers made each step several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit_ensemble(
    cfg: CovidConfig,
    frame: CovidFrame,
    order: np.ndarray,
    data_dir: Path,
    cv: SchemeResult | None = None,
) -> Ensemble:
    """The final ensemble on ``frame``: ``ensemble_seeds`` networks per tier trained on every row
    (``final = "refit"``) or the members of ``cv`` (``"folds"``), with the series' ends stored.

    Args:
        cfg: the settings.
        frame: the training rows (without history columns).
        order: their time positions (:func:`time_order`).
        data_dir: recorded in the description.
        cv: the validation scheme's result with its members (needed for ``"folds"``; computed
            here when None).
    """
    full, timeline = prepare(cfg, frame)
    if cfg.final == "folds":
        if cv is None or not cv.members:
            cv = cross_validate(cfg, frame, order, cfg.validation, keep_members=True)
        members = cv.members
    else:
        history, fallback = fit_tiers(cfg, full, np.arange(len(frame)), None, "all")
        members = history + fallback
    members = sorted(members, key=lambda m: not m.uses_history)  # model.pt: the main tier
    spec = cfg.history.spec()
    tails = None
    if spec is not None and timeline is not None:
        keep = max(spec.depth + frame.layout.n_days, 2 * frame.layout.n_days)
        tails = timeline.tails(list(frame.layout.features), keep)  # type: ignore[attr-defined]
    return Ensemble(members, _model_meta(cfg, frame, data_dir, members), tails)


def later_days(
    cfg: CovidConfig,
    frame: CovidFrame,
    order: np.ndarray,
    data_dir: Path,
    tuned_alpha: float | None = None,
) -> dict[str, Any]:
    """The held-out evaluation, simulated on the training file.

    Each state's last ``holdout_rows`` windows are held out after ``holdout_gap`` dropped windows
    (no shared day), the ensemble is trained on the rest exactly as the final one is, and the
    held-out rows, without their target, go through the prediction path of ``trainlab covid
    predict`` (history from the stored training days and the rows' own earlier windows).

    Returns:
        MSE of the model and the references, and how many rows had history.
    """
    assert frame.y is not None
    t0 = time.perf_counter()
    tr_rows, ho_rows = holdout_split(order, frame.state, cfg.holdout_rows, cfg.holdout_gap)
    reduced = subset(frame, tr_rows)
    hold = subset(frame, ho_rows, with_target=False)  # the test layout: no target
    y = frame.y[ho_rows]
    ensemble = fit_ensemble(cfg, reduced, order[tr_rows], data_dir)
    pred, info = ensemble.predict_info(hold)
    prepared, _ = ensemble.prepare(hold)
    full, _ = prepare(cfg, reduced)
    assert reduced.y is not None
    r_order = order[tr_rows]
    fb = cfg.fallback_config()
    r_fb, grid_fb = fit_ridge(fb, full, reduced.state, r_order, np.arange(len(reduced)))
    preds = {
        "model": pred,
        "mean": np.full(len(hold), reduced.y.mean()),
        "persistence": hold.persistence(),
        "ridge_no_history": r_fb.predict(prepared),
    }
    hist = history_columns(cfg)
    rows = (
        np.flatnonzero(np.isfinite(full.X[hist].to_numpy()).all(axis=1))
        if hist
        else np.zeros(0, dtype=np.int64)
    )
    if len(rows) >= 2:
        r_h, grid_h = fit_ridge(cfg, full, reduced.state, r_order, rows, extra=hist)
        preds["ridge"] = tiered_predict([r_h], [r_fb], prepared)[0]
        if tuned_alpha is not None:
            k = cfg.ridge_alphas.index(tuned_alpha)
            preds["ridge_tuned"] = tiered_predict([grid_h[k]], [grid_fb[k]], prepared)[0]
    else:  # no history (or no training row with it): ridge is the fallback tier alone
        preds["ridge"] = preds["ridge_no_history"]
        if tuned_alpha is not None:
            preds["ridge_tuned"] = grid_fb[cfg.ridge_alphas.index(tuned_alpha)].predict(prepared)
    out: dict[str, Any] = {name: float(np.mean((p - y) ** 2)) for name, p in preds.items()}
    out.update(
        {
            "train_rows": len(tr_rows),
            "rows": len(ho_rows),
            "history_rows": info["history_rows"],
            "attached_chains": info["attached_chains"],
            "chains": info["chains"],
            "seconds": time.perf_counter() - t0,
        }
    )
    return out


def _train(
    cfg: CovidConfig, data_dir: Path, out: Path, log: Callable[[str], None] | None
) -> CovidRun:
    t0 = time.perf_counter()
    train, test = load_covid_dir(data_dir)
    assert train.y is not None
    order = time_order(train)
    say = log or (lambda _: None)
    say(
        f"{train.path}: {len(train)} rows ({train.layout.name} layout, {len(train.layout.states)} "
        f"states, {train.layout.n_days} days); {test.path}: {len(test)} rows"
    )
    results: dict[str, SchemeResult] = {}
    for scheme in cfg.report:
        say(f"{scheme} cross-validation:")
        results[scheme] = cross_validate(
            cfg, train, order, scheme, keep_members=scheme == cfg.validation, log=log
        )
    chosen = results[cfg.validation]
    later = None
    problem = holdout_problem(train.state, cfg.holdout_rows, cfg.holdout_gap)
    if cfg.later_days and problem is not None:
        say(f"later days: skipped ({problem})")
    elif cfg.later_days:
        tuned = results["blocked"].ridge_tuned_alpha if "blocked" in results else None
        later = later_days(cfg, train, order, data_dir, tuned)
        say(
            f"later days: model MSE {later['model']:.4f}  ridge {later['ridge']:.4f}  "
            f"persistence {later['persistence']:.4f}  ({later['rows']} rows, "
            f"{later['history_rows']} with history, {later['seconds']:.1f} s)"
        )
    ensemble = fit_ensemble(cfg, train, order, data_dir, chosen)
    test_pred, test_info = ensemble.predict_info(test)
    say(
        f"{test.path.name}: {test_info['history_rows']} of {len(test)} rows with history "
        f"({test_info['attached_chains']} of {test_info['chains']} chains continue the training "
        "days); the rest by the fallback networks"
    )

    metrics = metrics_dict(results, train.y, later)
    label = (
        "model ("
        + ", ".join(
            _describe(m).split(" (")[0]
            for m in (
                next((m for m in ensemble.members if m.uses_history), None),
                next((m for m in ensemble.members if not m.uses_history), None),
            )
            if m is not None
        )
        + ")"
    )
    hist_note = ""
    if history_columns(cfg):
        hist_note = f" + {len(history_columns(cfg))} history features"
    table = format_table(
        metrics,
        label,
        early_stopped_on_val=cfg.train.patience is not None or cfg.train.restore_best,
        inputs=f"feature set {cfg.features!r}{hist_note}, {cfg.target} target",
    )
    seconds = time.perf_counter() - t0
    summary = {
        "task": "covid",
        "data": str(data_dir.resolve()),
        "validation": cfg.validation,
        "final": cfg.final,
        "ensemble_members": len(ensemble.members),
        "model": ensemble.meta["description"],
        "seconds": seconds,
        "test_rows": test_info,
        "schemes": metrics,
    }
    if later is not None:
        summary["later_days"] = later
    elif cfg.later_days:
        summary["later_days_skipped"] = problem
    _write_outputs(out, cfg, ensemble, chosen.members, test, test_pred, summary, results, train.y)
    return CovidRun(out, summary, table, ensemble, test_pred, time.perf_counter() - t0)


def _describe(member: Member) -> str:
    a = member.architecture
    widths = list(a.get("widths", [])) if a else []  # type: ignore[call-overload]
    activation = str(a.get("activation", "")) if a else ""
    return describe(member.model, len(member.features), widths, activation)


def describe_members(members: list[Member]) -> str:
    """``linear 23-1 (...) with history; MLP 14-16-1 (...) fallback``-style summary."""
    hist = [m for m in members if m.uses_history]
    fb = [m for m in members if not m.uses_history]
    if not hist:
        return _describe(fb[0])
    text = f"{_describe(hist[0])} on rows with history"
    return text + (f"; {_describe(fb[0])} fallback" if fb else "")


def _model_meta(
    cfg: CovidConfig, train: CovidFrame, data_dir: Path, members: list[Member]
) -> dict[str, Any]:
    spec = cfg.history.spec() if any(m.uses_history for m in members) else None
    return {
        "task": "covid",
        "format_version": FORMAT_VERSION,
        "description": describe_members(members),
        "layout": train.layout.name,
        "input_columns": train.layout.input_columns(),
        "target": train.layout.target,
        "data": str(data_dir.resolve()),
        "config": to_dict(cfg),
        "history": None if spec is None else {"lags": spec.lags, "weeks": spec.weeks},
        "history_file": None if spec is None else HISTORY_FILE,
        "members": [
            {**m.meta(), "file": "model.pt" if i == 0 else f"member_{i}.pt"}
            for i, m in enumerate(members)
        ],
    }


def _write_outputs(
    out: Path,
    cfg: CovidConfig,
    ensemble: Ensemble,
    cv_members: list[Member],
    test: CovidFrame,
    test_pred: np.ndarray,
    summary: dict[str, Any],
    results: dict[str, SchemeResult],
    y: np.ndarray,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model_dir = out / "model"
    for member, info in zip(ensemble.members, ensemble.meta["members"]):
        atomic_torch_save(member.model.state_dict(), model_dir / info["file"])
    if ensemble.tails is not None and ensemble.meta["history_file"]:
        ensemble.tails.save(model_dir / ensemble.meta["history_file"])
    atomic_write_json(model_dir / "model.json", ensemble.meta)
    atomic_write_text(out / "submission.csv", submission_csv(test.ids, test_pred))
    atomic_write_json(out / "metrics.json", summary)
    atomic_write_json(out / "config.json", to_dict(cfg))
    if cfg.plot:
        plot_curves(
            cv_members,
            out / "curves.png",
            f"{ensemble.meta['description']}: {cfg.validation} folds, first seed",
        )
        plot_predictions(y, results[cfg.validation].oof, out / "predictions.png", cfg.validation)


def submission_csv(ids: np.ndarray, pred: np.ndarray) -> str:
    """Kaggle's format: ``id,tested_positive`` with one row per id, in the given order."""
    buf = io.StringIO()
    buf.write("id,tested_positive\n")
    for i, p in zip(ids, pred):
        buf.write(f"{int(i)},{float(p):.6f}\n")
    return buf.getvalue()


def _model_dir(path: str | Path) -> Path:
    path = Path(path)
    if (path / "model" / "model.json").is_file():
        return path / "model"
    if (path / "model.json").is_file():
        return path
    raise DataError(
        path,
        "not a trained covid model: no model.json here or in model/ "
        "(train one with 'trainlab covid train')",
    )


def load_ensemble(model_dir: str | Path) -> Ensemble:
    """Rebuild the ensemble saved by :func:`train_covid` (``OUT`` or ``OUT/model``)."""
    mdir = _model_dir(model_dir)
    try:
        meta = json.loads((mdir / "model.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(mdir / "model.json", f"unreadable model description: {e}") from None
    if not isinstance(meta, dict) or meta.get("task") != "covid":
        raise DataError(
            mdir / "model.json",
            f"not a covid model (task {meta.get('task')!r})"
            if isinstance(meta, dict)
            else "not a covid model description",
        )
    try:
        cfg = load_covid_config(overrides=meta["config"])
        members = []
        for info in meta["members"]:
            path = mdir / info["file"]
            members.append(_load_member(path, info, cfg))
        tails = None
        if meta.get("history"):
            tails = SeriesTails.load(mdir / meta["history_file"])
    except KeyError as e:
        raise DataError(mdir / "model.json", f"missing entry {e}") from None
    return Ensemble(members, meta, tails)


def _load_member(path: Path, info: dict[str, Any], cfg: CovidConfig) -> Member:
    if not path.is_file():
        raise DataError(path, "weights file missing")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and format errors of many kinds
        raise DataError(path, f"corrupt or unreadable weights ({type(e).__name__}: {e})") from None
    m = (
        from_dict(ModelConfig, info["architecture"], source=str(path))
        if info.get("architecture")
        else cfg.model
    )
    model = CovidMLP(
        len(info["features"]), m.widths, m.activation, m.batch_norm, m.dropout, m.linear_skip
    )
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        first = str(e).strip().splitlines()[0]
        raise DataError(path, f"weights do not fit the model in model.json ({first})") from None
    model.eval()
    return Member(
        info["name"],
        info["fold"],
        int(info["seed"]),
        model,
        list(info["features"]),
        Standardizer.from_state_dict(info["normalizer"]),
        info["target"],
        float(info["target_mean"]),
        float(info["target_std"]),
        architecture=dict(info.get("architecture") or {}),
    )


def predict_covid(
    model_dir: str | Path, input_path: str | Path, output_path: str | Path
) -> np.ndarray:
    """Write ``id,tested_positive`` predictions for a file in the training file's test layout.

    Rows that continue the training period (their first day is the day after a state's training
    days end, or they repeat training days), and rows preceded by enough of the file's own rows,
    are predicted with history features; the others by the fallback networks.

    Args:
        model_dir: the run folder (``OUT``) or its ``model/`` folder.
        input_path: a CSV in the test layout (the training columns without the target).
        output_path: the submission file to write.

    Returns:
        The predictions, in the input's row order.
    """
    return predict_covid_info(model_dir, input_path, output_path)[0]


def predict_covid_info(
    model_dir: str | Path, input_path: str | Path, output_path: str | Path
) -> tuple[np.ndarray, dict[str, int]]:
    """:func:`predict_covid`, also returning how many rows had history (see
    :meth:`Ensemble.prepare`)."""
    ensemble = load_ensemble(model_dir)
    frame = read_covid(input_path, train=False, layout=LAYOUTS[ensemble.meta["layout"]])
    pred, info = ensemble.predict_info(frame)
    atomic_write_text(output_path, submission_csv(frame.ids, pred))
    return pred, info


def evaluate_covid(model_dir: str | Path, input_path: str | Path) -> dict[str, float]:
    """MSE of the ensemble and of persistence on a labelled file (the training layout)."""
    ensemble = load_ensemble(model_dir)
    frame = read_covid(input_path, train=True, layout=LAYOUTS[ensemble.meta["layout"]])
    assert frame.y is not None
    pred, info = ensemble.predict_info(frame)
    return {
        "rows": float(len(frame)),
        "history_rows": float(info["history_rows"]),
        "model_mse": float(np.mean((pred - frame.y) ** 2)),
        "persistence_mse": float(np.mean((frame.persistence() - frame.y) ** 2)),
    }


def load_for_diagnosis(model_dir: Path, data: str | None, batch: int, seed: int) -> Any:
    """The first ensemble member, its training loss and ``batch`` training rows it applies to.

    Args:
        model_dir: the run folder or its ``model/`` folder.
        data: the data folder (or the training CSV); None uses the folder the model was trained on.
        batch: number of rows (the first ``batch`` rows of the training file the member can
            predict: with history for a history member; all if fewer).
        seed: unused (the batch is fixed), accepted for the common interface.

    Returns:
        A ``trainlab.diagnose.target.DiagnosisTarget`` (model on CPU, float32, evaluation mode).
    """
    from trainlab.diagnose.target import DiagnosisTarget

    del seed
    ensemble = load_ensemble(model_dir)
    member = ensemble.members[0]
    source = Path(data if data is not None else ensemble.meta["data"])
    path = source / TRAIN_FILE if source.is_dir() else source
    frame = read_covid(path, train=True, layout=LAYOUTS[ensemble.meta["layout"]])
    spec = ensemble.spec
    if spec is not None and member.uses_history:
        frame = with_history(frame, spec)  # the training file's own earlier days
    assert frame.y is not None
    usable = np.flatnonzero(np.isfinite(frame.X[member.features].to_numpy()).all(axis=1))
    if not len(usable):
        raise DataError(path, "no row has the history the model's first member needs")
    rows = usable[: min(max(int(batch), 1), len(usable))]
    n = len(rows)
    part = subset(frame, rows)
    y = frame.y[rows]
    base = part.persistence() if member.target == "delta" else np.zeros(n)
    targets = torch.from_numpy(
        ((y - base - member.target_mean) / member.target_std).astype(np.float32)
    )
    cfg = load_covid_config(overrides=ensemble.meta["config"])
    model = member.model.float().cpu().eval()
    loss_fn = make_loss(model, cfg.loss, cfg.huber_delta, cfg.l1, cfg.l2, penalize_in_eval=True)
    return DiagnosisTarget(
        model=model,
        loss_fn=loss_fn,
        inputs=member.inputs(part),
        targets=targets,
        description=f"covid {ensemble.meta['description']}, member {member.name}, {n} training rows "
        f"of {path.name} ({cfg.loss} loss on the {'z-scored ' if cfg.standardize_target else ''}"
        f"{member.target} target)",
    )
