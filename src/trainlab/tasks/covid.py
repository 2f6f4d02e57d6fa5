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
from trainlab.tasks._covid_cv import REFERENCES, SchemeResult, cross_validate, holdout_problem
from trainlab.tasks._covid_ensemble import (
    Ensemble,
    describe_member,
    fit_ensemble,
    later_days,
    load_ensemble,
)
from trainlab.tasks._covid_members import Member, history_columns, subset
from trainlab.tasks._covid_model import make_loss
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
    "predict_covid_info",
    "preset",
    "train_covid",
]


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
            describe_member(m).split(" (")[0]
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
