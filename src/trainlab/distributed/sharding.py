"""Split each global batch across ranks: disjoint, contiguous, balanced shards.

Every rank draws the same permutation (same seed), cuts it into the same global batches as a
single-process run would, and keeps its own slice of each batch. The union of the shards of a
step is exactly the single-process batch, so the averaged gradient is the same; no row is seen
twice in an epoch; all ranks take the same number of steps (a collective waits for every rank);
a last batch smaller than the number of ranks leaves some ranks an empty shard, handled by the
loop (it still joins the gradient all-reduce, with nothing to add).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from torch import Tensor

from trainlab.errors import ConfigError


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of ``n`` that ``rank`` of ``world_size`` takes (sizes differ by ≤ 1).

    Args:
        n: rows in the global batch.
        rank: this process's rank.
        world_size: the number of ranks.

    Returns:
        ``(lo, hi)``.
    """
    return n * rank // world_size, n * (rank + 1) // world_size


def shard_rows(rows: Any, rank: int, world_size: int) -> Any:
    """This rank's contiguous slice of ``rows`` (anything sliceable with a ``len``)."""
    lo, hi = shard_bounds(len(rows), rank, world_size)
    return rows[lo:hi]


class ShardableBatches:
    """A mixin for batch iterables that shard themselves: ``shard(rank, world_size)`` and
    :meth:`my_share`, which the iterable applies to the row (or utterance) indices of each batch.
    Unsharded (the defaults), ``my_share`` returns the indices unchanged."""

    rank: int = 0
    world_size: int = 1

    def shard(self, rank: int, world_size: int) -> ShardableBatches:
        """Yield only ``rank``'s share of every batch from now on; returns ``self``."""
        self.rank, self.world_size = rank, world_size
        return self

    def my_share(self, indices: Any) -> Any:
        """This rank's contiguous share of one batch's ``indices``."""
        return shard_rows(indices, self.rank, self.world_size)


class ShardedBatches:
    """Each batch of ``batches`` cut to this rank's rows (every tensor shares the first dimension).

    For batch iterables that cannot shard themselves; every rank still builds the whole batch.
    Iterables with a ``shard(rank, world_size)`` method are better sharded by it.

    Args:
        batches: an iterable of ``(inputs, targets)`` batches.
        rank, world_size: this rank and the number of ranks.
    """

    def __init__(self, batches: Iterable[Any], rank: int, world_size: int) -> None:
        self.batches, self.rank, self.world_size = batches, rank, world_size

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        for batch in self.batches:
            rows = _common_rows(batch)
            lo, hi = shard_bounds(rows, self.rank, self.world_size)
            yield _slice(batch, lo, hi)


def shard_batches(batches: Any, rank: int, world_size: int) -> Any:
    """``batches`` restricted to ``rank``'s share of every batch.

    Args:
        batches: an iterable of batches; with a ``shard(rank, world_size)`` method (trainlab's
            array batches, the phoneme batches) that method is used, else :class:`ShardedBatches`.
        rank, world_size: this rank and the number of ranks.

    Returns:
        An iterable with as many batches as ``batches`` (same on every rank).
    """
    shard = getattr(batches, "shard", None)
    if callable(shard):
        return shard(rank, world_size)
    return ShardedBatches(batches, rank, world_size)


def _tensors(obj: Any) -> list[Tensor]:
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for o in obj for t in _tensors(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in _tensors(o)]
    return []


def _common_rows(batch: Any) -> int:
    sizes = {int(t.shape[0]) for t in _tensors(batch) if t.dim() > 0}
    if len(sizes) != 1:
        raise ConfigError(
            "distributed training: a batch's tensors have different first dimensions "
            f"({', '.join(map(str, sorted(sizes))) or 'none'}), so it cannot be split by rows; "
            "give the batch iterable a shard(rank, world_size) method"
        )
    return sizes.pop()


def _slice(obj: Any, lo: int, hi: int) -> Any:
    if isinstance(obj, Tensor):
        return obj[lo:hi] if obj.dim() > 0 else obj
    if isinstance(obj, (tuple, list)):
        return type(obj)(_slice(o, lo, hi) for o in obj)
    if isinstance(obj, dict):
        return {k: _slice(v, lo, hi) for k, v in obj.items()}
    return obj
