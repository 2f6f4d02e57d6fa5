"""Calling a model on one batch, shared by training and evaluation.

A batch's inputs are one tensor (``model(x)``) or a tuple of them (``model(*x)``); its size is the
first dimension of its targets; mixed precision is bf16 autocast on CUDA and on CPUs that compute in
bf16 natively (AVX512-BF16 or AMX, through oneDNN), and nothing elsewhere.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import Tensor


def forward(model: torch.nn.Module, inputs: Any) -> Any:
    """``model(*inputs)`` for a tuple or list of inputs, else ``model(inputs)``."""
    return model(*inputs) if isinstance(inputs, (tuple, list)) else model(inputs)


def batch_rows(targets: Any) -> int:
    """Rows in a batch: the first dimension of its targets (1 for a scalar or a non-tensor)."""
    return int(targets.shape[0]) if isinstance(targets, Tensor) and targets.dim() > 0 else 1


def autocast(device: torch.device, amp: bool) -> AbstractContextManager[Any]:
    """bf16 autocast when ``amp`` is asked for on a CUDA device or a bf16-capable CPU, else a no-op.

    On a CPU without native bf16 the format is emulated, slower than float32: ``amp`` is ignored.
    """
    if amp and (device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (oneDNN's AVX512-BF16 or AMX kernels)."""
    try:
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):
        return False
