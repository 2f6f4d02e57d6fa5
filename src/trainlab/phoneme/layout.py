"""Utterances rebuilt from shuffled rows: the 11-frame overlap matched by hashing, in any row order.

Inside an utterance, the row of frame ``t+1`` holds frames ``t-4 .. t+6`` and the row of frame ``t``
frames ``t-5 .. t+5``: the successor's first 10 frames equal the row's last 10, exactly (edge frames
repeat at the utterance's ends, which keeps the equality there). :func:`chain_rows` hashes every
row's last 10 frames and every row's first 10 frames, links each row to the one row whose head
equals its tail (exact byte equality checked after the hash match; ambiguous matches are not
linked), and follows the links into chains: one chain per utterance, whatever the order of the rows
and across several files together (MLE-bench ships the competition's training set as a random
frame-level shuffle split into its training and test files). :class:`ChainedRows` presents the
chained rows as one array in utterance order, read from the files' memory maps, so the rest of the
package sees an ordinary utterance-ordered array.

:func:`is_shuffled` tells the two layouts apart: in the competition's own files consecutive rows
overlap almost everywhere; in a shuffled file almost nowhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainlab.phoneme.files import FEATURE_DIM, ROW_DIM, Utterances

_OVERLAP = ROW_DIM - FEATURE_DIM  # 390 values shared by consecutive rows
_CHUNK = 1 << 15
_PROBE = np.array([1, 20])  # the values of each frame hashed: c1 and a delta


@dataclass
class Chains:
    """Rows of several arrays put in utterance order.

    Attributes:
        order: (N,) int64 positions in the arrays' concatenation, in utterance order.
        utts: boundaries of the utterances within ``order``.
        singletons: utterances of one row (rows no other row overlaps); their model reads the row
            alone, its own 11 frames.
    """

    order: np.ndarray
    utts: Utterances
    singletons: int


class ChainedRows:
    """The rows of ``arrays`` (concatenated) in the order ``order``, read lazily.

    Supports what the batching code uses: ``len``, ``shape``, ``dtype``, ``x[a:b]``,
    ``x[a:b, cols]`` and ``x[int_array]`` (rows in the new order).
    """

    def __init__(self, arrays: Sequence[np.ndarray], order: np.ndarray) -> None:
        self.arrays = list(arrays)
        self.offsets = np.cumsum([0, *(len(a) for a in self.arrays)])
        self.order = np.asarray(order, dtype=np.int64)
        self.dtype = self.arrays[0].dtype
        self.shape = (len(self.order), self.arrays[0].shape[1])
        self.ndim = 2

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, key: object) -> np.ndarray:
        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        if isinstance(rows, slice):
            rows = np.arange(*rows.indices(len(self.order)))
        return self.gather(self.order[np.asarray(rows, dtype=np.int64)])[:, cols]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self[:] if dtype is None else self[:].astype(dtype)

    def gather(self, positions: np.ndarray) -> np.ndarray:
        """Rows at ``positions`` of the concatenation, in that order: (len, D) float32."""
        out = np.empty((len(positions), self.shape[1]), dtype=self.dtype)
        which = np.searchsorted(self.offsets, positions, side="right") - 1
        for k, arr in enumerate(self.arrays):
            sel = np.flatnonzero(which == k)
            if len(sel):
                local = positions[sel] - self.offsets[k]
                srt = np.argsort(local, kind="stable")  # read each memory map front to back
                out[sel[srt]] = arr[local[srt]]
        return out


def is_shuffled(x: np.ndarray, sample: int = 4096, seed: int = 0) -> bool:
    """Whether consecutive rows of ``x`` mostly fail to overlap (a frame-level shuffle).

    Checks up to ``sample`` random consecutive pairs: in utterance order nearly all overlap (only
    utterance boundaries break it), in a shuffle nearly none do. Below half is called shuffled.
    """
    n = len(x)
    if n < 3:
        return False
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n - 1, size=min(sample, n - 1), replace=False))
    a, b = np.asarray(x[idx]), np.asarray(x[idx + 1])
    same = (b[:, :_OVERLAP] == a[:, FEATURE_DIM:]).all(axis=1)
    return bool(same.mean() < 0.5)


def _hashes(arrays: Sequence[np.ndarray], first: int) -> np.ndarray:
    """A 64-bit hash of 10 frames of every row from frame ``first`` on, all arrays concatenated.

    Hashes two values of each of the 10 frames (a hash only proposes matches; equality of all 390
    values is checked after), as their bit patterns, so equal frames hash equally wherever they sit.
    """
    cols = np.concatenate([(first + f) * FEATURE_DIM + _PROBE for f in range(10)])
    weights = np.random.default_rng(12345).integers(1, 2**63, size=len(cols), dtype=np.uint64) | 1
    out = []
    for arr in arrays:
        for lo in range(0, len(arr), _CHUNK):
            block = np.ascontiguousarray(arr[lo : lo + _CHUNK][:, cols]).view(np.uint32)
            with np.errstate(over="ignore"):
                out.append((block.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.uint64)


def _unique_keys(keys: np.ndarray) -> np.ndarray:
    """A mask of the entries of ``keys`` whose value occurs once."""
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return counts[inverse] == 1


def successors(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """For every row of the concatenation, the row that follows it in its utterance, else -1.

    A row's tail (last 10 frames) is matched with another row's head (first 10 frames): hashes
    first, then exact equality of the values; a tail or head shared by several rows, a row matched
    to itself, and hash collisions are left unlinked.
    """
    tails = _hashes(arrays, 1)
    heads = _hashes(arrays, 0)
    n = len(tails)
    nxt = np.full(n, -1, dtype=np.int64)
    ok_t, ok_h = np.flatnonzero(_unique_keys(tails)), np.flatnonzero(_unique_keys(heads))
    h_sorted = ok_h[np.argsort(heads[ok_h], kind="stable")]
    pos = np.searchsorted(heads[h_sorted], tails[ok_t])
    pos = np.minimum(pos, max(len(h_sorted) - 1, 0))
    if not len(h_sorted):
        return nxt
    cand = h_sorted[pos]
    hit = (heads[cand] == tails[ok_t]) & (cand != ok_t)
    src, dst = ok_t[hit], cand[hit]
    rows = ChainedRows(arrays, np.arange(n))
    exact = np.ones(len(src), dtype=bool)
    for lo in range(0, len(src), _CHUNK):
        a = rows.gather(src[lo : lo + _CHUNK])[:, FEATURE_DIM:]
        b = rows.gather(dst[lo : lo + _CHUNK])[:, :_OVERLAP]
        exact[lo : lo + _CHUNK] = (a == b).all(axis=1)
    nxt[src[exact]] = dst[exact]
    return nxt


def chain_rows(arrays: Sequence[np.ndarray]) -> Chains:
    """Rebuild the utterances of the rows of ``arrays`` (concatenated) from their overlaps.

    Args:
        arrays: (N_k, 429) feature arrays (memory maps are read in chunks), e.g. a shuffled
            training file and the test file its utterances are split with.

    Returns:
        The :class:`Chains`: rows in utterance order, utterances ``chain00000 ...``. Chains are
        ordered by their first row; a cycle (impossible in real data) is cut at its smallest row.
    """
    nxt = successors(arrays)
    n = len(nxt)
    has_prev = np.zeros(n, dtype=bool)
    has_prev[nxt[nxt >= 0]] = True
    heads = np.flatnonzero(~has_prev)
    order = np.empty(n, dtype=np.int64)
    seen = np.zeros(n, dtype=bool)
    starts, lengths, pos = [], [], 0
    for start in [*heads.tolist(), *range(n)]:
        if seen[start]:
            continue  # rows of a cycle are reached from the range(n) pass, each once
        starts.append(pos)
        r = start
        while r >= 0 and not seen[r]:
            seen[r] = True
            order[pos] = r
            pos += 1
            r = int(nxt[r])
        lengths.append(pos - starts[-1])
    lens = np.asarray(lengths, dtype=np.int64)
    ids = [f"chain{k:05d}" for k in range(len(lens))]
    utts = Utterances(ids, np.asarray(starts, dtype=np.int64), lens)
    return Chains(order, utts, int((lens == 1).sum()))


__all__ = ["ChainedRows", "Chains", "chain_rows", "is_shuffled", "successors"]
