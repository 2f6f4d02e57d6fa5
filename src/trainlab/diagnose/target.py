"""What a diagnosis looks at: a trained model, its loss, and one fixed batch.

Each task (``trainlab.tasks.<name>``) builds a :class:`DiagnosisTarget` from a saved model folder
through its ``load_for_diagnosis`` function, so ``trainlab diagnose`` works on any saved model.
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
