"""Validation metrics: functions of (outputs, targets) that return a float."""

from __future__ import annotations

import torch
from torch import Tensor


def accuracy(outputs: Tensor, targets: Tensor) -> float:
    """Share of rows whose arg-max class equals the target (outputs: (N, C) logits; targets: (N,))."""
    return (outputs.argmax(dim=-1) == targets).float().mean().item()


def mse(outputs: Tensor, targets: Tensor) -> float:
    """Mean squared error; outputs of shape (N, 1) are compared with targets of shape (N,)."""
    return torch.mean((outputs.reshape(targets.shape).float() - targets.float()) ** 2).item()


def rmse(outputs: Tensor, targets: Tensor) -> float:
    """Root mean squared error."""
    return mse(outputs, targets) ** 0.5
