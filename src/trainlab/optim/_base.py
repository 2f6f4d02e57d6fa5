"""Shared machinery of trainlab's optimizers: gather parameters with gradients, apply weight decay,
update all tensors of a parameter group at once with ``torch._foreach_*`` ops.

Subclassing ``torch.optim.Optimizer`` gives ``param_groups``, ``state_dict``/``load_state_dict``,
hooks and compatibility with every ``torch.optim.lr_scheduler``. The per-parameter ``step`` count is
kept as a Python int (saved as such; PyTorch's own optimizers convert it to a tensor when they load
our state and we accept their tensor steps), which keeps the bias corrections free of tensor syncs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor


def check_hyper(name: str, value: float, low: float = 0.0, high: float | None = None) -> None:
    """Raise ValueError unless ``low <= value`` (and ``value < high`` when given)."""
    if not (value >= low) or (high is not None and not value < high):
        bound = f"in [{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"invalid {name}: {value} (must be {bound})")


def step_count(state: dict[str, Any]) -> int:
    """The parameter's step count, whether stored by trainlab (int) or by PyTorch (tensor)."""
    return int(state.get("step", 0))


class ForeachOptimizer(torch.optim.Optimizer):
    """Base class: ``step`` gathers each group's ``(params, grads)`` and calls ``_update_group``.

    Subclasses set ``defaults`` and implement :meth:`_update_group`, which must update the
    parameters in place without touching ``p.grad`` (the gradient lists may alias it).
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        check_hyper("lr", float(defaults["lr"]))
        check_hyper("weight_decay", float(defaults.get("weight_decay", 0.0)))
        super().__init__(params, defaults)

    def _gather(self, group: dict[str, Any]) -> tuple[list[Tensor], list[Tensor]]:
        params: list[Tensor] = []
        grads: list[Tensor] = []
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            if torch.is_complex(p):
                raise RuntimeError(f"{type(self).__name__} does not support complex parameters")
            params.append(p)
            grads.append(p.grad)
        if group.get("maximize", False):
            grads = list(torch._foreach_neg(grads))
        return params, grads

    @staticmethod
    def _weight_decay(
        grads: list[Tensor], params: list[Tensor], weight_decay: float
    ) -> list[Tensor]:
        # L2 regularisation as PyTorch applies it: g + λθ, in new tensors (p.grad stays as it was).
        if weight_decay == 0:
            return grads
        return list(torch._foreach_add(grads, params, alpha=weight_decay))

    def _advance_steps(self, params: list[Tensor]) -> list[int]:
        steps = []
        for p in params:
            state = self.state[p]
            state["step"] = step_count(state) + 1
            steps.append(state["step"])
        return steps

    def _state_tensors(self, params: list[Tensor], key: str, fill: float = 0.0) -> list[Tensor]:
        # The named state tensor of each parameter, created (filled with ``fill``) on first use.
        out = []
        for p in params:
            state = self.state[p]
            if key not in state:
                state[key] = torch.full_like(p, fill, memory_format=torch.preserve_format)
            out.append(state[key])
        return out

    def _update_group(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]
    ) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimisation step.

        Args:
            closure: optional callable that re-evaluates the model and returns the loss.

        Returns:
            The closure's loss, or None.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads = self._gather(group)
            if params:
                self._update_group(group, params, grads)
        return loss
