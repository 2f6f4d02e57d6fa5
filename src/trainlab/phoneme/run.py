"""Framewise phoneme classification (Kaggle ml2021spring-hw2) end to end: train, smooth, predict.

``train_phoneme`` splits the training rows by utterance, trains the chosen model with the Trainer
(:func:`trainlab.train.fit`), measures validation accuracy raw and after smoothing (median filter,
majority filter, Viterbi decoding with phone transitions counted from the training labels), and
writes the model, metrics and a submission for ``test_11.npy``. ``predict_phoneme`` applies a saved
model to any feature file, ``evaluate_phoneme`` scores it on a labelled folder, and
``load_for_diagnosis`` hands a saved model to ``trainlab diagnose``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from trainlab._io import atomic_write_json
from trainlab._threads import torch_threads
from trainlab.config import to_dict
from trainlab.device import resolve_device
from trainlab.diagnose.target import DiagnosisTarget
from trainlab.distributed import is_main_process, restarted
from trainlab.errors import TrainlabError
from trainlab.phoneme.batches import IGNORE, FrameBatches, UtteranceBatches
from trainlab.phoneme.config import AUTO, DEFAULT_PRESET, PhonemeConfig, preset
from trainlab.phoneme.files import (
    TimitData,
    Utterances,
    check_finite,
    load_features,
    load_timit,
)
from trainlab.phoneme.fitting import fit_ensemble, member_config, member_data, member_dir
from trainlab.phoneme.infer import (
    KAGGLE_COLUMNS,
    choose_smoothing,
    log_posteriors,
    write_submission,
)
from trainlab.phoneme.models import FlatFrames, Members, describe
from trainlab.phoneme.saved import load_model, save_model
from trainlab.phoneme.smoothing import Smoothing, apply_smoothing, class_prior, transition_matrix
from trainlab.phoneme.split import RunData, prediction_rows, prepare_data, validation_folds
from trainlab.runs import begin_run, check_output_dir, check_output_file, publish_run, staging_dir

if TYPE_CHECKING:
    from trainlab.train import History


@dataclass
class _Decoder:
    """What smoothing needs besides the posteriors: the chosen method and the HMM's log tables."""

    smoothing: Smoothing
    log_transitions: np.ndarray
    log_prior: np.ndarray


def train_phoneme(
    data: str | Path,
    out: str | Path,
    config: PhonemeConfig | None = None,
    *,
    quiet: bool = False,
    resume: bool = False,
    columns: tuple[str, str] = KAGGLE_COLUMNS,
) -> dict[str, Any]:
    """Train on ``data``'s training rows, validate by utterance, write everything under ``out``.

    Writes ``config.json``, ``metrics.json``, ``history.csv``, ``curves.png``, ``model/``
    (``model.pt``, ``model.json``, ``transitions.npy``, ``prior.npy``), ``training/`` (the
    Trainer's checkpoints) and ``submission.csv`` when ``test_11.npy`` exists. PyTorch's thread
    count is set to ``config.threads`` (when positive) for the run and restored afterwards.

    The run is staged beside ``out`` and switched into place, sealed by a manifest, when complete
    (:func:`trainlab.runs.begin_run`, :func:`trainlab.runs.publish_run`), so ``out`` always holds
    one whole run. ``resume`` continues the staged run from its last checkpoint; a run killed at
    any moment and resumed ends with the uninterrupted run's weights, metrics and submission.

    Args:
        data: the data folder (with or without ``timit_11/``).
        out: the output folder (checked before any work; an earlier run there stays until this
            one is complete).
        config: the settings; default: the default preset (``crnn``).
        quiet: no per-epoch output.
        resume: continue the interrupted run of ``out`` (refused when its settings or data differ).
        columns: the submission's header (default Kaggle's ``Id,Class``).

    Returns:
        The metrics written to ``metrics.json``.
    """
    cfg = config or preset(DEFAULT_PRESET)
    target = check_output_dir(out)
    with torch_threads(cfg.threads):
        return _train(data, target, cfg, quiet, resume, columns)


def _train(
    data: str | Path,
    target: Path,
    cfg: PhonemeConfig,
    quiet: bool,
    resume: bool,
    columns: tuple[str, str] = KAGGLE_COLUMNS,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    ds = load_timit(data)
    split = _split(ds, cfg)
    if ds.test_x is not None:
        check_finite(ds.test_x, ds.root / "test_11.npy")
    # under torchrun rank 0 alone stages and publishes the run; the other ranks only train
    # a group restarted by torchrun --max-restarts continues the run its first attempt staged
    resume = resume or (restarted() and (staging_dir(target) / "config.json").is_file())
    out = (
        begin_run(target, run_settings(cfg, ds), resume=resume)
        if is_main_process()
        else staging_dir(target)
    )
    train_rows = split.labelled_rows(split.train_u)
    transitions = transition_matrix(
        split.y[split.utts.rows(split.train_u)], split.utts.subset(split.train_u)
    )
    prior = class_prior(split.y[train_rows])
    device = resolve_device(cfg.device)
    fitted = fit_ensemble(cfg, split, out / "training", quiet, resume, ds.root, device)
    if not is_main_process():
        return {}
    net, history = fitted.net, fitted.history
    history.to_csv(out / "history.csv")
    if len(history):
        history.plot(out / "curves.png")
    metrics: dict[str, Any] = {
        "model": cfg.model,
        "train_frames": len(train_rows),
        "train_utterances": len(split.train_u),
        "val_frames": len(split.labelled_rows(split.val_u)),
        "val_utterances": len(split.val_u),
        "untouched_frames": len(split.labelled_rows(split.hold_u)),
        "untouched_utterances": len(split.hold_u),
        "utterance_split": True,
        "layout": split.layout,
        "single_row_utterances": split.singletons,
        "best_epoch": history.best_epoch,
        "epochs_run": len(history),
    }
    if cfg.members > 1:
        metrics["members"] = _member_metrics(cfg, split, fitted.histories)
    metrics["validation"] = "out of fold" if _folds(cfg, split) else "shared"
    if metrics["validation"] == "out of fold":
        metrics["validation_note"] = (
            "each member validated on its own fold of the validation utterances and trained on "
            "the other folds too; val_* score each fold with the one member that did not train on "
            "it (a single network's accuracy, not the ensemble's)"
        )
    decoder = _Decoder(_default_smoothing(cfg), np.log(transitions), np.log(prior))
    if len(split.val_u):
        decoder.smoothing = _choose_smoothing(net, cfg, split, decoder, device)
        metrics.update(_smoothing_metrics(decoder.smoothing))
    if len(split.hold_u):
        metrics.update(_untouched_metrics(net, cfg, split, decoder, device))
    save_model(out / "model", net, cfg, ds.root, transitions, prior, decoder.smoothing, metrics)
    if split.test_rows is not None:  # test rows inside the rebuilt utterances
        metrics.update(_submit_chained(net, cfg, split, decoder, device, out, columns))
    # unmap the training rows before reading the test rows: one data set resident at a time
    del split
    ds.train_x = ds.train_y = None
    if ds.test_x is not None and "test_frames" not in metrics:
        metrics.update(_submit(net, cfg, ds, decoder, device, out / "submission.csv", columns))
    metrics["seconds"] = time.perf_counter() - t0
    atomic_write_json(out / "metrics.json", metrics)
    publish_run(out, target)
    return metrics


def run_settings(cfg: PhonemeConfig, ds: TimitData) -> dict[str, Any]:
    """What ``config.json`` records and a resume must match: the settings and the data files."""
    files = {}
    for name in ("train_11.npy", "train_label_11.npy", "test_11.npy", "train_utterances.csv"):
        path = ds.root / name
        if path.is_file():
            st = path.stat()
            files[name] = {"bytes": st.st_size, "modified_ns": st.st_mtime_ns}
    return {**to_dict(cfg), "data_files": {"folder": str(ds.root.resolve()), **files}}


def _split(ds: TimitData, cfg: PhonemeConfig) -> RunData:
    """Check the training rows, put them in utterance order and split them three ways."""
    return prepare_data(ds, cfg.val_ratio, cfg.holdout_ratio, cfg.seed)


def _member_metrics(
    cfg: PhonemeConfig, split: RunData, histories: list[History]
) -> list[dict[str, Any]]:
    """Each member's seed, utterances, best epoch and best validation accuracy (``history.csv``:
    member 1's)."""
    rows = []
    for k, h in enumerate(histories):
        mine = member_data(cfg, split, k)
        rows.append({
            "seed": member_config(cfg, k).seed,
            "train_utterances": len(mine.train_u),
            "val_utterances": len(mine.val_u),
            "best_epoch": h.best_epoch,
            f"best_{h.monitor}": h.best_value,
            "history": str(member_dir(Path("training"), k) / "history.csv"),
        })  # fmt: skip
    return rows


def _folds(cfg: PhonemeConfig, split: RunData) -> list[np.ndarray] | None:
    """Each member's validation fold, when the members train on folds (else ``None``)."""
    return validation_folds(split, cfg.members) if cfg.member_folds else None


def _validation_posteriors(
    net: torch.nn.Module, cfg: PhonemeConfig, split: RunData, device: torch.device
) -> np.ndarray:
    """Log-posteriors of the validation utterances, rows as ``split.utts.rows(split.val_u)``: the
    network's, or with member folds each fold's from the one member that did not train on it."""
    folds = _folds(cfg, split)
    if folds is None:
        return _posteriors(net, cfg, split.x, split.utts, split.val_u, device)
    assert isinstance(net, Members)
    pieces: dict[int, np.ndarray] = {}
    for member, fold in zip(net.members, folds):
        lp = _posteriors(member, cfg, split.x, split.utts, fold, device)
        pieces.update(zip(fold.tolist(), np.split(lp, np.cumsum(split.utts.lengths[fold])[:-1])))
    return np.concatenate([pieces[u] for u in split.val_u.tolist()])


def _default_smoothing(cfg: PhonemeConfig) -> Smoothing:
    """The post-processor used when there is no validation data to choose one on."""
    return Smoothing("viterbi" if cfg.smoothing == AUTO else cfg.smoothing)


def _choose_smoothing(
    net: torch.nn.Module,
    cfg: PhonemeConfig,
    split: RunData,
    decoder: _Decoder,
    device: torch.device,
) -> Smoothing:
    """Score every post-processor on the validation utterances and keep the configured best."""
    lp = _validation_posteriors(net, cfg, split, device)
    return choose_smoothing(
        lp,
        split.y[split.utts.rows(split.val_u)],
        split.utts.subset(split.val_u),
        decoder.log_transitions,
        decoder.log_prior,
        method=cfg.smoothing,
        windows=cfg.median_windows,
        transition_weights=cfg.transition_weights,
        prior_scales=cfg.prior_scales,
        seed=cfg.seed,
    )


def _smoothing_metrics(smoothing: Smoothing) -> dict[str, Any]:
    """The validation accuracies of every post-processor and the chosen one, for metrics.json."""
    scores = smoothing.scores
    metrics: dict[str, Any] = {"val_accuracy": scores["raw"]}
    for name in ("median", "majority", "viterbi"):
        metrics[f"val_accuracy_{name}"] = scores[name]["accuracy"]
    metrics["smoothing"] = {k: v for k, v in asdict(smoothing).items() if k != "scores"}
    metrics["smoothing"]["val_accuracy"] = (
        scores["raw"] if smoothing.method == "none" else scores[smoothing.method]["accuracy"]
    )
    metrics["smoothing_candidates"] = scores
    metrics["smoothing_note"] = (
        "smoothed accuracies are 2-fold cross-fitted over the validation utterances "
        "(parameters chosen on one half, scored on the other)"
    )
    return metrics


def _submit(
    net: torch.nn.Module,
    cfg: PhonemeConfig,
    ds: TimitData,
    decoder: _Decoder,
    device: torch.device,
    path: Path,
    columns: tuple[str, str] = KAGGLE_COLUMNS,
) -> dict[str, Any]:
    """Classify and smooth the test rows, write the submission; returns the test counts."""
    assert ds.test_x is not None
    test_utts = ds.test_utterances()
    lp = _posteriors(net, cfg, ds.test_x, test_utts, None, device)
    pred = apply_smoothing(
        lp, test_utts, decoder.smoothing, decoder.log_transitions, decoder.log_prior
    )
    write_submission(path, pred, columns)
    return {"test_frames": len(pred), "test_utterances": len(test_utts)}


#: Rebuilt utterances classified at a time for a shuffled layout's submission.
CHAINED_GROUP = 256


def _submit_chained(
    net: torch.nn.Module,
    cfg: PhonemeConfig,
    split: RunData,
    decoder: _Decoder,
    device: torch.device,
    out: Path,
    columns: tuple[str, str],
) -> dict[str, Any]:
    """The submission of a shuffled layout: every rebuilt utterance classified and smoothed, the
    test rows picked out in their file's order.

    Utterances go :data:`CHAINED_GROUP` at a time, so the posteriors held at once do not grow
    with the data (those of all 1.2 M rows of the full set would be 190 MB, per copy).
    """
    assert split.test_rows is not None
    labels = np.empty(split.utts.num_rows, dtype=np.int64)
    for lo in range(0, len(split.utts), CHAINED_GROUP):
        which = np.arange(lo, min(lo + CHAINED_GROUP, len(split.utts)))
        lp = _posteriors(net, cfg, split.x, split.utts, which, device)
        labels[split.utts.rows(which)] = apply_smoothing(
            lp, split.utts.subset(which), decoder.smoothing, decoder.log_transitions,
            decoder.log_prior,
        )  # fmt: skip
    pred = labels[split.test_rows]
    write_submission(out / "submission.csv", pred, columns)
    lone = split.utts.lengths == 1
    single = np.zeros(split.utts.num_rows, dtype=bool)
    single[split.utts.starts[lone]] = True
    return {"test_frames": len(pred), "test_rows_framewise": int(single[split.test_rows].sum())}


def _untouched_metrics(
    net: torch.nn.Module,
    cfg: PhonemeConfig,
    split: RunData,
    decoder: _Decoder,
    device: torch.device,
) -> dict[str, Any]:
    """Accuracy on the hold-out no choice has seen: raw, and with the smoothing chosen on validation."""
    lp = _posteriors(net, cfg, split.x, split.utts, split.hold_u, device)
    y = split.y[split.utts.rows(split.hold_u)]
    known = y != IGNORE
    pred = apply_smoothing(
        lp,
        split.utts.subset(split.hold_u),
        decoder.smoothing,
        decoder.log_transitions,
        decoder.log_prior,
    )
    return {
        "untouched_accuracy_raw": float((lp.argmax(1) == y)[known].mean()),
        "untouched_accuracy": float((pred == y)[known].mean()),
        "accuracy_note": (
            "val_*: validation utterances, on which the best epoch and the smoothing were chosen; "
            "untouched_*: held-out utterances no choice saw (untouched_accuracy: with the chosen "
            "smoothing), the unbiased estimate"
        ),
    }


def predict_phoneme(
    model: str | Path,
    features: str | Path,
    output: str | Path,
    *,
    smoothing: str | None = None,
    device: str = "auto",
    columns: tuple[str, str] = KAGGLE_COLUMNS,
) -> np.ndarray:
    """Classify every row of ``features`` (an (N, 429) ``.npy``) and write ``Id,Class`` to ``output``.

    Rows in utterance order are read as they are; shuffled rows (an MLE-bench-style layout) are put
    back into utterances from their overlaps, together with the rows of a ``train_11.npy`` beside
    them when there is one (their utterances interleave); rows that chain with no other are
    classified alone.

    Args:
        model: the training run's folder (or its ``model/``).
        features: the rows; utterance boundaries come from the index beside it, else are recovered.
        output: the CSV to write.
        smoothing: a name in :data:`~trainlab.phoneme.smoothing.SMOOTHERS`; default: the one
            chosen in training.
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        columns: the CSV header (default Kaggle's ``Id,Class``; MLE-bench's is ``Id,ClassId``).

    Returns:
        (N,) int64 predicted classes.
    """
    check_output_file(output)
    net, info = load_model(model)
    cfg: PhonemeConfig = info["config"]
    x = load_features(features)
    check_finite(x, features)
    rows, utts, picked = prediction_rows(features, x)
    dev = resolve_device(device)
    net.to(dev)
    lp = _posteriors(net, cfg, rows, utts, None, dev)
    chosen: Smoothing = info["smoothing"]
    if smoothing is not None and smoothing != chosen.method:
        if smoothing == AUTO:
            raise TrainlabError("smoothing 'auto' is chosen at training time; name a method")
        chosen = Smoothing(smoothing, chosen.window, chosen.transition_weight, chosen.prior_scale)
    pred = apply_smoothing(lp, utts, chosen, info["log_transitions"], info["log_prior"])
    if picked is not None:
        pred = pred[picked]
    write_submission(output, pred, columns)
    return pred


def evaluate_phoneme(model: str | Path, data: str | Path) -> dict[str, float]:
    """Accuracy of a saved model on every labelled row of a data folder, raw and smoothed.

    Args:
        model: the training run's folder (or its ``model/``).
        data: a folder with ``train_11.npy`` and ``train_label_11.npy``.

    Returns:
        ``frames``, ``accuracy`` (raw) and ``accuracy_<method>`` for median, majority and Viterbi.
    """
    net, info = load_model(model)
    cfg: PhonemeConfig = info["config"]
    ds = load_timit(data)
    assert ds.train_x is not None and ds.train_y is not None
    utts = ds.train_utterances()
    lp = _posteriors(net, cfg, ds.train_x, utts, None, torch.device("cpu"))
    out = {"frames": float(len(lp)), "accuracy": float((lp.argmax(1) == ds.train_y).mean())}
    for method in ("median", "majority", "viterbi"):
        s = info["smoothing"]
        s = Smoothing(method, s.window, s.transition_weight, s.prior_scale)
        pred = apply_smoothing(lp, utts, s, info["log_transitions"], info["log_prior"])
        out[f"accuracy_{method}"] = float((pred == ds.train_y).mean())
    return out


def load_for_diagnosis(
    model_dir: str | Path, data: str | None, batch: int, seed: int
) -> DiagnosisTarget:
    """A saved phoneme model with its loss and one fixed batch of training data.

    Framewise models get ``batch`` random training rows; the sequence model gets whole random
    utterances, added until they hold at least ``batch`` frames. The model is in eval mode
    (BatchNorm running statistics, no dropout), so the loss is a deterministic function of weights.

    Args:
        model_dir: the saved model (run folder, ``model/`` or its ``model.json``).
        data: the data folder; ``None`` uses the one recorded in ``model.json``.
        batch: frames to analyse (at least; whole utterances for the sequence model).
        seed: chooses the rows or utterances.

    Returns:
        The model, its loss and the batch as a :class:`DiagnosisTarget`.
    """
    net, info = load_model(model_dir)
    cfg: PhonemeConfig = info["config"]
    source = data or info.get("data")
    if not source:
        raise TrainlabError(
            f"{model_dir}: the model does not record its data; pass the data folder"
        )
    ds = load_timit(source)
    x, y = ds.train_x, ds.train_y
    assert x is not None and y is not None
    rng = np.random.default_rng(seed)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=IGNORE)
    if cfg.sequence:
        utts = ds.train_utterances()
        order = rng.permutation(len(utts))
        k = int(np.searchsorted(np.cumsum(utts.lengths[order]), batch)) + 1
        which = np.sort(order[: min(k, len(order))])
        inputs, targets = UtteranceBatches(x, y, utts, which, len(which), cfg.rnn_frames).collate(
            which
        )
        frames = int(utts.lengths[which].sum())
        desc = f"phoneme {describe(cfg)}, {len(which)} utterances ({frames} frames)"
        return DiagnosisTarget(FlatFrames(net).eval(), loss_fn, inputs, targets, desc)
    rows = np.sort(rng.choice(len(x), size=min(batch, len(x)), replace=False))
    xb, yb = next(iter(FrameBatches(x, y, rows, len(rows))))
    desc = f"phoneme {cfg.model} {describe(cfg)}, {len(rows)} training frames"
    return DiagnosisTarget(net.eval(), loss_fn, xb, yb, desc)


def _posteriors(
    net: torch.nn.Module,
    cfg: PhonemeConfig,
    x: np.ndarray,
    utts: Utterances,
    which: np.ndarray | None,
    device: torch.device,
) -> np.ndarray:
    """Log-posteriors of the utterances ``which`` (default all), batched as ``cfg`` says."""
    return log_posteriors(
        net,
        x,
        utts,
        which,
        sequence=cfg.sequence,
        rnn_frames=cfg.rnn_frames,
        utterances_per_batch=max(8, 2 * cfg.utterances_per_batch),
        device=device,
    )


__all__ = [
    "evaluate_phoneme",
    "load_for_diagnosis",
    "predict_phoneme",
    "train_phoneme",
]
