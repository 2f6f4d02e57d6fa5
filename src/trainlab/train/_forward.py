"""Calling a model on one batch, shared by training and evaluation.

A batch's inputs are one tensor (``model(x)``) or a tuple of them (``model(*x)``); its size is the
first dimension of its targets; mixed precision is bf16 autocast on CUDA and nothing elsewhere.
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
    """bf16 autocast when ``amp`` is asked for on a CUDA device; a no-op context otherwise."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()
