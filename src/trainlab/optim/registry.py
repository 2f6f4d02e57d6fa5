"""Registries of optimizers and learning-rate schedules, so a config can name them.

``create_optimizer("adam", model.parameters(), lr=1e-3)`` builds any registered optimizer (PyTorch's
own and trainlab's from-scratch ones); ``create_scheduler("cosine", opt, total_steps=..., warmup_steps=...)``
builds a per-step schedule. ``list_optimizers()`` / ``list_schedulers()`` feed CLI choices and tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from trainlab.registry import Registry

OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optimizer")
# A scheduler factory takes (optimizer, total_steps, **kwargs) and returns an LRScheduler stepped
# once per optimisation step.
SCHEDULERS: Registry[Callable[..., torch.optim.lr_scheduler.LRScheduler]] = Registry("schedule")


def create_optimizer(name: str, params: Iterable[Any], **kwargs: Any) -> torch.optim.Optimizer:
    """Build the optimizer registered as ``name`` over ``params`` with ``kwargs`` (lr, betas, ...)."""
    return OPTIMIZERS.get(name)(params, **kwargs)


def create_scheduler(
    name: str, optimizer: torch.optim.Optimizer, total_steps: int, **kwargs: Any
) -> torch.optim.lr_scheduler.LRScheduler:
    """Build the per-step learning-rate schedule registered as ``name``."""
    return SCHEDULERS.get(name)(optimizer, total_steps, **kwargs)


def list_optimizers() -> list[str]:
    return OPTIMIZERS.names()


def list_schedulers() -> list[str]:
    return SCHEDULERS.names()


OPTIMIZERS.register("sgd", "torch.optim.SGD (momentum, nesterov as kwargs)")(torch.optim.SGD)
OPTIMIZERS.register("torch_adam", "torch.optim.Adam")(torch.optim.Adam)
OPTIMIZERS.register("adamw", "torch.optim.AdamW")(torch.optim.AdamW)
OPTIMIZERS.register("torch_adagrad", "torch.optim.Adagrad")(torch.optim.Adagrad)
OPTIMIZERS.register("torch_rmsprop", "torch.optim.RMSprop")(torch.optim.RMSprop)


@SCHEDULERS.register("constant", "constant learning rate")
def _constant(
    optimizer: torch.optim.Optimizer, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
