"""Dropout (Srivastava et al. 2014) with a cheaper random mask on the CPU.

PyTorch's CPU dropout draws one Mersenne-Twister number per element (``bernoulli_``); in the phoneme
sequence models that is a tenth of a training step. :func:`dropout` draws one 64-bit number per
four elements instead and compares each 16-bit quarter with the keep threshold, so an element is
kept with probability ``round((1 - p) * 2**16) / 2**16`` (within 2**-17 of ``1 - p``) and kept
elements are scaled by the inverse of that probability: the expectation is exactly the input's.
On other devices, whose dropout kernels are fused already, it is ``torch.nn.functional.dropout``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

_LEVELS = 1 << 16  # a 16-bit quarter of a random 64-bit word takes this many values


def _kept_levels(p: float) -> int:
    """How many of the :data:`_LEVELS` values of a 16-bit quarter keep an element."""
    return round((1.0 - p) * _LEVELS)


def keep_probability(p: float) -> float:
    """The probability with which :func:`dropout` keeps an element on the CPU, for drop rate ``p``."""
    return _kept_levels(p) / _LEVELS


def keep_mask(shape: torch.Size, p: float, device: torch.device | None = None) -> Tensor:
    """Booleans of ``shape``, each True with probability :func:`keep_probability` ``(p)``.

    Draws from PyTorch's global generator of ``device``, as ``torch.nn.functional.dropout`` does.
    """
    n = shape.numel()
    words = torch.randint(
        -(1 << 63), (1 << 63) - 1, (-(-n // 4),), dtype=torch.int64, device=device
    )
    quarters = words.view(torch.int16)[:n].view(shape)  # uniform over -2**15 .. 2**15 - 1
    return quarters < _kept_levels(p) - (1 << 15)


def dropout(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest to keep the expectation.

    Args:
        input: any tensor.
        p: drop probability in [0, 1].
        training: drop only in training; otherwise return ``input``.

    Returns:
        A tensor like ``input``.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    if input.device.type != "cpu" or keep_probability(p) == 0.0:
        return nn.functional.dropout(input, p, training=True)
    return _MaskedScale.apply(
        input, keep_mask(input.shape, p, input.device), 1.0 / keep_probability(p)
    )


def _scaled(keep: Tensor, scale: float, dtype: torch.dtype) -> Tensor:
    # via uint8: a bool -> float conversion is several times slower on the CPU
    return keep.view(torch.uint8).to(dtype).mul_(scale)


class _MaskedScale(torch.autograd.Function):
    """``input * keep * scale`` that keeps the boolean mask for the backward pass (a byte an
    element, as PyTorch's dropout does) instead of the float one a plain product would keep."""

    @staticmethod
    def forward(ctx: Any, input: Tensor, keep: Tensor, scale: float) -> Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return input * _scaled(keep, scale, input.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (keep,) = ctx.saved_tensors
        return grad * _scaled(keep, ctx.scale, grad.dtype), None, None


class Dropout(nn.Module):
    """:func:`dropout` as a layer, a drop-in for ``torch.nn.Dropout`` (same argument, same state)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, input: Tensor) -> Tensor:
        return dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
