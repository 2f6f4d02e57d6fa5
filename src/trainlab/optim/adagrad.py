"""Adagrad: a per-parameter learning rate η/σ from the history of that parameter's gradients.

Two forms:

* :class:`AdagradLecture` — the lecture's (Hung-yi Lee, ML 2021, "adaptive learning rate"): σ is
  the root *mean* square of the gradients so far,

      σᵗ = sqrt( (1/(t+1)) Σᵢ₌₀ᵗ (gⁱ)² ),   θᵗ⁺¹ = θᵗ − η / σᵗ · gᵗ.

* :class:`Adagrad` — PyTorch's (Duchi, Hazan & Singer, 2011, as ``torch.optim.Adagrad``): σ is the
  root of the *sum*, so the step also shrinks like 1/sqrt(t); with ``lr_decay`` and
  ``initial_accumulator_value``:

      s += g²,   θ −= η / (1 + (t−1)·lr_decay) · g / (sqrt(s) + eps).

  Equal to ``torch.optim.Adagrad`` with the same arguments.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from trainlab.optim._base import ForeachOptimizer, check_hyper
from trainlab.optim.registry import OPTIMIZERS


class Adagrad(ForeachOptimizer):
    """Adagrad with PyTorch's semantics and defaults (``torch.optim.Adagrad``).

    Args:
        params: parameters or parameter groups.
        lr: learning rate η.
        lr_decay: the step size is η / (1 + (t − 1)·lr_decay).
        weight_decay: L2 penalty added to the gradient.
        initial_accumulator_value: starting value of the sum of squared gradients.
        eps: added to sqrt(sum) for stability.
        maximize: ascend instead of descend.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        maximize: bool = False,
    ) -> None:
        check_hyper("lr_decay", lr_decay)
        check_hyper("initial_accumulator_value", initial_accumulator_value)
        check_hyper("eps", eps)
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "eps": eps,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _update_group(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]
    ) -> None:
        grads = self._weight_decay(grads, params, group["weight_decay"])
        steps = self._advance_steps(params)
        sums = self._state_tensors(params, "sum", group["initial_accumulator_value"])
        lr, lr_decay = float(group["lr"]), group["lr_decay"]
        torch._foreach_addcmul_(sums, grads, grads, value=1)
        std = torch._foreach_sqrt(sums)
        torch._foreach_add_(std, group["eps"])
        neg_clr = [-lr / (1 + (t - 1) * lr_decay) for t in steps]
        torch._foreach_addcdiv_(params, grads, std, neg_clr)


class AdagradLecture(ForeachOptimizer):
    """The lecture's Adagrad: σᵗ = root mean square of g⁰..gᵗ, θ −= η gᵗ / σᵗ.

    Args:
        params: parameters or parameter groups.
        lr: learning rate η.
        eps: added to σ so that a parameter with zero gradients so far does not divide by 0.
        weight_decay: L2 penalty added to the gradient.
        maximize: ascend instead of descend.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        eps: float = 1e-10,
        weight_decay: float = 0.0,
        maximize: bool = False,
    ) -> None:
        check_hyper("eps", eps)
        defaults = {"lr": lr, "eps": eps, "weight_decay": weight_decay, "maximize": maximize}
        super().__init__(params, defaults)

    def _update_group(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]
    ) -> None:
        grads = self._weight_decay(grads, params, group["weight_decay"])
        steps = self._advance_steps(params)  # t + 1 gradients seen, including this one
        sums = self._state_tensors(params, "sum")
        torch._foreach_addcmul_(sums, grads, grads, value=1)  # Σ (gⁱ)²
        sigma = torch._foreach_div(sums, [float(t) for t in steps])  # mean of (gⁱ)²
        torch._foreach_sqrt_(sigma)
        torch._foreach_add_(sigma, group["eps"])
        torch._foreach_addcdiv_(params, grads, sigma, value=-float(group["lr"]))


OPTIMIZERS.register("adagrad", "Adagrad, PyTorch's form (equal to torch.optim.Adagrad)")(Adagrad)
OPTIMIZERS.register("adagrad_lecture", "Adagrad, the lecture's form (σ = RMS of past gradients)")(
    AdagradLecture
)
