"""Training-mode batch norm over the batch of every rank: an autograd Function with collectives.

Each rank holds a shard of the global batch. The forward gathers every rank's per-channel row
count, mean and centred sum of squares (one ``all_gather``) and combines them exactly (Chan, Golub
& LeVeque 1979), so the statistics are those of the concatenated batch and stay accurate when
``|mean| ≫ std``. The backward all-reduces the per-channel ``Σ dy`` and ``Σ dy·(x − μ)`` (one
``all_reduce``), the two global sums the closed-form input gradient needs:

    dx = (γ / σ) · (dy − Σdy / N − x̂ · Σ(dy·x̂) / N),   dγ = Σ_rank dy · x̂,   dβ = Σ_rank dy

with sums over all ranks and N the global count; ``dγ`` and ``dβ`` stay per rank, because the
data-parallel wrapper sums parameter gradients itself. The result equals
:func:`~trainlab.nn._batchnorm_fn.batch_stats_forward` on the concatenated batch, forward and
backward. Second derivatives are not supported in this mode.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from trainlab.nn._batchnorm_fn import channel_shape, channel_sum


def global_stats(x: Tensor, group: Any = None) -> tuple[Tensor, Tensor, int]:
    """The mean, biased variance (float64, ``(C,)``) and row count of every rank's ``x`` together.

    Args:
        x: this rank's ``(N_r, C, *)`` shard (``N_r`` may be 0).
        group: the process group (default: the world).

    Returns:
        ``(mean, var, count)``.
    """
    c = x.shape[1]
    n = x.numel() // c if c else 0
    if n:
        mean = channel_sum(x).double() / n
        centred = x - mean.to(x.dtype).view(channel_shape(x))
        m2 = channel_sum(centred * centred).double()
    else:
        mean = m2 = torch.zeros(c, dtype=torch.float64, device=x.device)
    local = torch.cat([torch.tensor([float(n)], dtype=torch.float64, device=x.device), mean, m2])
    parts = [torch.empty_like(local) for _ in range(dist.get_world_size(group))]
    dist.all_gather(parts, local, group=group)
    table = torch.stack(parts)  # (ranks, 1 + 2C)
    counts, means, m2s = table[:, :1], table[:, 1 : 1 + c], table[:, 1 + c :]
    total = float(counts.sum())
    if total == 0:
        raise ValueError("synchronised batch norm: every rank's batch is empty")
    g_mean = (counts * means).sum(0) / total
    g_m2 = (m2s + counts * (means - g_mean) ** 2).sum(0)
    return g_mean, g_m2 / total, int(total)


class SyncBatchNormTrainFn(torch.autograd.Function):
    """``(x, weight, bias, eps, group) -> (y, mean, var, count)``; only ``y`` is differentiable."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float, group: Any
    ) -> Any:
        mean64, var64, count = global_stats(x, group)
        mean, var = mean64.to(x.dtype), var64.to(x.dtype)
        invstd = torch.rsqrt(var + eps)
        scale = invstd if weight is None else invstd * weight
        shift = -mean * scale if bias is None else bias - mean * scale
        shape = channel_shape(x)
        y = x * scale.view(shape) + shift.view(shape)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.count, ctx.group = count, group
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var, count

    @staticmethod
    def backward(ctx: Any, dy: Tensor, *_: Any) -> Any:
        if torch.is_grad_enabled():
            raise RuntimeError("synchronised batch norm does not support second derivatives")
        x, weight, mean, invstd = ctx.saved_tensors
        shape = channel_shape(x)
        xmu = x - mean.view(shape)
        local = torch.cat([channel_sum(dy), channel_sum(dy * xmu)])  # (2C,)
        summed = local.clone()
        dist.all_reduce(summed, group=ctx.group)
        c = x.shape[1]
        sum_dy, sum_dy_xmu = summed[:c], summed[c:]
        grad_x = None
        if ctx.needs_input_grad[0]:
            a = invstd if weight is None else invstd * weight  # γ/σ
            k = invstd * invstd * sum_dy_xmu / ctx.count
            grad_x = (dy - (sum_dy / ctx.count).view(shape) - xmu * k.view(shape)) * a.view(shape)
        grad_w = local[c:] * invstd if ctx.needs_input_grad[1] else None
        grad_b = local[:c] if ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None, None
