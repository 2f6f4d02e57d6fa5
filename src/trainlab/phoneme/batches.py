"""Batches for the phoneme task, read from memory-mapped rows without copying the data set.

:class:`FrameBatches` draws random rows of a subset (the utterance-level training split) and
gathers them from the memory map batch by batch; :class:`UtteranceBatches` pads whole utterances of
similar length into ``((x, lengths), targets)`` batches for the sequence model, padded targets set
to ``-100`` (ignored by the loss). Both are re-iterable, so the Trainer runs one epoch per pass.

Without a ``seed`` both shuffle with PyTorch's default generator, which :func:`trainlab.train.fit`
seeds and saves in every checkpoint, so a resumed run draws the same batches as an uninterrupted
one. A ``seed`` gives them a private generator instead (reproducible, but not checkpointed).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from trainlab.distributed.sharding import ShardableBatches
from trainlab.phoneme.files import CONTEXT, FEATURE_DIM, Utterances

IGNORE = -100  # target of padded frames (torch's default ignore_index)


class FrameBatches(ShardableBatches):
    """Mini-batches of the rows ``rows`` of ``x`` (and ``y``), reshuffled every pass when ``shuffle``.

    Args:
        x: (N, D) features, typically a memory map.
        y: (N,) int64 labels, or ``None`` to yield inputs only.
        rows: (R,) row indices to draw from.
        batch_size: rows per batch.
        shuffle: random order each pass (else ``rows`` in order).
        seed: a private generator for the shuffling (``None``: PyTorch's default generator).
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray | None,
        rows: np.ndarray,
        batch_size: int,
        shuffle: bool = False,
        seed: int | None = None,
    ) -> None:
        self.x, self.rows, self.batch_size, self.shuffle = x, np.asarray(rows), batch_size, shuffle
        self.y = None if y is None else torch.from_numpy(np.asarray(y, dtype=np.int64))
        self.generator = _generator(seed)

    def __len__(self) -> int:
        return (len(self.rows) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[Any]:
        n = len(self.rows)
        order = torch.randperm(n, generator=self.generator).numpy() if self.shuffle else None
        for lo in range(0, n, self.batch_size):
            if order is None:
                idx = self.rows[lo : lo + self.batch_size]
            else:
                # sorted, so a memory map is read front to back; the order inside a batch is irrelevant
                idx = np.sort(self.rows[order[lo : lo + self.batch_size]])
            idx = self.my_share(idx)  # under torchrun: this rank's rows of the batch
            xb = torch.from_numpy(_gather(self.x, idx))
            if self.y is None:
                yield xb
            else:
                yield xb, self.y[torch.from_numpy(idx)]


class UtteranceBatches(ShardableBatches):
    """Padded batches of whole utterances: ``((x (B, T, D), lengths (B,)), targets (B*T,))``.

    Utterances are bucketed by length (sorted within random pools of ``50 * batch`` utterances) so
    little padding is computed; the batch order is shuffled each pass.

    Args:
        x: (N, 429) rows; each time step gets the middle ``frames`` frames of its row.
        y: (N,) int64 labels or ``None`` (then targets are all ``-100``).
        utts: the utterance boundaries of ``x``.
        which: indices of the utterances to use.
        utterances_per_batch: utterances per batch.
        frames: context frames per time step (odd, 1..11; 1 = the frame's own 39 features).
        shuffle: random batches each pass (else in the order of ``which``, unsorted).
        seed: a private generator for the shuffling (``None``: PyTorch's default generator).
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray | None,
        utts: Utterances,
        which: np.ndarray,
        utterances_per_batch: int,
        frames: int = CONTEXT,
        shuffle: bool = False,
        seed: int | None = None,
    ) -> None:
        self.x, self.utts, self.which = x, utts, np.asarray(which, dtype=np.int64)
        self.y = None if y is None else np.asarray(y, dtype=np.int64)
        self.per_batch, self.shuffle = utterances_per_batch, shuffle
        self.cols = frame_columns(frames)
        self.generator = _generator(seed)

    def __len__(self) -> int:
        return (len(self.which) + self.per_batch - 1) // self.per_batch

    def batches(self) -> list[np.ndarray]:
        """The utterance indices of each batch of the next pass."""
        b = self.per_batch
        if not self.shuffle:
            return [self.which[i : i + b] for i in range(0, len(self.which), b)]
        order = self.which[self._permutation(len(self.which))]
        pool = 50 * b
        groups: list[np.ndarray] = []
        for lo in range(0, len(order), pool):
            chunk = order[lo : lo + pool]
            chunk = chunk[np.argsort(self.utts.lengths[chunk], kind="stable")]
            groups.extend(chunk[i : i + b] for i in range(0, len(chunk), b))
        return [groups[i] for i in self._permutation(len(groups))]

    def _permutation(self, n: int) -> np.ndarray:
        return torch.randperm(n, generator=self.generator).numpy()

    def __iter__(self) -> Iterator[tuple[tuple[Tensor, Tensor], Tensor]]:
        for batch in map(self.my_share, self.batches()):  # torchrun: this rank's share
            yield self.collate(batch)

    def collate(self, batch: np.ndarray) -> tuple[tuple[Tensor, Tensor], Tensor]:
        """Pad the utterances ``batch`` into one batch."""
        lengths = self.utts.lengths[batch]
        t = int(lengths.max())
        d = self.cols.stop - self.cols.start
        xb = np.zeros((len(batch), t, d), dtype=np.float32)
        yb = np.full((len(batch), t), IGNORE, dtype=np.int64)
        for k, u in enumerate(batch.tolist()):
            s, n = int(self.utts.starts[u]), int(self.utts.lengths[u])
            xb[k, :n] = self.x[s : s + n, self.cols]
            if self.y is not None:
                yb[k, :n] = self.y[s : s + n]
        return (torch.from_numpy(xb), torch.from_numpy(lengths.copy())), torch.from_numpy(
            yb.reshape(-1)
        )


def _generator(seed: int | None) -> torch.Generator | None:
    """A private generator seeded with ``seed``; ``None`` draws from PyTorch's default one."""
    return None if seed is None else torch.Generator().manual_seed(seed)


def frame_columns(frames: int) -> slice:
    """Columns of a 429-wide row holding its middle ``frames`` frames."""
    if frames % 2 != 1 or not 1 <= frames <= CONTEXT:
        raise ValueError(f"frames must be odd and in 1..{CONTEXT}, got {frames}")
    first = CONTEXT // 2 - frames // 2
    return slice(first * FEATURE_DIM, (first + frames) * FEATURE_DIM)


def masked_accuracy(outputs: Tensor, targets: Tensor) -> float:
    """Accuracy over rows whose target is not ``-100`` (outputs (N, C), targets (N,))."""
    keep = targets != IGNORE
    if not bool(keep.any()):
        return float("nan")
    return (outputs[keep].argmax(dim=-1) == targets[keep]).float().mean().item()


def _gather(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    # always a fresh writable array: a slice of a read-only memory map would be shared
    if len(idx) and idx[-1] - idx[0] + 1 == len(idx):  # a contiguous run: one slice
        return np.array(x[idx[0] : idx[-1] + 1], dtype=np.float32)
    return np.asarray(x[idx], dtype=np.float32)
