"""Gradient descent with momentum, exactly as the lecture writes it.

Hung-yi Lee, ML 2021, "Tips for training: momentum": the movement m is the previous movement
decayed by λ minus the current gradient step,

    m⁰ = 0,   mᵗ = λ mᵗ⁻¹ − η gᵗ⁻¹,   θᵗ = θᵗ⁻¹ + mᵗ,

so mᵗ is a weighted sum of all past gradients, each scaled by the learning rate *of its own step*.
``torch.optim.SGD(momentum=λ)`` instead keeps ``b = λ b + g`` and steps ``θ −= η b`` with the
*current* η. With a constant η the two are the same map (m = −η b); when η changes (a schedule)
they differ: after η drops, PyTorch's step shrinks at once, the lecture's keeps the momentum built
with the old η and decays it by λ per step.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from trainlab.optim._base import ForeachOptimizer, check_hyper
from trainlab.optim.registry import OPTIMIZERS


class Momentum(ForeachOptimizer):
    """The lecture's momentum: ``m = λ·m − η·g``, ``θ = θ + m``.

    Args:
        params: parameters or parameter groups.
        lr: learning rate η.
        momentum: decay λ of the previous movement, in [0, 1).
        weight_decay: L2 penalty λ_wd, added to the gradient as ``g + λ_wd·θ``.
        maximize: ascend instead of descend.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        maximize: bool = False,
    ) -> None:
        check_hyper("momentum", momentum, 0.0, 1.0)
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _update_group(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]
    ) -> None:
        grads = self._weight_decay(grads, params, group["weight_decay"])
        self._advance_steps(params)
        movements = self._state_tensors(params, "movement")
        torch._foreach_mul_(movements, group["momentum"])  # λ mᵗ⁻¹
        torch._foreach_add_(movements, grads, alpha=-float(group["lr"]))  # − η gᵗ⁻¹
        torch._foreach_add_(params, movements)  # θᵗ = θᵗ⁻¹ + mᵗ


OPTIMIZERS.register("momentum", "the lecture's momentum: m = λm − ηg, θ = θ + m")(Momentum)
