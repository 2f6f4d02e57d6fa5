"""Optimizers and learning-rate schedules: the lecture's forms from scratch, PyTorch's forms checked
against ``torch.optim``, all registered by name.

Importing this package registers everything: ``create_optimizer("momentum", params, lr=0.1)``,
``create_scheduler("cosine", optimizer, total_steps=1000, warmup_steps=50)``.
"""

from trainlab.optim.adagrad import Adagrad, AdagradLecture
from trainlab.optim.adam import Adam, AdamLecture
from trainlab.optim.momentum import Momentum
from trainlab.optim.registry import (
    OPTIMIZERS,
    SCHEDULERS,
    create_optimizer,
    create_scheduler,
    list_optimizers,
    list_schedulers,
)
from trainlab.optim.rmsprop import RMSprop, RMSpropLecture
from trainlab.optim.schedules import (
    cosine_factor,
    schedule_factors,
    step_factor,
    transformer_factor,
    warmup_factor,
)

__all__ = [
    "OPTIMIZERS",
    "SCHEDULERS",
    "Adagrad",
    "AdagradLecture",
    "Adam",
    "AdamLecture",
    "Momentum",
    "RMSprop",
    "RMSpropLecture",
    "cosine_factor",
    "create_optimizer",
    "create_scheduler",
    "list_optimizers",
    "list_schedulers",
    "schedule_factors",
    "step_factor",
    "transformer_factor",
    "warmup_factor",
]
