"""Framewise phoneme classification (Kaggle ml2021spring-hw2) end to end: train, smooth, predict.

``train_phoneme`` splits the training rows by utterance, trains the chosen model with the Trainer
(:func:`trainlab.train.fit`), measures validation accuracy raw and after smoothing (median filter,
majority filter, Viterbi decoding with phone transitions counted from the training labels), and
writes the model, metrics and a submission for ``test_11.npy``. ``predict_phoneme`` applies a saved
model to any feature file; ``load_for_diagnosis`` hands a saved model to ``trainlab diagnose``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainlab._io import atomic_write_json
from trainlab.config import save_config
from trainlab.data.timit import (
    NUM_CLASSES,
    ROW_DIM,
    Utterances,
    check_finite,
    load_features,
    load_timit,
    load_utterances,
    split_by_utterance,
)
from trainlab.diagnose.target import DiagnosisTarget
from trainlab.errors import TrainlabError
from trainlab.tasks._phoneme_batches import IGNORE, FrameBatches, UtteranceBatches, masked_accuracy
from trainlab.tasks._phoneme_config import PRESETS, PhonemeConfig, preset, resolve_config
from trainlab.tasks._phoneme_infer import (
    Smoothing,
    apply_smoothing,
    choose_smoothing,
    log_posteriors,
    write_submission,
)
from trainlab.tasks._phoneme_models import FlatFrames
from trainlab.tasks._phoneme_saved import build_model, load_model, save_model
from trainlab.tasks._phoneme_smoothing import class_prior, transition_matrix


def train_phoneme(
    data: str | Path, out: str | Path, config: PhonemeConfig | None = None, *, quiet: bool = False
) -> dict[str, Any]:
    """Train on ``data``'s training rows, validate by utterance, write everything under ``out``.

    Writes ``config.json``, ``metrics.json``, ``history.csv``, ``curves.png``, ``model/``
    (``model.pt``, ``model.json``, ``transitions.npy``, ``prior.npy``), ``training/`` (the
    Trainer's checkpoints) and ``submission.csv`` when ``test_11.npy`` exists.

    Returns:
        The metrics written to ``metrics.json``.
    """
    from trainlab.train import fit

    cfg = config or preset("mlp")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.json")
    t0 = time.perf_counter()
    ds = load_timit(data)
    x, y = ds.train_x, ds.train_y
    assert x is not None and y is not None
    check_finite(x, ds.root / "train_11.npy")
    utts = ds.train_utterances()
    train_u, val_u = split_by_utterance(utts, cfg.val_ratio, cfg.seed)
    train_rows = utts.rows(train_u)
    transitions = transition_matrix(y[train_rows], utts.subset(train_u))
    prior = class_prior(y[train_rows])

    torch.manual_seed(cfg.seed)
    net = build_model(cfg)
    model = FlatFrames(net) if cfg.sequence else net
    train_batches, val_batches = _batches(cfg, x, y, utts, train_u, val_u)
    history = fit(
        model,
        torch.nn.CrossEntropyLoss(ignore_index=IGNORE, label_smoothing=cfg.label_smoothing),
        train_batches,
        val_batches,
        config=_train_config(cfg, out / "training", quiet, has_val=len(val_u) > 0),
        metrics={"acc": masked_accuracy},
    )
    history.to_csv(out / "history.csv")
    if len(history):
        history.plot(out / "curves.png")

    device = next(net.parameters()).device
    log_a, log_p = np.log(transitions), np.log(prior)
    metrics: dict[str, Any] = {
        "model": cfg.model,
        "train_frames": len(train_rows),
        "train_utterances": len(train_u),
        "val_frames": int(utts.lengths[val_u].sum()),
        "val_utterances": len(val_u),
        "utterance_split": True,
        "best_epoch": history.best_epoch,
        "epochs_run": len(history),
    }
    smoothing = Smoothing("viterbi" if cfg.smoothing == "auto" else cfg.smoothing)
    if len(val_u):
        lp = _posteriors(net, cfg, x, utts, val_u, device)
        smoothing = choose_smoothing(
            lp,
            y[utts.rows(val_u)],
            utts.subset(val_u),
            log_a,
            log_p,
            method=cfg.smoothing,
            windows=cfg.median_windows,
            transition_weights=cfg.transition_weights,
            prior_scales=cfg.prior_scales,
            seed=cfg.seed,
        )
        scores = smoothing.scores
        metrics["val_accuracy"] = scores["raw"]
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
    save_model(out / "model", net, cfg, ds.root, transitions, prior, smoothing, metrics)
    # unmap the training rows before reading the test rows: one data set resident at a time
    del x, y, train_batches, val_batches
    ds.train_x = ds.train_y = None
    if ds.test_x is not None:
        check_finite(ds.test_x, ds.root / "test_11.npy")
        test_utts = ds.test_utterances()
        lp = _posteriors(net, cfg, ds.test_x, test_utts, None, device)
        pred = apply_smoothing(lp, test_utts, smoothing, log_a, log_p)
        write_submission(out / "submission.csv", pred)
        metrics["test_frames"] = len(pred)
        metrics["test_utterances"] = len(test_utts)
    metrics["seconds"] = time.perf_counter() - t0
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


def predict_phoneme(
    model: str | Path,
    features: str | Path,
    output: str | Path,
    *,
    smoothing: str | None = None,
    device: str = "auto",
) -> np.ndarray:
    """Classify every row of ``features`` (an (N, 429) ``.npy``) and write ``Id,Class`` to ``output``.

    Args:
        model: the training run's folder (or its ``model/``).
        features: the rows; utterance boundaries come from the index beside it, else are recovered.
        output: the CSV to write.
        smoothing: ``none``/``median``/``majority``/``viterbi``; default: the one chosen in training.

    Returns:
        (N,) int64 predicted classes.
    """
    from trainlab.device import resolve_device

    net, info = load_model(model)
    cfg: PhonemeConfig = info["config"]
    x = load_features(features)
    check_finite(x, features)
    utts = load_utterances(features, x)
    dev = resolve_device(device)
    net.to(dev)
    lp = _posteriors(net, cfg, x, utts, None, dev)
    chosen: Smoothing = info["smoothing"]
    if smoothing is not None and smoothing != chosen.method:
        if smoothing == "auto":
            raise TrainlabError("smoothing 'auto' is chosen at training time; name a method")
        chosen = Smoothing(smoothing, chosen.window, chosen.transition_weight, chosen.prior_scale)
    pred = apply_smoothing(lp, utts, chosen, info["log_transitions"], info["log_prior"])
    write_submission(output, pred)
    return pred


def evaluate_phoneme(model: str | Path, data: str | Path) -> dict[str, float]:
    """Accuracy of a saved model on every labelled row of a data folder, raw and smoothed."""
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
        desc = f"phoneme bi-{cfg.rnn_cell.upper()} {cfg.rnn_layers}x{cfg.rnn_hidden}, {len(which)} utterances ({frames} frames)"
        return DiagnosisTarget(FlatFrames(net).eval(), loss_fn, inputs, targets, desc)
    rows = np.sort(rng.choice(len(x), size=min(batch, len(x)), replace=False))
    xb, yb = next(iter(FrameBatches(x, y, rows, len(rows))))
    widths = "-".join(str(h) for h in [ROW_DIM, *cfg.hidden, NUM_CLASSES])
    desc = f"phoneme {cfg.model} MLP {widths} ({cfg.activation}), {len(rows)} training frames"
    return DiagnosisTarget(net.eval(), loss_fn, xb, yb, desc)


def _batches(
    cfg: PhonemeConfig,
    x: np.ndarray,
    y: np.ndarray,
    utts: Utterances,
    train_u: np.ndarray,
    val_u: np.ndarray,
) -> tuple[Any, Any]:
    train: Any
    val: Any
    if cfg.sequence:
        train = UtteranceBatches(
            x,
            y,
            utts,
            train_u,
            cfg.utterances_per_batch,
            cfg.rnn_frames,
            shuffle=True,
            seed=cfg.seed,
        )
        val = UtteranceBatches(x, y, utts, val_u, 2 * cfg.utterances_per_batch, cfg.rnn_frames)
    else:
        train = FrameBatches(x, y, utts.rows(train_u), cfg.batch_size, shuffle=True, seed=cfg.seed)
        val = FrameBatches(x, y, utts.rows(val_u), max(1024, 4 * cfg.batch_size))
    return train, (val if len(val_u) else None)


def _train_config(cfg: PhonemeConfig, out: Path, quiet: bool, has_val: bool) -> Any:
    from trainlab.optim import list_optimizers, list_schedulers
    from trainlab.train import TrainConfig

    optimizer, scheduler = cfg.optimizer, cfg.scheduler
    # trainlab's from-scratch "adam" equals torch.optim.Adam; use torch's where it is not registered
    if optimizer not in list_optimizers() and f"torch_{optimizer}" in list_optimizers():
        optimizer = f"torch_{optimizer}"
    if scheduler not in list_schedulers():
        warnings.warn(
            f"schedule {scheduler!r} is not registered; using a constant rate", stacklevel=2
        )
        scheduler = "constant"
    return TrainConfig(
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        optimizer=optimizer,
        optimizer_kwargs={"lr": cfg.lr, "betas": tuple(cfg.betas)},
        scheduler=scheduler,
        scheduler_kwargs=dict(cfg.scheduler_kwargs) if scheduler == cfg.scheduler else {},
        weight_decay=cfg.weight_decay,
        grad_clip=cfg.grad_clip,
        seed=cfg.seed,
        device=cfg.device,
        amp=cfg.amp,
        monitor="val_acc" if has_val else "train_loss",
        mode="max" if has_val else "min",
        patience=cfg.patience,
        out_dir=str(out),
        quiet=quiet,
    )


def _posteriors(
    net: torch.nn.Module,
    cfg: PhonemeConfig,
    x: np.ndarray,
    utts: Utterances,
    which: np.ndarray | None,
    device: torch.device,
) -> np.ndarray:
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
    "PRESETS",
    "PhonemeConfig",
    "build_model",
    "evaluate_phoneme",
    "load_for_diagnosis",
    "load_model",
    "predict_phoneme",
    "preset",
    "resolve_config",
    "save_model",
    "train_phoneme",
]
