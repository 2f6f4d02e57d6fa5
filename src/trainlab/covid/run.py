"""COVID-19 cases prediction (Kaggle ml2021spring-hw1) end to end: validate, train, ensemble, submit.

Predict ``tested_positive`` on the last day of a window from the survey answers of the window's
days, the state, and the state's earlier days rebuilt by chaining the overlapping windows (history
features, :mod:`trainlab.covid.series`). :func:`train_covid` cross-validates the network and the
references (training mean, persistence, ridge with and without history) on the same folds of
every validation scheme (blocked in time, random, the course's every-10th-row split), simulates
the held-out later days (each state's last windows, predicted exactly as ``trainlab covid
predict`` would), trains the final ensemble and writes a Kaggle submission, the metrics, the
resolved config, the weights, the end of every training series and learning curves.
:func:`predict_covid` applies a saved model to any file in the test layout, building history from
the stored training days and the file's own earlier rows; :func:`load_for_diagnosis` hands one
member to ``trainlab diagnose``.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainlab._io import atomic_write_json, atomic_write_text
from trainlab._threads import torch_threads
from trainlab.config import to_dict
from trainlab.covid.config import DEFAULT_PRESET, CovidConfig, load_covid_config, preset
from trainlab.covid.ensemble import (
    Ensemble,
    describe_member,
    fit_ensemble,
    later_days,
    load_ensemble,
    save_ensemble,
)
from trainlab.covid.files import LAYOUTS, TRAIN_FILE, CovidFrame, load_covid_dir, read_covid
from trainlab.covid.folds import holdout_problem, testlike_problem
from trainlab.covid.frame import subset
from trainlab.covid.members import history_columns
from trainlab.covid.model import make_loss
from trainlab.covid.report import (
    format_table,
    format_testlike,
    metrics_dict,
    plot_curves,
    plot_predictions,
)
from trainlab.covid.resume import fit_cache, fit_scope
from trainlab.covid.series import time_order, with_history
from trainlab.covid.testlike import testlike_validate
from trainlab.covid.validate import SchemeResult, cross_validate
from trainlab.covid.watch import RECORDS_DIR, doctor_records
from trainlab.diagnose.target import DiagnosisTarget
from trainlab.errors import DataError
from trainlab.runs import begin_run, check_output_dir, check_output_file, publish_run

# One intra-op thread while training: a ~2,000-row MLP gains nothing from more, and on a busy
# machine spinning OpenMP workers made each step several times slower.
TRAIN_THREADS = 1


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
    resume: bool = False,
) -> CovidRun:
    """Cross-validate, simulate the later days, train the ensemble and write every output.

    The run is staged beside ``out_dir`` and switched into place when complete
    (:func:`trainlab.runs.begin_run`, :func:`trainlab.runs.publish_run`); each finished fit is
    kept in the staging folder, so ``resume`` continues an interrupted run where it stopped.

    Args:
        data_dir: folder with ``covid.train.csv`` and ``covid.test.csv``.
        out_dir: where ``submission.csv``, ``metrics.json``, ``config.json``, ``model/`` and the
            plots go (checked before any work; an earlier run there stays until this one is done).
        config: the settings (default: the ``default`` preset).
        log: called with progress lines (None: silent).
        resume: continue the interrupted run staged for ``out_dir`` (same settings and data).

    Returns:
        A :class:`CovidRun` with the metrics, the table and the ensemble.
    """
    cfg = config or preset(DEFAULT_PRESET)
    out = check_output_dir(out_dir)
    with torch_threads(TRAIN_THREADS):
        return _train(cfg, Path(data_dir), out, log, resume)


def _train(
    cfg: CovidConfig,
    data_dir: Path,
    out: Path,
    log: Callable[[str], None] | None,
    resume: bool,
) -> CovidRun:
    t0 = time.perf_counter()
    say = log or (lambda _: None)
    train, test = load_covid_dir(data_dir)
    assert train.y is not None
    order = time_order(train)
    settings = {**to_dict(cfg), "data_sha256": _fingerprint(train.path, test.path)}
    stage = begin_run(out, settings, resume=resume, log=say)
    fits = stage / "fits"
    fits.mkdir(exist_ok=True)
    say(
        f"{train.path}: {len(train)} rows ({train.layout.name} layout, {len(train.layout.states)} "
        f"states, {train.layout.n_days} days); {test.path}: {len(test)} rows"
    )
    records = stage / RECORDS_DIR if cfg.train.doctor else None
    with fit_cache(fits):
        results = _cross_validate_all(cfg, train, order, log)
        testlike = _testlike(cfg, train, order, data_dir, say)
        later, problem = _simulate_later_days(cfg, train, order, data_dir, results, say)
        with fit_scope("final"), doctor_records(records):
            ensemble = fit_ensemble(cfg, train, order, data_dir, results[cfg.validation])
    test_pred, test_info = ensemble.predict_info(test)
    say(
        f"{test.path.name}: {test_info['history_rows']} of {len(test)} rows with history, "
        f"{test_info['partial_rows']} with test-layout history ({test_info['attached_chains']} "
        f"of {test_info['chains']} chains continue the training days); the rest by the "
        "fallback networks"
    )
    metrics = metrics_dict(results, train.y, later)
    table = _table(cfg, ensemble, metrics)
    if testlike is not None:
        table = format_testlike(testlike, _model_label(ensemble)) + "\n\n" + table
    summary = {
        "task": "covid",
        "data": str(data_dir.resolve()),
        "validation": cfg.validation,
        "final": cfg.final,
        "ensemble_members": len(ensemble.members),
        "model": ensemble.meta["description"],
        "seconds": time.perf_counter() - t0,
        "test_rows": test_info,
        "schemes": metrics,
    }
    if testlike is not None:
        summary["testlike"] = testlike
    if later is not None:
        summary["later_days"] = later
    elif cfg.later_days:
        summary["later_days_skipped"] = problem
    _write_outputs(stage, cfg, ensemble, test, test_pred, summary, results, train.y)
    shutil.rmtree(fits)
    publish_run(stage, out)
    return CovidRun(out, summary, table, ensemble, test_pred, time.perf_counter() - t0)


def _fingerprint(*paths: Path) -> dict[str, str]:
    """SHA-256 of each data file: a resume must read the same data."""
    out = {}
    for path in paths:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        out[path.name] = digest.hexdigest()
    return out


def _cross_validate_all(
    cfg: CovidConfig, train: CovidFrame, order: np.ndarray, log: Callable[[str], None] | None
) -> dict[str, SchemeResult]:
    """Every reported scheme; the validation scheme keeps its members (the ``folds`` ensemble)."""
    results: dict[str, SchemeResult] = {}
    for scheme in cfg.report:
        if log is not None:
            log(f"{scheme} cross-validation:")
        results[scheme] = cross_validate(
            cfg, train, order, scheme, keep_members=scheme == cfg.validation, log=log
        )
    return results


def _testlike(
    cfg: CovidConfig,
    train: CovidFrame,
    order: np.ndarray,
    data_dir: Path,
    say: Callable[[str], None],
) -> dict[str, Any] | None:
    """The test-like validation's numbers (None if off; skipped, with the reason, if the file's
    states have too few windows)."""
    if not cfg.testlike:
        return None
    n_days = train.layout.n_days
    problem = testlike_problem(train.state, order, n_days, cfg.testlike_block, cfg.testlike_gap)
    if problem is not None:
        say(f"{train.path}: test-like validation skipped ({problem})")
        return None
    result = testlike_validate(cfg, train, order, data_dir)
    say(
        f"test-like validation: model MSE {result['model']['mse']:.4f}  "
        f"ridge_delta {result['ridge_delta']['mse']:.4f}  ({result['seconds']:.1f} s)"
    )
    return result


def _simulate_later_days(
    cfg: CovidConfig,
    train: CovidFrame,
    order: np.ndarray,
    data_dir: Path,
    results: dict[str, SchemeResult],
    say: Callable[[str], None],
) -> tuple[dict[str, Any] | None, str | None]:
    """The later-days numbers (None if off or impossible) and why it was impossible, if so."""
    problem = holdout_problem(train.state, cfg.holdout_rows, cfg.holdout_gap)
    if not cfg.later_days:
        return None, problem
    if problem is not None:
        say(f"later days: skipped ({problem})")
        return None, problem
    tuned = results["blocked"].ridge_tuned_alpha if "blocked" in results else None
    later = later_days(cfg, train, order, data_dir, tuned)
    say(
        f"later days: model MSE {later['model']:.4f}  ridge {later['ridge']:.4f}  "
        f"persistence {later['persistence']:.4f}  ({later['rows']} rows, "
        f"{later['history_rows']} with history, {later['seconds']:.1f} s)"
    )
    return later, problem


def _table(cfg: CovidConfig, ensemble: Ensemble, metrics: dict[str, Any]) -> str:
    """The printed validation table, its model row named after both tiers' networks."""
    n_hist = len(history_columns(cfg))
    hist_note = f" + {n_hist} history features" if n_hist else ""
    return format_table(
        metrics,
        _model_label(ensemble),
        early_stopped_on_val=cfg.train.patience is not None or cfg.train.restore_best,
        inputs=f"feature set {cfg.features!r}{hist_note}, {cfg.target} target",
    )


def _model_label(ensemble: Ensemble) -> str:
    """``model (linear 23-1, linear 18-1, MLP 14-16-1)``: the first network of every tier."""
    firsts = [group[0] for group in ensemble.tiers() if group]
    return f"model ({', '.join(describe_member(m).split(' (')[0] for m in firsts)})"


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
    save_ensemble(ensemble, out / "model")
    atomic_write_text(out / "submission.csv", submission_csv(test.ids, test_pred))
    atomic_write_json(out / "metrics.json", summary)
    if cfg.plot:
        chosen = results[cfg.validation]
        plot_curves(
            chosen.members,
            out / "curves.png",
            f"{ensemble.meta['description']}: {cfg.validation} folds, first seed",
        )
        plot_predictions(y, chosen.oof, out / "predictions.png", cfg.validation)


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
    check_output_file(output_path)
    ensemble = load_ensemble(model_dir)
    frame = read_covid(input_path, train=False, layout=LAYOUTS[ensemble.meta["layout"]])
    pred, info = ensemble.predict_info(frame)
    atomic_write_text(output_path, submission_csv(frame.ids, pred))
    return pred, info


def evaluate_covid(model_dir: str | Path, input_path: str | Path) -> dict[str, float]:
    """MSE of the ensemble and of persistence on a labelled file (the training layout).

    Returns:
        ``rows``, ``history_rows``, ``model_mse`` and ``persistence_mse``.
    """
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


def load_for_diagnosis(model_dir: Path, data: str | None, batch: int, seed: int) -> DiagnosisTarget:
    """The first ensemble member, its training loss and ``batch`` training rows it applies to.

    Args:
        model_dir: the run folder or its ``model/`` folder.
        data: the data folder (or the training CSV); None uses the folder the model was trained on.
        batch: number of rows (the first ``batch`` rows of the training file the member can
            predict: with history for a history member; all if fewer).
        seed: unused (the batch is fixed), accepted for the common interface.

    Returns:
        The model on the CPU in float32 and evaluation mode, its loss and the batch.
    """
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
