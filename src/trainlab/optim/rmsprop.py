"""RMSProp: like Adagrad, but σ is an exponential moving average, so recent gradients dominate.

Two forms:

* :class:`RMSpropLecture` — the lecture's (Hung-yi Lee, ML 2021, "adaptive learning rate", after
  Hinton's Coursera lecture 6e): the first σ is the first gradient's magnitude,

      σ⁰ = |g⁰|,   σᵗ = sqrt( α (σᵗ⁻¹)² + (1 − α)(gᵗ)² ),   θᵗ⁺¹ = θᵗ − η / σᵗ · gᵗ.

  The very first step therefore moves every parameter by η (times the gradient's sign).

* :class:`RMSprop` — PyTorch's (``torch.optim.RMSprop``): the average starts at 0, so the first
  step is ``η / sqrt(1 − α)`` (10η for α = 0.99) per coordinate; plus ``centered`` (divide by the
  estimated standard deviation instead of the RMS) and heavy-ball ``momentum`` on the scaled step.
  Equal to ``torch.optim.RMSprop`` with the same arguments.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from trainlab.optim._base import ForeachOptimizer, check_hyper
from trainlab.optim.registry import OPTIMIZERS


class RMSprop(ForeachOptimizer):
    """RMSprop with PyTorch's semantics and defaults (``torch.optim.RMSprop``).

    Args:
        params: parameters or parameter groups.
        lr: learning rate η.
        alpha: smoothing constant of the squared-gradient average.
        eps: added to the root of the average.
        weight_decay: L2 penalty added to the gradient.
        momentum: momentum factor on the scaled step (0 for none).
        centered: normalise by sqrt(E[g²] − E[g]²) instead of sqrt(E[g²]).
        maximize: ascend instead of descend.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        maximize: bool = False,
    ) -> None:
        check_hyper("alpha", alpha)
        check_hyper("eps", eps)
        check_hyper("momentum", momentum)
        defaults = {
            "lr": lr,
            "alpha": alpha,
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "centered": centered,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _update_group(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]
    ) -> None:
        grads = self._weight_decay(grads, params, group["weight_decay"])
        self._advance_steps(params)
        alpha, lr, momentum = group["alpha"], float(group["lr"]), group["momentum"]
        square_avgs = self._state_tensors(params, "square_avg")
        torch._foreach_mul_(square_avgs, alpha)
        torch._foreach_addcmul_(square_avgs, grads, grads, value=1 - alpha)
        if group["centered"]:
            grad_avgs = self._state_tensors(params, "grad_avg")
            torch._foreach_lerp_(grad_avgs, grads, 1 - alpha)
            avg = torch._foreach_addcmul(square_avgs, grad_avgs, grad_avgs, value=-1)
            torch._foreach_sqrt_(avg)
        else:
            avg = torch._foreach_sqrt(square_avgs)
        torch._foreach_add_(avg, group["eps"])
        if momentum > 0:
            bufs = self._state_tensors(params, "momentum_buffer")
            torch._foreach_mul_(bufs, momentum)
            torch._foreach_addcdiv_(bufs, grads, avg)
            torch._foreach_add_(params, bufs, alpha=-lr)
        else:
            torch._foreach_addcdiv_(params, grads, avg, value=-lr)


class RMSpropLecture(ForeachOptimizer):
    """The lecture's RMSProp: σ⁰ = |g⁰|, σᵗ = sqrt(α(σᵗ⁻¹)² + (1−α)(gᵗ)²), θ −= η gᵗ / σᵗ.

    The lecture leaves α open; the default is PyTorch's 0.99, so that the two forms differ only in
    how σ starts.

    Args:
        params: parameters or parameter groups.
        lr: learning rate η.
        alpha: weight α of the previous σ².
        eps: added to σ (a zero first gradient would otherwise divide by 0).
        weight_decay: L2 penalty added to the gradient.
        maximize: ascend instead of descend.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        maximize: bool = False,
    ) -> None:
        check_hyper("alpha", alpha, 0.0, 1.0)
        check_hyper("eps", eps)
        defaults = {
            "lr": lr,
            "alpha": alpha,
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _update_group(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]
    ) -> None:
        grads = self._weight_decay(grads, params, group["weight_decay"])
        alpha = group["alpha"]
        first = [i for i, p in enumerate(params) if "square_avg" not in self.state[p]]
        self._advance_steps(params)
        sq = self._state_tensors(params, "square_avg")  # (σᵗ)²
        if first:
            # σ⁰ = |g⁰|, i.e. (σ⁰)² = (g⁰)².
            torch._foreach_addcmul_(
                [sq[i] for i in first], [grads[i] for i in first], [grads[i] for i in first]
            )
        rest = [i for i in range(len(params)) if i not in set(first)]
        if rest:
            sq_rest, g_rest = [sq[i] for i in rest], [grads[i] for i in rest]
            torch._foreach_mul_(sq_rest, alpha)
            torch._foreach_addcmul_(sq_rest, g_rest, g_rest, value=1 - alpha)
        sigma = torch._foreach_sqrt(sq)
        torch._foreach_add_(sigma, group["eps"])
        torch._foreach_addcdiv_(params, grads, sigma, value=-float(group["lr"]))


OPTIMIZERS.register("rmsprop", "RMSprop, PyTorch's form (equal to torch.optim.RMSprop)")(RMSprop)
OPTIMIZERS.register("rmsprop_lecture", "RMSProp, the lecture's form (σ⁰ = |g⁰|)")(RMSpropLecture)
