"""Turn training data into batches without per-sample Python work, once per epoch.

In-memory arrays (tensors, NumPy arrays, memory-mapped ``.npy`` files) are batched by indexing with
a block of shuffled row indices, so a batch costs one gather instead of ``batch_size`` calls to a
``Dataset``. Memory-mapped arrays are read batch by batch and never copied whole. Anything else that
yields ``(inputs, targets)`` batches is passed through unchanged, and a zero-argument callable is
called once per epoch for a fresh iterable.

Every epoch iterates the batches again, so a one-shot iterator (a generator: ``iter(x) is x``) can
feed a single epoch only; :func:`epoch_batches` refuses it for more. A per-step learning-rate
schedule must know the run's length: :func:`steps_per_epoch` takes ``len()`` when the batches have
one, else the ``steps_per_epoch`` setting, else counts one pass over a re-iterable before training
(cheap for in-memory data; set ``steps_per_epoch`` for a stream that is slow to read).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import Tensor

from trainlab.distributed.sharding import shard_bounds
from trainlab.errors import ConfigError, TrainlabError


class ArrayBatches:
    """Mini-batches over aligned arrays ``(X, y, ...)``, reshuffled every epoch.

    Args:
        arrays: tensors or NumPy arrays (memory-mapped ones included) with the same first dimension.
        batch_size: rows per batch; the last batch may be smaller.
        shuffle: draw a new permutation from ``generator`` each epoch.
        generator: the source of randomness for shuffling (reproducible runs).
    """

    def __init__(
        self,
        arrays: Sequence[Any],
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        if len(arrays) < 1:
            raise TrainlabError("training data must hold at least one array")
        n = len(arrays[0])
        for a in arrays[1:]:
            if len(a) != n:
                raise TrainlabError(
                    f"arrays have different lengths: {', '.join(str(len(a)) for a in arrays)} rows"
                )
        if n == 0:
            raise TrainlabError("the data holds no rows")
        self.arrays = [_as_tensor_if_in_memory(a) for a in arrays]
        self.n = n
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.rank, self.world_size = 0, 1

    def __len__(self) -> int:
        return (self.n + self.batch_size - 1) // self.batch_size

    def shard(self, rank: int, world_size: int) -> ArrayBatches:
        """These batches cut to ``rank``'s share of each (see :mod:`trainlab.distributed`).

        Every rank draws the same permutation, so the shards of a batch are disjoint and together
        are the single-process batch; ``batch_size`` stays the global batch.

        Returns:
            ``self``, now yielding this rank's rows only.
        """
        self.rank, self.world_size = rank, world_size
        return self

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        if self.shuffle:
            order = torch.randperm(self.n, generator=self.generator)
        else:
            order = None
        for start in range(0, self.n, self.batch_size):
            stop = min(start + self.batch_size, self.n)
            lo, hi = shard_bounds(stop - start, self.rank, self.world_size)
            if order is None:
                sl = slice(start + lo, start + hi)
                yield tuple(_to_tensor(a[sl]) for a in self.arrays)
            else:
                # Sorted indices read a memory-mapped file front to back; the order of rows inside
                # a batch does not change a mean loss.
                idx = order[start:stop].sort().values[lo:hi]
                yield tuple(_take(a, idx) for a in self.arrays)


class FreshBatches:
    """A re-iterable over ``factory()``: each pass (each epoch) calls it for a new iterable.

    Args:
        factory: a zero-argument callable returning an iterable of batches or ``(X, y)`` arrays.
        batch_size, shuffle, generator: as for :class:`ArrayBatches`, when it returns arrays.
    """

    def __init__(
        self,
        factory: Callable[[], Any],
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        self.factory = factory
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator

    def __iter__(self) -> Iterator[Any]:
        data = self.factory()
        if not isinstance(data, Iterable):
            raise TrainlabError(
                f"the batch factory returned {type(data).__name__}, not an iterable of batches"
            )
        return iter(as_batches(data, self.batch_size, self.shuffle, self.generator))


def as_batches(
    data: Any, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
) -> Iterable[Any]:
    """Batches of ``data``, however it comes.

    Args:
        data: ``(X, y, ...)`` arrays (become :class:`ArrayBatches`), an iterable of
            ``(inputs, targets)`` batches (returned as it is), or a zero-argument callable
            returning either, called once per pass (becomes :class:`FreshBatches`).
        batch_size, shuffle, generator: as for :class:`ArrayBatches`.

    Returns:
        An iterable of batches.
    """
    if isinstance(data, (tuple, list)) and data and all(_is_array(a) for a in data):
        return ArrayBatches(data, batch_size, shuffle=shuffle, generator=generator)
    if isinstance(data, Iterable):
        return data
    if callable(data):
        return FreshBatches(data, batch_size, shuffle=shuffle, generator=generator)
    raise TrainlabError(
        "training data must be a tuple of arrays (X, y), an iterable of batches or a callable "
        f"returning one, got {type(data).__name__}"
    )


def epoch_batches(
    data: Any,
    batch_size: int,
    epochs: int,
    what: str = "training data",
    shuffle: bool = False,
    generator: torch.Generator | None = None,
) -> Iterable[Any]:
    """:func:`as_batches`, refusing a one-shot iterator that would have to feed several epochs.

    Args:
        data: as for :func:`as_batches`.
        batch_size, shuffle, generator: as for :class:`ArrayBatches`.
        epochs: how many times the batches will be iterated.
        what: names the data in the error message.

    Raises:
        ConfigError: ``data`` is an iterator (``iter(data) is data``) and ``epochs > 1``.
    """
    if epochs > 1 and isinstance(data, Iterator):
        raise ConfigError(
            f"{what} is a one-shot iterator (a generator?) that would be empty after the first of "
            f"{epochs} epochs; pass a re-iterable (a list, a DataLoader) or a zero-argument "
            "callable that returns a fresh iterable of batches for each epoch"
        )
    return as_batches(data, batch_size, shuffle=shuffle, generator=generator)


def steps_per_epoch(batches: Iterable[Any], declared: int | None = None) -> int:
    """Batches per epoch: ``len(batches)``, else ``declared``, else one counting pass.

    The counting pass leaves Python's, NumPy's and PyTorch's global random generators as it found
    them, so a run that counts draws the same numbers as one that need not.

    Args:
        batches: what :func:`epoch_batches` returned.
        declared: the ``steps_per_epoch`` setting, or ``None``.

    Raises:
        ConfigError: ``declared`` contradicts ``len(batches)``, or the batches are a one-shot
            iterator without ``len()`` and nothing was declared (counting would consume them).
        TrainlabError: the batches are empty.
    """
    n = _length(batches)
    if n is not None:
        if declared is not None and declared != n:
            raise ConfigError(
                f"steps_per_epoch is {declared} but the training data has {n} batches"
            )
    elif declared is not None:
        n = declared
    elif isinstance(batches, Iterator):
        raise ConfigError(
            "steps_per_epoch: the training data is a one-shot iterator without len(), so the "
            "learning-rate schedule's length is unknown; set steps_per_epoch, or pass a list or "
            "a callable returning a fresh iterable"
        )
    else:
        with _global_rng_kept():
            n = sum(1 for _ in batches)
    if n < 1:
        raise TrainlabError("the training data yields no batches")
    return n


def to_device(obj: Any, device: torch.device) -> Any:
    """Move a tensor, or the tensors inside a tuple/list/dict, to ``device``."""
    if isinstance(obj, Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_device(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj


def _length(batches: Iterable[Any]) -> int | None:
    try:
        return len(batches)  # type: ignore[arg-type]
    except TypeError:
        return None


@contextmanager
def _global_rng_kept() -> Iterator[None]:
    py_state, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def _is_array(a: Any) -> bool:
    return isinstance(a, (Tensor, np.ndarray))


def _as_tensor_if_in_memory(a: Any) -> Any:
    # A memmap stays a memmap (read per batch); an in-memory NumPy array is shared, not copied.
    if isinstance(a, np.memmap) or (isinstance(a, np.ndarray) and not a.flags.writeable):
        return a
    if isinstance(a, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(a))
    return a


def _take(a: Any, idx: Tensor) -> Tensor:
    if isinstance(a, Tensor):
        return a.index_select(0, idx)
    return torch.from_numpy(np.ascontiguousarray(a[idx.numpy()]))


def _to_tensor(a: Any) -> Tensor:
    return a if isinstance(a, Tensor) else torch.from_numpy(np.ascontiguousarray(a))
