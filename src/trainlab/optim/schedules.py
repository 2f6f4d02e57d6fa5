"""Learning-rate schedules, stepped once per optimisation step.

The lecture's "learning rate scheduling": decay (the step size should shrink as training nears a
minimum) and warm-up (start small while σ in Adam/RMSProp is still a poor estimate; Liu et al.,
2020, "On the Variance of the Adaptive Learning Rate and Beyond"), as in ResNet (He et al., 2016),
the Transformer (Vaswani et al., 2017) and cosine annealing (Loshchilov & Hutter, 2017).

Each schedule is a pure function ``factor(step) -> float``: the multiplier of the optimizer's base
learning rate for the optimisation step that follows ``step`` completed steps (``step = 0`` is the
first update). The registered factories wrap them in ``torch.optim.lr_scheduler.LambdaLR``, whose
``lr_lambda`` receives exactly that count when the scheduler is stepped once per optimizer step.
:func:`schedule_factors` returns a whole curve for plotting.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from trainlab.errors import ConfigError
from trainlab.optim.registry import SCHEDULERS, create_scheduler


def _check(name: str, value: float, low: float = 0.0) -> None:
    if not value >= low:
        raise ConfigError(f"schedule {name} must be >= {low}, got {value}")


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warm-up from 1/warmup_steps to 1 over ``warmup_steps`` steps, then constant 1.

    Args:
        step: optimisation steps completed (0 for the first update).
        warmup_steps: length of the warm-up; 0 disables it.

    Returns:
        The learning-rate multiplier.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return 1.0


def cosine_factor(
    step: int, total_steps: int, warmup_steps: int = 0, min_factor: float = 0.0
) -> float:
    """Linear warm-up, then half a cosine from 1 down to ``min_factor`` at ``total_steps``.

    Args:
        step: optimisation steps completed.
        total_steps: steps of the whole run; from there on the factor stays ``min_factor``.
        warmup_steps: linear warm-up length.
        min_factor: final multiplier (e.g. 0.01 for lr → lr/100).

    Returns:
        The learning-rate multiplier.
    """
    if step < warmup_steps:
        return warmup_factor(step, warmup_steps)
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def step_factor(step: int, step_size: int, gamma: float = 0.1, warmup_steps: int = 0) -> float:
    """Optional linear warm-up, then multiply by ``gamma`` every ``step_size`` steps.

    Args:
        step: optimisation steps completed.
        step_size: steps between decays (counted after the warm-up).
        gamma: decay multiplier.
        warmup_steps: linear warm-up length.

    Returns:
        The learning-rate multiplier.
    """
    if step < warmup_steps:
        return warmup_factor(step, warmup_steps)
    return gamma ** ((step - warmup_steps) // step_size)


def transformer_factor(step: int, d_model: int = 512, warmup_steps: int = 4000) -> float:
    """The Transformer's schedule: d_model^-0.5 · min(n^-0.5, n · warmup^-1.5), n = step + 1.

    Used as a multiplier of the optimizer's lr, so ``lr=1`` gives exactly the paper's learning
    rate (Vaswani et al., 2017, eq. 3): a linear rise for ``warmup_steps`` steps, then decay as
    1/sqrt(n). With another lr the whole curve is scaled.

    Args:
        step: optimisation steps completed (the paper's step_num is ``step + 1``).
        d_model: model width.
        warmup_steps: steps of the linear rise.

    Returns:
        The learning-rate multiplier.
    """
    n = step + 1
    return d_model**-0.5 * min(n**-0.5, n * warmup_steps**-1.5)


def _resolve_warmup(total_steps: int, warmup_steps: int | None, default_fraction: float) -> int:
    _check("total_steps", total_steps, 1)
    if warmup_steps is None:
        return max(1, round(default_fraction * total_steps)) if default_fraction > 0 else 0
    _check("warmup_steps", warmup_steps)
    return int(warmup_steps)


@SCHEDULERS.register(
    "warmup", "linear warm-up over warmup_steps (default 10% of the run), then constant"
)
def warmup_schedule(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int | None = None
) -> LRScheduler:
    """Linear warm-up then constant; ``warmup_steps`` defaults to 10% of ``total_steps``."""
    w = _resolve_warmup(total_steps, warmup_steps, 0.1)
    return LambdaLR(optimizer, functools.partial(warmup_factor, warmup_steps=w))


@SCHEDULERS.register("cosine", "linear warm-up (default none), then cosine decay to min_factor")
def cosine_schedule(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int | None = None,
    min_factor: float = 0.0,
) -> LRScheduler:
    """Warm-up then cosine decay to ``min_factor`` × lr at ``total_steps``."""
    w = _resolve_warmup(total_steps, warmup_steps, 0.0)
    _check("min_factor", min_factor)
    fn = functools.partial(
        cosine_factor, total_steps=total_steps, warmup_steps=w, min_factor=min_factor
    )
    return LambdaLR(optimizer, fn)


@SCHEDULERS.register(
    "step", "optional warm-up, then lr × gamma every step_size steps (default a third of the run)"
)
def step_schedule(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    step_size: int | None = None,
    gamma: float = 0.1,
    warmup_steps: int | None = None,
) -> LRScheduler:
    """Step decay; ``step_size`` defaults to a third of the run (two decays)."""
    w = _resolve_warmup(total_steps, warmup_steps, 0.0)
    size = max(1, (total_steps - w) // 3) if step_size is None else step_size
    _check("step_size", size, 1)
    _check("gamma", gamma)
    fn = functools.partial(step_factor, step_size=size, gamma=gamma, warmup_steps=w)
    return LambdaLR(optimizer, fn)


@SCHEDULERS.register(
    "transformer", "d_model^-0.5·min(n^-0.5, n·warmup^-1.5) × lr (lr=1: the paper's)"
)
def transformer_schedule(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    d_model: int = 512,
    warmup_steps: int = 4000,
) -> LRScheduler:
    """The Transformer's inverse-square-root schedule with warm-up (``total_steps`` is unused)."""
    _check("total_steps", total_steps, 1)
    _check("d_model", d_model, 1)
    _check("warmup_steps", warmup_steps, 1)
    fn = functools.partial(transformer_factor, d_model=d_model, warmup_steps=warmup_steps)
    return LambdaLR(optimizer, fn)


def schedule_factors(name: str, total_steps: int, **kwargs: Any) -> list[float]:
    """The multiplier of the base lr at every step of a run, for plotting.

    Builds the registered schedule on a throw-away optimizer and steps it ``total_steps`` times.

    Args:
        name: a name from ``list_schedulers()``.
        total_steps: length of the run.
        **kwargs: the schedule's settings (``warmup_steps``, ``min_factor``, ...).

    Returns:
        ``total_steps`` factors; entry ``i`` multiplies the lr of update ``i``.
    """
    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = create_scheduler(name, optimizer, total_steps, **kwargs)
    factors = []
    for _ in range(total_steps):
        factors.append(float(optimizer.param_groups[0]["lr"]))
        optimizer.step()
        scheduler.step()
    return factors
