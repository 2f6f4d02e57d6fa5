"""Data-parallel training with PyTorch's ``DistributedDataParallel``: what :func:`fit` adds per rank.

Batch size under N ranks: ``batch_size`` is the *global* batch, the rows of one optimisation
step summed over all ranks, exactly as in a single-process run; each rank takes its ``1/N`` share
(:mod:`~trainlab.distributed.sharding`). The learning rate therefore means the same thing with any
number of ranks. DDP averages the ranks' gradients; each rank's mean loss is weighted by
``rows_rank · N / rows_global`` first, so unequal shards (the last batch of an epoch) still give the
gradient of the mean loss over the global batch, the single-process gradient.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from trainlab.distributed.batchnorm import SynchronisedForward
from trainlab.distributed.group import DistContext
from trainlab.distributed.reduce import all_reduce_sum, reduce_sum_count


class DataParallel:
    """The distributed side of a training run: the DDP-wrapped model and the loss weighting.

    Args:
        ctx: the process group's context.
        model: the network, already on ``ctx.device`` (DDP broadcasts rank 0's weights); its
            BatchNorm layers use the global batch's statistics in the training forward.
    """

    def __init__(self, ctx: DistContext, model: nn.Module) -> None:
        self.ctx = ctx
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        # BatchNorm layers see the global batch in the training step's forward (and only there)
        self.module = DistributedDataParallel(
            SynchronisedForward(model, ctx.device), device_ids=ids
        )

    def loss_weight(self, rows: int) -> float:
        """``rows · N / global rows`` of this step: turns DDP's gradient average into the mean."""
        counts = torch.tensor([float(rows)], dtype=torch.float64, device=self.ctx.device)
        total = float(all_reduce_sum(counts).item())
        return rows * self.ctx.world_size / total

    def mean(self, total: float, count: int) -> float:
        """The global mean from this rank's ``total`` over ``count`` rows."""
        total, count = reduce_sum_count(total, count, self.ctx.device)
        return total / count if count else float("nan")


def zero_loss(outputs: Any) -> Tensor:
    """A loss of exactly 0 connected to every output: an empty shard's share of a step.

    A rank whose shard of the last batch is empty still runs forward and backward, so DDP's
    gradient all-reduce finds every rank; it contributes nothing.
    """
    if isinstance(outputs, Tensor):
        return outputs.sum() * 0.0
    parts = [o for o in (outputs if isinstance(outputs, (tuple, list)) else [outputs])]
    return sum((zero_loss(o) for o in parts if isinstance(o, Tensor)), torch.zeros(()))
