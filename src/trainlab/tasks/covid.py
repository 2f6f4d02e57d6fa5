"""COVID-19 cases prediction (Kaggle ml2021spring-hw1) end to end: validate, train, ensemble, submit.

Predict ``tested_positive`` on the last day of a window from the survey answers of the window's
days (and the state). :func:`train_covid` cross-validates the network and three references (the
training mean, persistence, ridge) on the same folds of every validation scheme (blocked in time,
random, the course's every-10th-row split), trains the ensemble on the folds of the chosen scheme
(``blocked`` by default: the test rows lie in other time windows), and writes a Kaggle submission,
the metrics, the resolved config, the weights and learning curves. :func:`predict_covid` applies a
saved model to any file in the test layout; :func:`load_for_diagnosis` hands one member to
``trainlab diagnose``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainlab._io import atomic_torch_save, atomic_write_json, atomic_write_text
from trainlab.config import to_dict
from trainlab.data.covid import (
    LAYOUTS,
    TEST_FILE,
    TRAIN_FILE,
    CovidFrame,
    Standardizer,
    load_covid_dir,
    read_covid,
    time_order,
)
from trainlab.errors import DataError
from trainlab.tasks._covid_config import (
    PRESETS,
    CovidConfig,
    ModelConfig,
    load_covid_config,
    preset,
)
from trainlab.tasks._covid_cv import REFERENCES, Member, SchemeResult, cross_validate
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
    "ModelConfig",
    "evaluate_covid",
    "load_covid_config",
    "load_ensemble",
    "load_for_diagnosis",
    "predict_covid",
    "preset",
    "train_covid",
]

FORMAT_VERSION = 1


@dataclass
class Ensemble:
    """The saved members of a run and its description (``model.json``)."""

    members: list[Member]
    meta: dict[str, Any]

    def predict(self, frame: CovidFrame) -> np.ndarray:
        """(N,) the members' average prediction of ``tested_positive``."""
        return np.mean([m.predict(frame) for m in self.members], axis=0)


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
    """Cross-validate, train the ensemble and write every output of a COVID run.

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
    members = results[cfg.validation].members
    ensemble = Ensemble(members, _model_meta(cfg, train, data_dir, members))
    test_pred = ensemble.predict(test)

    metrics = metrics_dict(results, train.y)
    label = f"model ({describe(members[0].model, len(members[0].features), cfg.model.widths, cfg.model.activation).split(' (')[0]})"
    table = format_table(
        metrics,
        label,
        early_stopped_on_val=cfg.train.patience is not None or cfg.train.restore_best,
        inputs=f"feature set {cfg.features!r} ({len(members[0].features)} columns), "
        f"{cfg.target} target",
    )
    seconds = time.perf_counter() - t0
    summary = {
        "task": "covid",
        "data": str(data_dir.resolve()),
        "validation": cfg.validation,
        "ensemble_members": len(members),
        "model": ensemble.meta["description"],
        "seconds": seconds,
        "schemes": metrics,
    }
    _write_outputs(out, cfg, ensemble, test, test_pred, summary, results, train.y)
    return CovidRun(out, summary, table, ensemble, test_pred, time.perf_counter() - t0)


def _model_meta(
    cfg: CovidConfig, train: CovidFrame, data_dir: Path, members: list[Member]
) -> dict[str, Any]:
    first = members[0]
    return {
        "task": "covid",
        "format_version": FORMAT_VERSION,
        "description": describe(
            first.model, len(first.features), cfg.model.widths, cfg.model.activation
        ),
        "layout": train.layout.name,
        "input_columns": train.layout.input_columns(),
        "target": train.layout.target,
        "data": str(data_dir.resolve()),
        "config": to_dict(cfg),
        "members": [
            {**m.meta(), "file": "model.pt" if i == 0 else f"member_{i}.pt"}
            for i, m in enumerate(members)
        ],
    }


def _write_outputs(
    out: Path,
    cfg: CovidConfig,
    ensemble: Ensemble,
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
    atomic_write_json(model_dir / "model.json", ensemble.meta)
    atomic_write_text(out / "submission.csv", submission_csv(test.ids, test_pred))
    atomic_write_json(out / "metrics.json", summary)
    atomic_write_json(out / "config.json", to_dict(cfg))
    if cfg.plot:
        plot_curves(
            ensemble.members,
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
    import json

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
    except KeyError as e:
        raise DataError(mdir / "model.json", f"missing entry {e}") from None
    return Ensemble(members, meta)


def _load_member(path: Path, info: dict[str, Any], cfg: CovidConfig) -> Member:
    if not path.is_file():
        raise DataError(path, "weights file missing")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and format errors of many kinds
        raise DataError(path, f"corrupt or unreadable weights ({type(e).__name__}: {e})") from None
    m = cfg.model
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
    )


def predict_covid(
    model_dir: str | Path, input_path: str | Path, output_path: str | Path
) -> np.ndarray:
    """Write ``id,tested_positive`` predictions for a file in the training file's test layout.

    Args:
        model_dir: the run folder (``OUT``) or its ``model/`` folder.
        input_path: a CSV in the test layout (the training columns without the target).
        output_path: the submission file to write.

    Returns:
        The predictions, in the input's row order.
    """
    ensemble = load_ensemble(model_dir)
    frame = read_covid(input_path, train=False, layout=LAYOUTS[ensemble.meta["layout"]])
    pred = ensemble.predict(frame)
    atomic_write_text(output_path, submission_csv(frame.ids, pred))
    return pred


def evaluate_covid(model_dir: str | Path, input_path: str | Path) -> dict[str, float]:
    """MSE of the ensemble and of persistence on a labelled file (the training layout)."""
    ensemble = load_ensemble(model_dir)
    frame = read_covid(input_path, train=True, layout=LAYOUTS[ensemble.meta["layout"]])
    assert frame.y is not None
    pred = ensemble.predict(frame)
    return {
        "rows": float(len(frame)),
        "model_mse": float(np.mean((pred - frame.y) ** 2)),
        "persistence_mse": float(np.mean((frame.persistence() - frame.y) ** 2)),
    }


def load_for_diagnosis(model_dir: Path, data: str | None, batch: int, seed: int) -> Any:
    """The first ensemble member, its training loss and the first ``batch`` training rows.

    Args:
        model_dir: the run folder or its ``model/`` folder.
        data: the data folder (or the training CSV); None uses the folder the model was trained on.
        batch: number of rows (the first ``batch`` rows of the training file, or all if fewer).
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
    assert frame.y is not None
    n = min(max(int(batch), 1), len(frame))
    y = frame.y[:n]
    rows = dataclasses.replace(
        frame, ids=frame.ids[:n], X=frame.X.iloc[:n].reset_index(drop=True), y=y
    )
    base = rows.persistence() if member.target == "delta" else np.zeros(n)
    targets = torch.from_numpy(
        ((y - base - member.target_mean) / member.target_std).astype(np.float32)
    )
    cfg = load_covid_config(overrides=ensemble.meta["config"])
    model = member.model.float().cpu().eval()
    loss_fn = make_loss(model, cfg.loss, cfg.huber_delta, cfg.l1, cfg.l2, penalize_in_eval=True)
    return DiagnosisTarget(
        model=model,
        loss_fn=loss_fn,
        inputs=member.inputs(rows),
        targets=targets,
        description=f"covid {ensemble.meta['description']}, member {member.name}, {n} training rows "
        f"of {path.name} ({cfg.loss} loss on the {'z-scored ' if cfg.standardize_target else ''}"
        f"{member.target} target)",
    )
