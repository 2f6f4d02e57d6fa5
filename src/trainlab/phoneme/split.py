"""The rows a phoneme run learns from, in utterance order, split three ways by utterance.

:func:`prepare_data` reads a loaded data folder in either layout: the competition's (rows in
utterance order, boundaries from the featurizer's index or the overlap of consecutive rows) or a
frame-level shuffle such as MLE-bench's, whose utterances are rebuilt from the 11-frame overlap
across the training and test files together (:mod:`trainlab.phoneme.layout`); test rows then sit
inside their utterances as unlabelled frames (label ``-100``), so the sequence model and the
smoothers read them in context.

The labelled utterances are split into training, validation (every choice: best epoch, smoothing)
and an untouched hold-out that no choice sees (:func:`three_way_split`). An ensemble may deal the
validation utterances into one fold per member (:func:`validation_folds`), each member validating
on its own fold and training on the others (:func:`member_split`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.phoneme.batches import IGNORE
from trainlab.phoneme.files import (
    TimitData,
    Utterances,
    check_finite,
    load_features,
    load_utterances,
    split_by_utterance,
    utterance_index_path,
)
from trainlab.phoneme.layout import ChainedRows, chain_rows, is_shuffled


@dataclass
class RunData:
    """Rows in utterance order with their labels and the split.

    Attributes:
        x: (N, 429) rows: the training memory map, or :class:`ChainedRows` for a shuffled layout.
        y: (N,) int64 labels, ``-100`` for unlabelled (test) rows.
        utts: utterance boundaries of ``x``.
        train_u, val_u, hold_u: utterance indices of the three splits (sorted, disjoint).
        test_rows: for a shuffled layout, the position in ``x`` of each row of ``test_11.npy`` in
            file order; ``None`` when the test rows are separate.
        layout: ``ordered`` or ``shuffled``.
        singletons: utterances of a single row (no overlap found), predicted framewise.
    """

    x: Any
    y: np.ndarray
    utts: Utterances
    train_u: np.ndarray
    val_u: np.ndarray
    hold_u: np.ndarray
    test_rows: np.ndarray | None = None
    layout: str = "ordered"
    singletons: int = 0

    def labelled_rows(self, which: np.ndarray) -> np.ndarray:
        """Rows of the utterances ``which`` that carry a label, in utterance order."""
        rows = self.utts.rows(which)
        return rows[self.y[rows] != IGNORE]


def three_way_split(
    utts: Utterances, val_ratio: float, holdout_ratio: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training, validation and untouched hold-out utterances, about the frame shares asked.

    Without a hold-out this is :func:`~trainlab.phoneme.files.split_by_utterance` as is; with one,
    the hold-out is drawn first (its own seed), then validation from the rest.
    """
    if holdout_ratio <= 0.0:
        train_u, val_u = split_by_utterance(utts, val_ratio, seed)
        return train_u, val_u, np.zeros(0, dtype=np.int64)
    rest, hold_u = split_by_utterance(utts, holdout_ratio, seed + 7919)
    tr, va = split_by_utterance(utts.subset(rest), val_ratio / (1.0 - holdout_ratio), seed)
    return rest[tr], rest[va], hold_u


def validation_folds(data: RunData, members: int) -> list[np.ndarray] | None:
    """The validation utterances dealt into ``members`` folds of about equal frames, or ``None``
    when there are fewer validation utterances than members.

    Longest first, each utterance goes to the fold with the fewest frames so far (ties: the
    lowest fold), so the folds depend on the split alone. Each fold is sorted.
    """
    if members < 2 or len(data.val_u) < members:
        return None
    lengths = data.utts.lengths[data.val_u]
    folds: list[list[int]] = [[] for _ in range(members)]
    frames = np.zeros(members, dtype=np.int64)
    for i in np.argsort(-lengths, kind="stable"):
        k = int(np.argmin(frames))
        folds[k].append(int(data.val_u[i]))
        frames[k] += lengths[i]
    return [np.sort(np.asarray(f, dtype=np.int64)) for f in folds]


def member_split(data: RunData, k: int, members: int) -> RunData:
    """The split member ``k`` of ``members`` trains on: it validates on fold ``k`` of
    :func:`validation_folds` and trains on the training and every other fold's utterances (the
    hold-out is untouched). Without folds, ``data`` itself.
    """
    folds = validation_folds(data, members)
    if folds is None:
        return data
    others = [f for j, f in enumerate(folds) if j != k]
    return replace(data, train_u=np.sort(np.concatenate([data.train_u, *others])), val_u=folds[k])


def prepare_data(
    ds: TimitData, val_ratio: float, holdout_ratio: float, seed: int, *, chain: bool | None = None
) -> RunData:
    """Check the training rows, put every row in utterance order, split the labelled utterances.

    Args:
        ds: the loaded data folder (training rows required).
        val_ratio, holdout_ratio: frame shares of validation and untouched hold-out.
        seed: chooses the utterances of each split.
        chain: rebuild utterances by hashing the overlaps (``None``: when the training rows
            look shuffled and no utterance index says otherwise).

    Returns:
        The :class:`RunData`.
    """
    x, y = ds.train_x, ds.train_y
    assert x is not None and y is not None
    check_finite(x, ds.root / "train_11.npy")
    index = (ds.root / "train_utterances.csv").is_file()
    if chain is None:
        chain = not index and is_shuffled(x)
    if not chain:
        utts = ds.train_utterances()
        return RunData(x, y, utts, *three_way_split(utts, val_ratio, holdout_ratio, seed))
    arrays = [x] if ds.test_x is None else [x, ds.test_x]
    chains = chain_rows(arrays)
    labels = np.full(sum(len(a) for a in arrays), IGNORE, dtype=np.int64)
    labels[: len(x)] = y
    y_all = labels[chains.order]
    test_rows = None
    if ds.test_x is not None:
        where = np.empty(len(chains.order), dtype=np.int64)
        where[chains.order] = np.arange(len(chains.order))
        test_rows = where[len(x) :]
    has_label = np.add.reduceat(y_all != IGNORE, chains.utts.starts) > 0
    labelled = np.flatnonzero(has_label)
    splits = three_way_split(chains.utts.subset(labelled), val_ratio, holdout_ratio, seed)
    tr, va, ho = (labelled[s] for s in splits)
    rows = ChainedRows(arrays, chains.order)
    return RunData(rows, y_all, chains.utts, tr, va, ho, test_rows, "shuffled", chains.singletons)


def prediction_rows(
    features: str | Path, x: np.ndarray
) -> tuple[Any, Utterances, np.ndarray | None]:
    """The rows of a feature file to predict, in utterance order.

    An utterance index beside the file, or rows that overlap in order, give the file as it is.
    Shuffled rows are chained, with the rows of a ``train_11.npy`` beside the file when there is
    one (a shuffled layout splits utterances across its files).

    Returns:
        ``(rows, utts, picked)``: the rows to run the model on, their utterances, and the
        position of each of the file's rows among them (``None``: the rows are the file's).
    """
    features = Path(features)
    if utterance_index_path(features).is_file() or not is_shuffled(x):
        return x, load_utterances(features, x), None
    arrays = [x]
    context = features.with_name("train_11.npy")
    if context.is_file() and context.resolve() != features.resolve():
        arrays = [load_features(context), x]
    chains = chain_rows(arrays)
    where = np.empty(len(chains.order), dtype=np.int64)
    where[chains.order] = np.arange(len(chains.order))
    return (
        ChainedRows(arrays, chains.order),
        chains.utts,
        where[len(arrays[0]) if len(arrays) > 1 else 0 :],
    )


__all__ = [
    "RunData",
    "member_split",
    "prediction_rows",
    "prepare_data",
    "three_way_split",
    "validation_folds",
]
