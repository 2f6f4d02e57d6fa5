"""Collectives on metric sums and counts, gathered rows and per-rank objects.

Validation metrics are reduced as sums and counts (never averages of averages), so a mean over
unequal shards is the mean over all rows. Outputs are gathered row by row when a metric needs
all of them (accuracy, RMSE), so every rank computes the metric on exactly the rows a single
process would see. Every function here is a collective: all ranks must call it, in the same order.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


def all_reduce_sum(values: Tensor) -> Tensor:
    """Sum ``values`` over all ranks (a new tensor; the input is unchanged)."""
    out = values.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def reduce_sum_count(total: float, count: int, device: torch.device) -> tuple[float, int]:
    """Sum a float total and an integer count over ranks in one collective.

    Args:
        total: this rank's sum (e.g. loss times rows).
        count: this rank's rows.
        device: where the collective runs (the backend's device).

    Returns:
        ``(global total, global count)``.
    """
    packed = torch.tensor([float(total), float(count)], dtype=torch.float64, device=device)
    summed = all_reduce_sum(packed).tolist()
    return summed[0], int(round(summed[1]))


def all_gather_rows(x: Tensor) -> Tensor:
    """Concatenate every rank's ``x`` along dimension 0 (shards may differ in rows).

    Args:
        x: this rank's rows (same dtype and trailing shape on every rank).

    Returns:
        The rows of rank 0, then rank 1, ...
    """
    world = dist.get_world_size()
    n = torch.tensor([x.shape[0]], dtype=torch.int64, device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    counts = [int(s.item()) for s in sizes]
    longest = max(counts)
    padded = x.new_zeros((longest, *x.shape[1:]))
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:c] for p, c in zip(parts, counts)])


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
