"""Synthetic data in the exact ml2021spring-hw2 layout, for tests and benchmarks.

Each utterance is a run of phone segments (3-12 frames each, classes drawn at random), each frame a
class-dependent 39-dim mean plus noise; rows are spliced exactly as the featurizer does, so
consecutive rows overlap and utterance boundaries can be recovered. A model can learn the classes
and smoothing along the utterance helps, as with real speech. Written through memory maps, so a
full-size file (1.2 M rows, 2.1 GB) never sits in memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainlab.phoneme.featurize import splice
from trainlab.phoneme.files import FEATURE_DIM, NUM_CLASSES, ROW_DIM, Utterances, labels_to_strings


def synthetic_utterance(
    length: int, rng: np.random.Generator, means: np.ndarray, noise: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """One utterance: (T, 39) float32 frames and (T,) int64 labels."""
    labels = np.empty(length, dtype=np.int64)
    t = 0
    while t < length:
        d = int(rng.integers(3, 13))
        labels[t : t + d] = rng.integers(0, len(means))
        t += d
    frames = means[labels] + noise * rng.standard_normal((length, means.shape[1]))
    return frames.astype(np.float32), labels


def write_synthetic_timit(
    folder: str | Path,
    train_rows: int = 4000,
    test_rows: int = 1000,
    *,
    mean_length: int = 80,
    noise: float = 1.0,
    seed: int = 0,
    write_index: bool = False,
    subdir: bool = False,
) -> Path:
    """Write ``train_11.npy``, ``train_label_11.npy`` and ``test_11.npy`` (about the given row counts).

    Args:
        folder: where to write (created).
        train_rows, test_rows: rows to write (whole utterances; ``test_rows=0`` writes no test file).
        mean_length: mean utterance length in frames (lengths vary +-50%).
        noise: standard deviation of the frame noise (class means have unit scale).
        write_index: also write ``train_utterances.csv`` / ``test_utterances.csv``.
        subdir: write into ``folder/timit_11`` as the Kaggle archive does.

    Returns:
        The folder holding the arrays.
    """
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((NUM_CLASSES, FEATURE_DIM))
    out = Path(folder) / "timit_11" if subdir else Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train_rows), ("test", test_rows)):
        if rows <= 0:
            continue
        lengths = _lengths(rows, mean_length, rng)
        x = np.lib.format.open_memmap(
            out / f"{name}_11.npy", mode="w+", dtype=np.float32, shape=(rows, ROW_DIM)
        )
        y = np.empty(rows, dtype=np.int64)
        pos = 0
        for n in lengths.tolist():
            frames, labels = synthetic_utterance(n, rng, means, noise)
            x[pos : pos + n] = splice(frames)
            y[pos : pos + n] = labels
            pos += n
        x.flush()
        del x
        if name == "train":
            np.save(out / "train_label_11.npy", labels_to_strings(y))
        if write_index:
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
            ids = [f"{name}{k:05d}" for k in range(len(lengths))]
            Utterances(ids, starts, lengths).to_csv(out / f"{name}_utterances.csv")
    return out


def _lengths(rows: int, mean_length: int, rng: np.random.Generator) -> np.ndarray:
    lo, hi = max(1, mean_length // 2), max(2, mean_length * 3 // 2)
    n = rows // max(1, mean_length) + 2
    lengths = rng.integers(lo, hi + 1, size=n)
    while lengths.sum() < rows:
        lengths = np.concatenate([lengths, rng.integers(lo, hi + 1, size=n)])
    cut = int(np.searchsorted(np.cumsum(lengths), rows))
    lengths = lengths[: cut + 1].copy()
    lengths[-1] -= int(lengths.sum()) - rows  # the last utterance ends at exactly `rows`
    return lengths[lengths > 0].astype(np.int64)
