"""The Hessian of a loss whose batch is spread over ranks: exact products, combined across ranks.

``DistributedDataParallel`` cannot differentiate twice, so a Hessian-vector product is computed
on the plain module of each rank, on that rank's shard of the batch, and the products are
combined by hand. For a mean loss ``L = Σ_r (n_r / N) · L_r`` over shards of ``n_r`` rows
(``N = Σ n_r``), the same weights combine everything linear in ``L``: the loss, the gradient,
``H v`` and the dense Hessian are each all-reduced as ``Σ_r (n_r / N) · (·)_r``, which is exact
for unequal shards. Every rank receives the same combined values, so Lanczos, Hutchinson's trace
and stochastic Lanczos quadrature, given the same seed, run the same iterations on every rank;
rank 0 reports (this is what PyHessian lacks). The batch's loss must be a mean over rows (the
usual ``reduction="mean"``); each rank needs at least one row.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from trainlab.diagnose.hvp import Objective
from trainlab.diagnose.target import DiagnosisTarget
from trainlab.distributed.sharding import shard_bounds
from trainlab.errors import TrainlabError


class DistributedObjective(Objective):
    """The loss over every rank's shard as one :class:`Objective` (a collective: all ranks call it).

    Args:
        local: this rank's objective, on its shard (a :class:`ModelObjective`, typically).
        rows: the rows of this rank's shard (its weight is ``rows / Σ rows``).
        group: the process group (default: the world).
    """

    def __init__(self, local: Objective, rows: int, group: Any = None) -> None:
        if rows < 1:
            raise TrainlabError("distributed Hessian: every rank needs at least one row")
        super().__init__(local.point())
        self.local, self.group = local, group
        total = self._sum(torch.tensor(float(rows), dtype=torch.float64, device=local.device))
        self.weight = rows / float(total)
        self.rows, self.total_rows = rows, int(round(float(total)))

    def __getattr__(self, name: str) -> Any:
        # names, unflatten, write_to, model...: those of the local objective
        if name == "local":
            raise AttributeError(name)
        return getattr(self.local, name)

    def _sum(self, t: Tensor) -> Tensor:
        out = t.detach().clone()
        dist.all_reduce(out, group=self.group)
        return out

    def _combine(self, t: Tensor) -> Tensor:
        return self._sum(t * self.weight)

    def set_point(self, theta: Tensor) -> None:
        super().set_point(theta)
        self.local.set_point(theta)

    def release(self) -> None:
        super().release()
        if "local" in self.__dict__:
            self.local.release()

    def loss(self, theta: Tensor | None = None) -> float:
        value = torch.tensor(self.local.loss(theta), dtype=torch.float64, device=self.device)
        return float(self._combine(value))

    def gradient(self) -> Tensor:
        return self._combine(self.local.gradient())

    def hvp(self, v: Tensor) -> Tensor:
        self.num_hvp += 1
        return self._combine(self.local.hvp(v))

    def hessian(self, chunk_size: int = 128) -> Tensor:
        self.num_hvp += self.num_params
        return self._combine(self.local.hessian(chunk_size))


def shard_target(
    target: DiagnosisTarget, rank: int, world_size: int
) -> tuple[DiagnosisTarget, int]:
    """``rank``'s contiguous share of the target's batch, and its rows.

    Args:
        target: the model, loss and whole batch (the same on every rank).
        rank, world_size: this rank and the number of ranks.

    Returns:
        ``(target with this rank's rows, rows)``.

    Raises:
        TrainlabError: the inputs and targets do not share the row dimension (e.g. padded
            utterances with flattened targets), or there are fewer rows than ranks.
    """
    tensors = list(target.inputs) if isinstance(target.inputs, (tuple, list)) else [target.inputs]
    n = int(target.targets.shape[0]) if target.targets.dim() else 0
    if any(not isinstance(t, Tensor) or t.dim() == 0 or t.shape[0] != n for t in tensors):
        raise TrainlabError(
            f"{target.description}: the batch's inputs and targets do not share their first "
            "dimension, so it cannot be split across ranks; run the diagnosis in one process"
        )
    if n < world_size:
        raise TrainlabError(f"the batch has {n} rows, fewer than the {world_size} ranks")
    lo, hi = shard_bounds(n, rank, world_size)
    inputs: Any = [t[lo:hi] for t in tensors]
    inputs = type(target.inputs)(inputs) if isinstance(target.inputs, (tuple, list)) else inputs[0]
    part = DiagnosisTarget(
        target.model, target.loss_fn, inputs, target.targets[lo:hi], target.description
    )
    return part, hi - lo
