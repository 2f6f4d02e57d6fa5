"""Turn training data into batches without per-sample Python work.

In-memory arrays (tensors, NumPy arrays, memory-mapped ``.npy`` files) are batched by indexing with
a block of shuffled row indices, so a batch costs one gather instead of ``batch_size`` calls to a
``Dataset``. Memory-mapped arrays are read batch by batch and never copied whole. Anything else that
yields ``(inputs, targets)`` batches is passed through unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from trainlab.errors import TrainlabError


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

    def __len__(self) -> int:
        return (self.n + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        if self.shuffle:
            order = torch.randperm(self.n, generator=self.generator)
        else:
            order = None
        for start in range(0, self.n, self.batch_size):
            if order is None:
                sl = slice(start, min(start + self.batch_size, self.n))
                yield tuple(_to_tensor(a[sl]) for a in self.arrays)
            else:
                # Sorted indices read a memory-mapped file front to back; the order of rows inside
                # a batch does not change a mean loss.
                idx = order[start : start + self.batch_size].sort().values
                yield tuple(_take(a, idx) for a in self.arrays)


def as_batches(
    data: Any, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
) -> Iterable[Any]:
    """``(X, y)`` arrays become :class:`ArrayBatches`; any other iterable of batches is returned."""
    if isinstance(data, (tuple, list)) and data and all(_is_array(a) for a in data):
        return ArrayBatches(data, batch_size, shuffle=shuffle, generator=generator)
    if isinstance(data, Iterable):
        return data
    raise TrainlabError(
        f"training data must be a tuple of arrays (X, y) or an iterable of batches, got {type(data).__name__}"
    )


def to_device(obj: Any, device: torch.device) -> Any:
    """Move a tensor, or the tensors inside a tuple/list/dict, to ``device``."""
    if isinstance(obj, Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_device(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj


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
