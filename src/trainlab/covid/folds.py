"""Validation splits for the COVID windows: blocked in time, random, the course's, the later days.

Rows are sliding windows of D days, so rows i and i+1 of a state share D-1 days and a random split
puts almost every validation day into the training set too: it rewards memorising the curve, not
forecasting it. The Kaggle test rows (and the held-out evaluation rows) lie in other time windows.

* ``blocked`` (the default): each state's sequence of windows is cut into ``k`` contiguous chunks;
  fold j validates on chunk j of every state and trains on the rest, minus ``gap`` windows on each
  side of the chunk so that no training window shares a day with a validation window
  (``gap = D - 1``). States are aligned in time, so a fold's validation period is unseen for every
  state. The last fold is a true forecast of later days.
* ``random``: shuffled k-fold over rows (what most notebooks do; optimistic here).
* ``course``: the course sample code's split, every 10th row (index % 10 == 0) validates.

:func:`holdout_split` is the later-days simulation's split: each state's last windows, after a gap,
stand in for the held-out evaluation rows that follow the training days.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainlab.errors import ConfigError

FOLD_SCHEMES = ("blocked", "random", "course")


def fold_gap(gap: int | None, n_days: int) -> int:
    """Windows dropped on each side of a blocked validation chunk: ``gap``, or by default
    ``n_days - 1`` (the fewest with which no training window shares a day with a validation one)."""
    return n_days - 1 if gap is None else gap


@dataclass(frozen=True)
class Fold:
    """Row indices of one train/validation split."""

    name: str
    train: np.ndarray  # (N_train,) int64
    val: np.ndarray  # (N_val,) int64


def make_folds(
    scheme: str,
    state: np.ndarray,
    order: np.ndarray,
    *,
    k: int = 5,
    gap: int = 2,
    seed: int = 0,
) -> list[Fold]:
    """The folds of validation ``scheme`` over N rows.

    Args:
        scheme: ``blocked``, ``random`` or ``course`` (see the module docstring).
        state: (N,) state index of each row.
        order: (N,) position of each row in its state's time sequence
            (:func:`trainlab.covid.series.time_order`).
        k: number of folds (blocked, random).
        gap: windows dropped from training on each side of a blocked validation chunk.
        seed: shuffling seed (random).

    Returns:
        The folds; every row is validated exactly once for ``blocked`` and ``random``.
    """
    n = len(state)
    if scheme == "course":
        idx = np.arange(n)
        return [Fold("course", idx[idx % 10 != 0], idx[idx % 10 == 0])]
    if k < 2:
        raise ConfigError(f"{scheme} cross-validation needs k >= 2 folds, got {k}")
    if scheme == "random":
        perm = np.random.default_rng(seed).permutation(n)
        chunks = np.array_split(perm, k)
        return [
            Fold(
                f"random{j + 1}", np.sort(np.concatenate(chunks[:j] + chunks[j + 1 :])), np.sort(c)
            )
            for j, c in enumerate(chunks)
        ]
    if scheme == "blocked":
        return _blocked_folds(state, order, k, gap)
    raise ConfigError(
        f"unknown validation scheme {scheme!r}; choose one of: {', '.join(FOLD_SCHEMES)}"
    )


def _blocked_folds(state: np.ndarray, order: np.ndarray, k: int, gap: int) -> list[Fold]:
    """``k`` contiguous chunks of every state's windows, ``gap`` windows dropped around each."""
    n = len(state)
    if gap < 0:
        raise ConfigError(f"blocked cross-validation needs gap >= 0, got {gap}")
    val_parts: list[list[np.ndarray]] = [[] for _ in range(k)]
    drop_parts: list[list[np.ndarray]] = [[] for _ in range(k)]
    for s in np.unique(state):
        rows = np.flatnonzero(state == s)
        rows = rows[np.argsort(order[rows], kind="stable")]  # time order
        if len(rows) < k:
            raise ConfigError(
                f"blocked cross-validation with k={k} needs at least {k} windows per state; "
                f"state {int(s)} has {len(rows)}"
            )
        bounds = np.linspace(0, len(rows), k + 1).round().astype(int)
        for j in range(k):
            lo, hi = bounds[j], bounds[j + 1]
            val_parts[j].append(rows[lo:hi])
            drop_parts[j].append(rows[max(lo - gap, 0) : min(hi + gap, len(rows))])
    folds = []
    for j in range(k):
        val = np.sort(np.concatenate(val_parts[j]))
        train_mask = np.ones(n, dtype=bool)
        train_mask[np.concatenate(drop_parts[j])] = False
        if not train_mask.any():
            raise ConfigError(
                f"blocked cross-validation with k={k} and gap={gap} leaves fold {j + 1} no "
                "training rows; use fewer folds or a smaller gap"
            )
        folds.append(Fold(f"blocked{j + 1}", np.flatnonzero(train_mask), val))
    return folds


def holdout_problem(state: np.ndarray, rows: int, gap: int) -> str | None:
    """Why the later-days simulation cannot run on these rows (None: it can)."""
    counts = np.bincount(state)
    counts = counts[counts > 0]
    if len(counts) and counts.min() < rows + gap + 2:
        return (
            f"it needs at least {rows + gap + 2} windows per state ({rows} held out, {gap} "
            f"dropped, 2 to train on); the smallest state has {int(counts.min())}"
        )
    return None


def holdout_split(
    order: np.ndarray, state: np.ndarray, rows: int, gap: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each state's last ``rows`` windows (in time order) and the windows before its last
    ``rows + gap`` (the training part); the ``gap`` windows between are dropped.

    Returns:
        (training row indices, held-out row indices), both sorted.
    """
    train_parts, hold_parts = [], []
    for s in np.unique(state):
        idx = np.flatnonzero(state == s)
        idx = idx[np.argsort(order[idx], kind="stable")]
        if len(idx) < rows + gap + 2:
            raise ConfigError(
                f"the later-days simulation needs at least {rows + gap + 2} windows per state; "
                f"state {int(s)} has {len(idx)} (set a smaller holdout_rows)"
            )
        hold_parts.append(idx[-rows:])
        train_parts.append(idx[: len(idx) - rows - gap])
    return np.sort(np.concatenate(train_parts)), np.sort(np.concatenate(hold_parts))


def testlike_problem(
    state: np.ndarray, order: np.ndarray, n_days: int, block: int, gap: int
) -> str | None:
    """Why the test-like validation cannot run on these rows (None: it can)."""
    counts = np.bincount(state)
    counts = counts[counts > 0]
    need = block + gap + n_days + 1
    if len(counts) and counts.min() < need:
        return (
            f"it needs at least {need} windows per state ({block} in the held-out block, a gap "
            f"of {gap} days, 2 to train on); the smallest state has {int(counts.min())}"
        )
    return None


def testlike_split(
    order: np.ndarray, state: np.ndarray, n_days: int, block: int, gap: int, side: str
) -> tuple[np.ndarray, np.ndarray]:
    """A split laid out like the test file: per state, non-overlapping windows (every
    ``n_days``-th) of a block of ``block`` windows held out, and training windows at least ``gap``
    days away on one side only, none sharing a day with the block.

    Args:
        order: (N,) each row's position in its state's time sequence.
        state: (N,) state of each row.
        n_days: days per window (D).
        block: windows per state in the held-out block (its first or last ``block`` windows).
        gap: days between the block and the nearest training day.
        side: ``after`` (the block follows the training days, as for the first half of the
            states in the real test file) or ``before`` (it precedes them, the other half).

    Returns:
        (training row indices, held-out row indices), both sorted.
    """
    train_parts, hold_parts = [], []
    for s in np.unique(state):
        idx = np.flatnonzero(state == s)
        idx = idx[np.argsort(order[idx], kind="stable")]
        n = len(idx)
        if side == "after":
            held = np.arange(n - 1, n - 1 - block, -n_days)[::-1]
            held = held[held >= 0]
            train = np.arange(0, max(held[0] - gap - n_days + 1, 0))
        elif side == "before":
            held = np.arange(0, min(block, n), n_days)
            train = np.arange(held[-1] + n_days + gap, n)
        else:
            raise ConfigError(f"side must be 'after' or 'before', got {side!r}")
        if len(train) < 2:
            raise ConfigError(
                f"the test-like validation needs at least {block + gap + n_days + 1} windows per "
                f"state; state {int(s)} has {n}"
            )
        hold_parts.append(idx[held])
        train_parts.append(idx[train])
    return np.sort(np.concatenate(train_parts)), np.sort(np.concatenate(hold_parts))
