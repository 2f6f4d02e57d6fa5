"""Batches for the phoneme task, read from memory-mapped rows without copying the data set.

:class:`FrameBatches` draws random rows of a subset (the utterance-level training split) and
gathers them from the memory map batch by batch; :class:`UtteranceBatches` pads whole utterances of
similar length into ``((x, lengths), targets)`` batches for the sequence model, padded targets set
to ``-100`` (ignored by the loss); for training they can instead cut every utterance into pieces of
a fixed number of frames at a random offset each pass (``chunk``): larger batches of shorter
sequences, far fewer sequential recurrent steps per frame. Both are re-iterable, so the Trainer
runs one epoch per pass.

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
        chunk: with ``shuffle``, cut each utterance into pieces of ``chunk`` frames (the first
            piece shorter, at a random offset each pass) and batch the pieces; 0 = whole
            utterances. ``utterances_per_batch`` then counts pieces.
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
        chunk: int = 0,
    ) -> None:
        if chunk < 0:
            raise ValueError(f"chunk must be >= 0, got {chunk}")
        self.x, self.utts, self.which = x, utts, np.asarray(which, dtype=np.int64)
        self.chunk = chunk if shuffle else 0
        self.pieces = (utts.starts, utts.lengths)  # (first row, frames) of what batches index
        self.y = None if y is None else np.asarray(y, dtype=np.int64)
        self.per_batch, self.shuffle = utterances_per_batch, shuffle
        self.cols = frame_columns(frames)
        self.generator = _generator(seed)

    def __len__(self) -> int:
        if self.chunk:  # an upper bound: the pieces of a pass depend on its offsets
            pieces = (self.utts.lengths[self.which] + self.chunk - 1) // self.chunk + 1
            return (int(pieces.sum()) + self.per_batch - 1) // self.per_batch
        return (len(self.which) + self.per_batch - 1) // self.per_batch

    def batches(self) -> list[np.ndarray]:
        """The indices into :attr:`pieces` of each batch of the next pass.

        Without ``chunk`` the pieces are the utterances themselves: these are utterance indices.
        """
        b = self.per_batch
        if not self.shuffle:
            return [self.which[i : i + b] for i in range(0, len(self.which), b)]
        order = self.which[self._permutation(len(self.which))]
        if self.chunk:
            self.pieces = self._cut(order)
            order = np.arange(len(self.pieces[0]))
        lengths = self.pieces[1]
        pool = 50 * b
        groups: list[np.ndarray] = []
        for lo in range(0, len(order), pool):
            part = order[lo : lo + pool]
            part = part[np.argsort(lengths[part], kind="stable")]
            groups.extend(part[i : i + b] for i in range(0, len(part), b))
        return [groups[i] for i in self._permutation(len(groups))]

    def _cut(self, which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(first row, frames) of the pieces of the utterances ``which``, a random offset each."""
        c = self.chunk
        starts, lengths = self.utts.starts[which], self.utts.lengths[which]
        offsets = torch.randint(0, c, (len(which),), generator=self.generator).tolist()
        out_s: list[int] = []
        out_n: list[int] = []
        for s, n, o in zip(starts.tolist(), lengths.tolist(), offsets):
            cuts = [0, *range(o, n, c)] if 0 < o < n else list(range(0, n, c))
            for a, e in zip(cuts, [*cuts[1:], n]):
                out_s.append(s + a)
                out_n.append(e - a)
        return np.asarray(out_s, dtype=np.int64), np.asarray(out_n, dtype=np.int64)

    def _permutation(self, n: int) -> np.ndarray:
        return torch.randperm(n, generator=self.generator).numpy()

    def __iter__(self) -> Iterator[tuple[tuple[Tensor, Tensor], Tensor]]:
        for batch in map(self.my_share, self.batches()):  # torchrun: this rank's share
            yield self.collate_spans(self.pieces[0][batch], self.pieces[1][batch])

    def collate(self, batch: np.ndarray) -> tuple[tuple[Tensor, Tensor], Tensor]:
        """Pad the utterances ``batch`` into one batch."""
        return self.collate_spans(self.utts.starts[batch], self.utts.lengths[batch])

    def collate_spans(
        self, starts: np.ndarray, lengths: np.ndarray
    ) -> tuple[tuple[Tensor, Tensor], Tensor]:
        """Pad the row spans ``starts[k] : starts[k] + lengths[k]`` into one batch."""
        t = int(lengths.max())
        d = self.cols.stop - self.cols.start
        xb = np.zeros((len(starts), t, d), dtype=np.float32)
        yb = np.full((len(starts), t), IGNORE, dtype=np.int64)
        for k, (s, n) in enumerate(zip(starts.tolist(), lengths.tolist())):
            xb[k, :n] = self.x[s : s + n, self.cols]
            if self.y is not None:
                yb[k, :n] = self.y[s : s + n]
        lens = torch.from_numpy(np.array(lengths, dtype=np.int64))
        return (torch.from_numpy(xb), lens), torch.from_numpy(yb.reshape(-1))


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
