"""The training-mode batch-norm kernel: a custom autograd Function with the closed-form backward.

Autograd through the plain formula (mean, centre, variance, scale) keeps several full-size
intermediates and runs a long backward graph; on CPU that is 4-10x slower than PyTorch's kernel
(``benchmarks/bench_batchnorm.py``). This Function allocates exactly what PyTorch does (the output
in forward, the input gradient in backward), reduces along contiguous rows where the layout allows,
and computes the backward from the closed form of Ioffe & Szegedy (2015):

    dx = (γ / σ) · (dy − mean(dy) − x̂ · mean(dy · x̂)),   dγ = Σ dy · x̂,   dβ = Σ dy

with x̂ = (x − μ) / σ. Second derivatives (for Hessians) fall back to autograd through the plain
formula, so double backward stays exact.
"""

from __future__ import annotations

from typing import Any, overload

import torch
from torch import Tensor

# With at least this many contiguous elements per (sample, channel), reductions run along those
# rows (a fast contiguous reduce) and are then summed over the batch; with fewer, PyTorch's
# multi-dimensional reduction is as fast.
_MIN_INNER = 16


def channel_shape(x: Tensor) -> list[int]:
    """Shape that broadcasts a per-channel vector against ``x``: ``(1, C, 1, ...)``."""
    return [1, x.shape[1]] + [1] * (x.dim() - 2)


def reduce_dims(x: Tensor) -> list[int]:
    """All dimensions except the channel dimension 1."""
    return [0, *range(2, x.dim())]


def _rows(x: Tensor) -> Tensor | None:
    # (N, C, *S) -> (N*C, L) without copying, when that is both possible and worth it.
    if x.dim() <= 2 or not x.is_contiguous():
        return None
    inner = x[0, 0].numel()
    if inner < _MIN_INNER:
        return None
    return x.view(-1, inner)


# Rows per block when summing (N, C) over N: two short reductions beat one long strided one.
_BLOCK = 64


def channel_sum(x: Tensor) -> Tensor:
    """Σ over every dimension but the channel one: ``(N, C, *S) -> (C,)``."""
    rows = _rows(x)
    if rows is not None:
        return rows.sum(1).view(x.shape[0], x.shape[1]).sum(0)  # (N*C,) -> (N, C) -> (C,)
    if x.dim() == 2 and x.is_contiguous() and x.shape[0] >= 2 * _BLOCK:
        n_full = x.shape[0] // _BLOCK * _BLOCK
        blocks = x[:n_full].view(-1, _BLOCK, x.shape[1])  # (N, C) -> (N/B, B, C)
        total = blocks.sum(1).sum(0)
        return total + x[n_full:].sum(0) if n_full < x.shape[0] else total
    return x.sum(reduce_dims(x))


def channel_sumsq_(x: Tensor) -> Tensor:
    """Per-channel Σ x²: ``(N, C, *S) -> (C,)``; may overwrite ``x`` (a scratch buffer)."""
    rows = _rows(x)
    if rows is not None:
        # One norm per row reads x once and writes nothing full-size.
        norms = torch.linalg.vector_norm(rows, 2, 1)  # (N*C,)
        return norms.square().view(x.shape[0], x.shape[1]).sum(0)
    # Squaring in place: a fresh full-size x² would cost an allocation larger than the arithmetic.
    return channel_sum(x.mul_(x))


def _scale_shift(x: Tensor, scale: Tensor, shift: Tensor, out: Tensor) -> Tensor:
    # out = x·scale + shift with per-channel scale and shift. For (N, C) one addcmul is fastest;
    # with spatial dims the channel vectors broadcast along the inner loop, where CPU addcmul has
    # no vectorised kernel and a multiply then an add run twice as fast.
    if x.dim() == 2:
        return torch.addcmul(shift, x, scale, out=out)
    return torch.mul(x, scale, out=out).add_(shift)


def batch_norm_train_reference(
    x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float
) -> Tensor:
    """Training-mode batch norm written plainly for autograd (used for double backward and tests)."""
    dims = reduce_dims(x)
    mean = x.mean(dims, keepdim=True)
    xc = x - mean
    var = (xc * xc).mean(dims, keepdim=True)  # biased, as in normalisation
    y = xc * torch.rsqrt(var + eps)
    shape = channel_shape(x)
    if weight is not None:
        y = y * weight.view(shape)
    if bias is not None:
        y = y + bias.view(shape)
    return y


def batch_stats_forward(
    x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Normalise ``x`` with its own batch statistics.

    Returns:
        ``(y, mean, var, invstd)``: the output, the per-channel mean and biased variance, and
        ``1 / sqrt(var + eps)``.
    """
    n = x.numel() // x.shape[1]
    shape = channel_shape(x)
    mean = channel_sum(x) / n
    # Two passes (centre, then square) keep float32 variances accurate when |mean| >> std; the
    # centred tensor is scratch whose memory then takes the output, so it costs no allocation.
    out = x - mean.view(shape)
    var = channel_sumsq_(out) / n
    invstd = torch.rsqrt(var + eps)
    scale = invstd if weight is None else invstd * weight
    # y = x·scale + shift, as PyTorch's own CPU kernel computes it.
    shift = -mean * scale if bias is None else bias - mean * scale
    _scale_shift(x, scale.view(shape), shift.view(shape), out)
    return out, mean, var, invstd


@overload
def _upcast(t: Tensor) -> Tensor: ...
@overload
def _upcast(t: None) -> None: ...
def _upcast(t: Tensor | None) -> Tensor | None:
    # Statistics of half-precision activations are computed in float32, as cuDNN does.
    if t is not None and t.dtype in (torch.float16, torch.bfloat16):
        return t.float()
    return t


class BatchNormTrainFn(torch.autograd.Function):
    """``(x, weight, bias, eps) -> (y, mean, var)``; only ``y`` is differentiable."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float) -> Any:
        # Autocast would run the reductions in half precision; the arithmetic here chooses its own.
        with torch.autocast(x.device.type, enabled=False):
            y, mean, var, invstd = batch_stats_forward(
                _upcast(x), _upcast(weight), _upcast(bias), eps
            )
        ctx.save_for_backward(x, weight, bias, mean, invstd)
        ctx.eps = eps
        ctx.mark_non_differentiable(mean, var)
        return y.to(x.dtype), mean, var

    @staticmethod
    def backward(ctx: Any, dy: Tensor, _dmean: Any, _dvar: Any) -> Any:
        x, weight, bias, mean, invstd = ctx.saved_tensors
        if torch.is_grad_enabled():
            return _differentiable_backward(ctx, x, weight, bias, dy)
        with torch.autocast(x.device.type, enabled=False):
            grads = _fused_backward(
                ctx.needs_input_grad, _upcast(x), _upcast(weight), mean, invstd, _upcast(dy)
            )
        return tuple(
            None if g is None else g.to(t.dtype) for g, t in zip(grads, (x, weight, bias))
        ) + (None,)


def _fused_backward(
    needs_input_grad: tuple[bool, ...],
    x: Tensor,
    weight: Tensor | None,
    mean: Tensor,
    invstd: Tensor,
    dy: Tensor,
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    need_x, need_w, need_b = needs_input_grad[:3]
    n = x.numel() // x.shape[1]
    shape = channel_shape(x)
    sum_dy = channel_sum(dy)
    if not (need_x or need_w):
        return None, None, sum_dy if need_b else None
    # dy·x goes into the buffer that dx will take anyway, so no extra full-size allocation.
    buf = torch.mul(dy, x)
    # Σ dy·x̂ = σ⁻¹ (Σ dy·x − μ Σ dy): avoids materialising x̂.
    sum_dy_xhat = (channel_sum(buf) - mean * sum_dy) * invstd
    grad_x = None
    if need_x:
        a = invstd if weight is None else invstd * weight  # γ/σ
        k = a * invstd * sum_dy_xhat / n  # coefficient of x
        c = k * mean - a * sum_dy / n  # per-channel constant
        # dx = a·dy − k·x + c, which is (γ/σ)(dy − mean(dy) − x̂ mean(dy x̂)) expanded.
        grad_x = _scale_shift(dy, a.view(shape), c.view(shape), buf)
        grad_x.addcmul_(x, k.view(shape), value=-1)
    return grad_x, sum_dy_xhat if need_w else None, sum_dy if need_b else None


def _differentiable_backward(
    ctx: Any, x: Tensor, weight: Tensor | None, bias: Tensor | None, dy: Tensor
) -> tuple[Tensor | None, ...]:
    # create_graph=True: recompute through the plain formula so that gradients of gradients
    # (Hessians, gradient penalties) see how mean and variance depend on x.
    inputs = [
        (i, t) for i, t in enumerate((x, weight, bias)) if t is not None and ctx.needs_input_grad[i]
    ]
    with torch.enable_grad():
        xs = x if x.requires_grad else x.detach()
        y = batch_norm_train_reference(xs, weight, bias, ctx.eps)
        grads = torch.autograd.grad(
            y, [t for _, t in inputs], dy, create_graph=True, allow_unused=True
        )
    result: list[Tensor | None] = [None, None, None, None]
    for (i, _), g in zip(inputs, grads):
        result[i] = g
    return tuple(result)
