"""Adam: momentum on the gradient (first moment) divided by an RMSProp-style σ (second moment).

Kingma & Ba (2015), "Adam: A Method for Stochastic Optimization", Algorithm 1, as the lecture
presents it (Hung-yi Lee, ML 2021: "Adam = RMSProp + Momentum"):

    mᵗ = β₁ mᵗ⁻¹ + (1 − β₁) gᵗ           vᵗ = β₂ vᵗ⁻¹ + (1 − β₂) (gᵗ)²
    m̂ᵗ = mᵗ / (1 − β₁ᵗ)                 v̂ᵗ = vᵗ / (1 − β₂ᵗ)
    θᵗ = θᵗ⁻¹ − η m̂ᵗ / (sqrt(v̂ᵗ) + ε)

* :class:`AdamLecture` transcribes these lines (v̂ is formed; m̂'s scalar correction joins η).
* :class:`Adam` is PyTorch's arrangement of the same map (``torch.optim.Adam``): the corrections
  are folded into scalars, ``θ −= (η / (1 − β₁ᵗ)) · m / (sqrt(v) / sqrt(1 − β₂ᵗ) + ε)``, with L2
  ``weight_decay`` (or decoupled, AdamW-style, with ``decoupled_weight_decay=True``), ``amsgrad``
  and ``maximize``. Equal to ``torch.optim.Adam`` with the same arguments.

The two differ only by floating-point rounding; the tests hold them to 1e-6 of each other.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from trainlab.optim._base import ForeachOptimizer, check_hyper
from trainlab.optim.registry import OPTIMIZERS


def _check_betas(betas: tuple[float, float]) -> None:
    check_hyper("beta1", betas[0], 0.0, 1.0)
    check_hyper("beta2", betas[1], 0.0, 1.0)


class Adam(ForeachOptimizer):
    """Adam with PyTorch's semantics and defaults (``torch.optim.Adam``).

    Args:
        params: parameters or parameter groups.
        lr: learning rate η.
        betas: decay rates (β₁, β₂) of the first and second moment averages.
        eps: added to the bias-corrected root of the second moment.
        weight_decay: L2 penalty added to the gradient (or, when decoupled, θ *= 1 − η·λ).
        amsgrad: divide by the running maximum of the second moment (Reddi et al., 2018).
        maximize: ascend instead of descend.
        decoupled_weight_decay: apply weight decay to θ directly, as AdamW does.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        _check_betas(betas)
        check_hyper("eps", eps)
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _update_group(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]
    ) -> None:
        lr, (beta1, beta2), wd = float(group["lr"]), group["betas"], group["weight_decay"]
        if wd != 0 and group.get("decoupled_weight_decay", False):
            torch._foreach_mul_(params, 1 - lr * wd)
        else:
            grads = self._weight_decay(grads, params, wd)
        steps = self._advance_steps(params)
        exp_avgs = self._state_tensors(params, "exp_avg")
        exp_avg_sqs = self._state_tensors(params, "exp_avg_sq")
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
        if group["amsgrad"]:
            max_sqs = self._state_tensors(params, "max_exp_avg_sq")
            torch._foreach_maximum_(max_sqs, exp_avg_sqs)
            denom = torch._foreach_sqrt(max_sqs)
        else:
            denom = torch._foreach_sqrt(exp_avg_sqs)
        # sqrt(v̂) = sqrt(v) / sqrt(1 − β₂ᵗ) and m̂ = m / (1 − β₁ᵗ), folded into per-tensor scalars.
        torch._foreach_div_(denom, [math.sqrt(1 - beta2**t) for t in steps])
        torch._foreach_add_(denom, group["eps"])
        torch._foreach_addcdiv_(params, exp_avgs, denom, [-lr / (1 - beta1**t) for t in steps])


class AdamLecture(ForeachOptimizer):
    """Adam as written in the paper and the lecture: bias-corrected v̂, then η·m̂ / (sqrt(v̂) + ε).

    Args:
        params: parameters or parameter groups.
        lr: step size η (α in the paper).
        betas: (β₁, β₂).
        eps: ε, added to sqrt(v̂).
        weight_decay: L2 penalty added to the gradient.
        maximize: ascend instead of descend.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        maximize: bool = False,
    ) -> None:
        _check_betas(betas)
        check_hyper("eps", eps)
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _update_group(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]
    ) -> None:
        (beta1, beta2) = group["betas"]
        grads = self._weight_decay(grads, params, group["weight_decay"])
        steps = self._advance_steps(params)
        m = self._state_tensors(params, "exp_avg")
        v = self._state_tensors(params, "exp_avg_sq")
        torch._foreach_mul_(m, beta1)
        torch._foreach_add_(m, grads, alpha=1 - beta1)  # mᵗ = β₁mᵗ⁻¹ + (1 − β₁)gᵗ
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, grads, grads, value=1 - beta2)  # vᵗ = β₂vᵗ⁻¹ + (1 − β₂)(gᵗ)²
        v_hat = torch._foreach_div(v, [1 - beta2**t for t in steps])  # v̂ᵗ = vᵗ / (1 − β₂ᵗ)
        torch._foreach_sqrt_(v_hat)
        torch._foreach_add_(v_hat, group["eps"])  # sqrt(v̂ᵗ) + ε
        # θᵗ = θᵗ⁻¹ − η m̂ᵗ / (sqrt(v̂ᵗ) + ε) with m̂ᵗ = mᵗ / (1 − β₁ᵗ): the division by (1 − β₁ᵗ) is a
        # scalar, so it joins η rather than costing a full-size m̂ per step.
        lr = float(group["lr"])
        torch._foreach_addcdiv_(params, m, v_hat, [-lr / (1 - beta1**t) for t in steps])


OPTIMIZERS.register("adam", "Adam, PyTorch's form (equal to torch.optim.Adam)")(Adam)
OPTIMIZERS.register("adam_lecture", "Adam as written in the paper/lecture (explicit m̂, v̂)")(
    AdamLecture
)
