"""What a diagnosis looks at: a trained model, its loss, and one fixed batch.

Each competition package builds a :class:`DiagnosisTarget` from a saved model folder through its
``load_for_diagnosis`` function (found through :mod:`trainlab.tasks`), so ``trainlab diagnose``
works on any saved model; library users build one directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass
class DiagnosisTarget:
    """A model with trained weights, its loss and one fixed batch to evaluate it on."""

    model: torch.nn.Module
    loss_fn: Callable[[Tensor, Tensor], Tensor]
    inputs: Any  # a tensor, or a tuple of tensors passed as model(*inputs)
    targets: Tensor
    description: str
