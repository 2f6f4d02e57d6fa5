"""Keeping host memory flat while a model trains on batches of varying shape.

Batches of whole utterances change shape every step. Two things then grow a CPU training
process's resident memory step after step: oneDNN builds a kernel for every shape it meets and
keeps up to 1024 of them, each with its own buffers; and glibc's allocator keeps what the steps
free inside its heap, fragmented. :func:`limit_kernel_cache` caps the first (it must run before
the process's first oneDNN kernel), :class:`TrimHeap` returns the second to the system every few
steps with glibc's ``malloc_trim`` (elsewhere: macOS, Windows, musl, it does nothing). Measured
with the phoneme ``crnn``, 100 steps of 16 utterances of random length: 1.95 GiB of anonymous
memory with neither, 1.18 GiB with the cache capped at 8 kernels, 0.36 GiB with both, at the
same speed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from functools import cache
from typing import Any

from trainlab.train.callbacks import Callback, TrainState

#: Kernels oneDNN keeps: enough for one step's LSTM layers, directions and passes.
KERNEL_CACHE = 8


def limit_kernel_cache(kernels: int = KERNEL_CACHE) -> None:
    """Cap oneDNN's kernel cache at ``kernels``, unless ``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` is set.

    oneDNN reads the setting when it builds its first kernel: later calls change nothing.
    """
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(kernels))


@cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or ``None`` where the C library has none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> bool:
    """Return the allocator's free pages to the system; ``True`` where that was possible."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class TrimHeap(Callback):
    """A callback that calls :func:`release_freed_memory` every ``every`` optimisation steps.

    It changes no number of the run (the weights are the same with and without it).
    """

    def __init__(self, every: int = 10) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every = every

    def on_step_end(self, state: TrainState) -> None:
        if state.step % self.every == 0:
            release_freed_memory()
