"""Inference for the phoneme task: log-posteriors per frame, smoothing chosen on validation, submissions.

Framewise models see rows in batches; the sequence model sees whole utterances, and an utterance
of one row (a row of a shuffled file that no other row overlaps) as the 11 frames of that row
alone. Either way the output is one row of log-probabilities per frame, in the order of the
utterances asked for, which the smoothers of :mod:`trainlab.phoneme.smoothing` then post-process
utterance by utterance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainlab._io import atomic_open
from trainlab.phoneme.batches import FrameBatches, UtteranceBatches, frame_columns
from trainlab.phoneme.files import CONTEXT, FEATURE_DIM, NUM_CLASSES, Utterances
from trainlab.phoneme.smoothing import (
    Smoothing,
    apply_smoothing,
    majority_smooth,
    median_smooth,
)


@torch.no_grad()
def log_posteriors(
    model: torch.nn.Module,
    x: np.ndarray,
    utts: Utterances,
    which: np.ndarray | None = None,
    *,
    sequence: bool = False,
    rnn_frames: int = 11,
    batch_size: int = 4096,
    utterances_per_batch: int = 32,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Log-softmax outputs for every frame of the utterances ``which`` (default: all), in order.

    Args:
        model: a framewise model ``(B, 429) -> (B, C)``, or with ``sequence`` a
            :class:`SequenceRNN` ``(x (B, T, D), lengths) -> (B, T, C)``.
        x: (N, 429) rows (memory-mapped is fine).
        utts: boundaries of ``x``.

    Returns:
        (R, C) float32, R = frames of ``which``, rows ordered as ``utts.rows(which)``.
    """
    which = np.arange(len(utts)) if which is None else np.asarray(which, dtype=np.int64)
    device = torch.device(device)
    was_training = model.training
    model.eval()
    try:
        if not sequence:
            rows = utts.rows(which)
            outs = [
                torch.log_softmax(model(xb.to(device)).float(), dim=-1).cpu()
                for xb in FrameBatches(x, None, rows, batch_size)
            ]
            return torch.cat(outs).numpy()
        return _sequence_posteriors(model, x, utts, which, rnn_frames, utterances_per_batch, device)
    finally:
        model.train(was_training)


def _sequence_posteriors(
    model: torch.nn.Module,
    x: np.ndarray,
    utts: Utterances,
    which: np.ndarray,
    frames: int,
    per_batch: int,
    device: torch.device,
) -> np.ndarray:
    """Whole utterances through the sequence model; one-row utterances as their own 11 frames."""
    sub = utts.subset(which)
    out = np.empty((sub.num_rows, NUM_CLASSES), dtype=np.float32)
    single = utts.lengths[which] == 1
    if single.any():
        rows = np.asarray(x[utts.starts[which[single]]], dtype=np.float32)
        out[sub.starts[single]] = _single_rows(model, rows, frames, device)
    multi = np.flatnonzero(~single)
    # longest first within the order, so batches hold similar lengths and padding is small
    order = multi[np.argsort(-utts.lengths[which[multi]], kind="stable")]
    batches = UtteranceBatches(x, None, utts, which[order], per_batch, frames)
    pos = 0
    for (xb, lengths), _ in batches:
        lp = torch.log_softmax(model(xb.to(device), lengths).float(), dim=-1).cpu().numpy()
        for k, n in enumerate(lengths.tolist()):
            j = int(order[pos])  # position of this utterance within `which`
            out[sub.starts[j] : sub.starts[j] + n] = lp[k, :n]
            pos += 1
    return out


def _single_rows(
    model: torch.nn.Module, rows: np.ndarray, frames: int, device: torch.device, batch: int = 4096
) -> np.ndarray:
    """Log-posteriors of the middle frame of each row, the row's 11 frames read as a sequence.

    Step ``j`` gets frames ``j - frames//2 .. j + frames//2`` of the row (clipped: edge frames
    repeat, as at an utterance's edges). (R, 429) -> (R, C).
    """
    frame_columns(frames)  # checks frames
    half = frames // 2
    idx = np.clip(np.arange(CONTEXT)[:, None] + np.arange(-half, half + 1)[None, :], 0, CONTEXT - 1)
    outs = []
    for lo in range(0, len(rows), batch):
        r = torch.from_numpy(rows[lo : lo + batch]).view(-1, CONTEXT, FEATURE_DIM)
        seq = r[:, torch.from_numpy(idx)].reshape(len(r), CONTEXT, frames * FEATURE_DIM)
        lengths = torch.full((len(r),), CONTEXT, dtype=torch.int64)
        logits = model(seq.to(device), lengths)[:, CONTEXT // 2]
        outs.append(torch.log_softmax(logits.float(), dim=-1).cpu())
    return torch.cat(outs).numpy()


def choose_smoothing(
    log_probs: np.ndarray,
    labels: np.ndarray,
    utts: Utterances,
    log_transitions: np.ndarray,
    log_prior: np.ndarray,
    *,
    method: str = "auto",
    windows: list[int] | tuple[int, ...] = (3, 5, 7, 9),
    transition_weights: list[float] | tuple[float, ...] = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0),
    prior_scales: list[float] | tuple[float, ...] = (0.0, 0.5, 1.0),
    folds: int = 2,
    seed: int = 0,
) -> Smoothing:
    """Score every post-processor on labelled utterances and keep the best of ``method``.

    Parameters (window, transition weight, prior scale) are searched on a grid. So that the
    reported accuracies are not flattered by that search, they are cross-fitted: the utterances are
    split into ``folds`` groups, parameters are chosen on the other groups and scored on each
    group in turn (``accuracy``); ``accuracy_in_sample`` is the best grid point scored on all
    utterances. The returned parameters are the best on all utterances (for test data).

    Args:
        method: ``auto`` (the best method by cross-fitted accuracy) or a method name.
        folds: cross-fitting groups (``< 2``: report in-sample accuracies only).

    Returns:
        The chosen :class:`Smoothing`; ``scores`` holds ``raw`` and every method's accuracies.
    """
    candidates = _grid_predictions(
        log_probs,
        utts,
        log_transitions,
        log_prior,
        windows=windows,
        transition_weights=transition_weights,
        prior_scales=prior_scales,
    )
    every = np.arange(len(labels))
    full = {m: _best(c, labels, every)[:2] for m, c in candidates.items()}
    honest = {m: a for m, (a, _) in full.items()}
    if folds >= 2 and len(utts) >= folds:
        honest = _cross_fitted(candidates, labels, utts, folds=folds, seed=seed)
    scores: dict[str, Any] = {"raw": full["none"][0]}
    for m in ("median", "majority", "viterbi"):
        scores[m] = {
            "accuracy": honest[m],
            "accuracy_in_sample": full[m][0],
            **_params(full[m][1]),
        }
    if method == "auto":
        name = max(honest, key=lambda m: honest[m])
    else:
        name = method
    chosen = full[name][1]
    chosen.scores = scores
    return chosen


#: method -> every grid point's (smoothing, predicted classes of all rows)
Candidates = dict[str, list[tuple[Smoothing, np.ndarray]]]


def _grid_predictions(
    log_probs: np.ndarray,
    utts: Utterances,
    log_transitions: np.ndarray,
    log_prior: np.ndarray,
    *,
    windows: list[int] | tuple[int, ...],
    transition_weights: list[float] | tuple[float, ...],
    prior_scales: list[float] | tuple[float, ...],
) -> Candidates:
    """Every grid point's predictions, each utterance smoothed once.

    Every smoother works on one utterance at a time, so the predictions on any subset of the
    utterances are these predictions' rows: the cross-fitting folds reuse them.
    """
    pred = log_probs.argmax(axis=1)
    candidates: Candidates = {"none": [(Smoothing("none"), pred)]}
    for name, fn in (("median", median_smooth), ("majority", majority_smooth)):
        candidates[name] = [(Smoothing(name, window=w), fn(pred, utts, w)) for w in windows]
    points = [
        Smoothing("viterbi", transition_weight=tw, prior_scale=ps)
        for tw in transition_weights
        for ps in prior_scales
    ]
    candidates["viterbi"] = [
        (s, apply_smoothing(log_probs, utts, s, log_transitions, log_prior)) for s in points
    ]
    return candidates


def _best(
    candidates: list[tuple[Smoothing, np.ndarray]], labels: np.ndarray, rows: np.ndarray
) -> tuple[float, Smoothing, np.ndarray]:
    """The first grid point with the highest accuracy on the labelled ``rows``:
    (accuracy, its smoothing, its predictions of all rows)."""
    known = labels[rows] >= 0  # unlabelled rows (a shuffled layout's test rows) are not scored
    best: tuple[float, Smoothing, np.ndarray] | None = None
    for s, pred in candidates:
        a = float((pred[rows] == labels[rows])[known].mean())
        if best is None or a > best[0]:
            best = (a, s, pred)
    assert best is not None, "an empty grid"
    return best


def _cross_fitted(
    candidates: Candidates, labels: np.ndarray, utts: Utterances, *, folds: int, seed: int
) -> dict[str, float]:
    """Each method's accuracy with its parameters tuned on the other folds: method -> accuracy."""
    group = np.random.default_rng(seed).permutation(len(utts)) % folds
    correct = dict.fromkeys(candidates, 0)
    for f in range(folds):
        tune = utts.rows(np.flatnonzero(group != f))
        held = utts.rows(np.flatnonzero(group == f))
        for m, grid in candidates.items():
            pred = _best(grid, labels, tune)[2]
            correct[m] += int((pred[held] == labels[held]).sum())
    return {m: c / max(int((labels >= 0).sum()), 1) for m, c in correct.items()}


KAGGLE_COLUMNS = ("Id", "Class")
#: the submission headers by format: Kaggle's competition and MLE-bench's copy of it
SUBMISSION_FORMATS: dict[str, tuple[str, str]] = {
    "kaggle": KAGGLE_COLUMNS,
    "mlebench": ("Id", "ClassId"),
}


def write_submission(
    path: str | Path, pred: np.ndarray, columns: tuple[str, str] = KAGGLE_COLUMNS
) -> None:
    """Write ``Id,Class`` rows (Id from 0, Class an integer label) atomically.

    ``columns`` names the two header fields (e.g. MLE-bench's ``Id,ClassId``).
    """
    ids = np.arange(len(pred))
    body = "\n".join(f"{i},{c}" for i, c in zip(ids.tolist(), np.asarray(pred).tolist()))
    with atomic_open(path, "w") as f:
        f.write(f"{columns[0]},{columns[1]}\n")
        f.write(body)
        f.write("\n")


def _params(s: Smoothing) -> dict[str, Any]:
    if s.method in ("median", "majority"):
        return {"window": s.window}
    if s.method == "viterbi":
        return {"transition_weight": s.transition_weight, "prior_scale": s.prior_scale}
    return {}
