"""Optimizers and learning-rate schedules: the lecture's forms from scratch, PyTorch's forms checked
against ``torch.optim``, all registered by name."""

from trainlab.optim.registry import (
    OPTIMIZERS,
    SCHEDULERS,
    create_optimizer,
    create_scheduler,
    list_optimizers,
    list_schedulers,
)

__all__ = [
    "OPTIMIZERS",
    "SCHEDULERS",
    "create_optimizer",
    "create_scheduler",
    "list_optimizers",
    "list_schedulers",
]
