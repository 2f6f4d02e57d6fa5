"""Hooks into the training loop, and the loop's state that they see.

Logging, early stopping and checkpoints attach to the loop instead of living inside it, so the loop
itself stays forward -> loss -> zero_grad -> backward -> clip -> step (minGPT's ``trainer.py``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from trainlab.train.config import TrainConfig
from trainlab.train.history import History


@dataclass
class TrainState:
    """What callbacks can read (and ``stop``, which they may set)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    config: TrainConfig
    history: History
    epoch: int = 0  # epochs finished
    step: int = 0  # optimisation steps taken
    stop: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Callback:
    """Override any of these hooks; the defaults do nothing."""

    def on_fit_start(self, state: TrainState) -> None:
        """Before the first epoch (after a resume has restored the state)."""

    def on_epoch_end(self, state: TrainState, record: dict[str, float]) -> None:
        """After each epoch's record is complete (validation included)."""

    def on_fit_end(self, state: TrainState) -> None:
        """After the last epoch, before the best weights are restored."""


class EarlyStopping:
    """Track the best value of ``monitor``; keep a copy of the best weights; say when to stop.

    Args:
        monitor: the history key to watch.
        mode: ``min`` or ``max``.
        patience: epochs without improvement before stopping (``None``: never stop).
        min_delta: the least change that counts as an improvement.
    """

    def __init__(
        self, monitor: str, mode: str, patience: int | None, min_delta: float = 0.0
    ) -> None:
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.min_delta = min_delta
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.best_weights: dict[str, torch.Tensor] | None = None

    def improved(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best_value is None:
            return True
        if self.mode == "min":
            return value < self.best_value - self.min_delta
        return value > self.best_value + self.min_delta

    def update(self, epoch: int, record: dict[str, float], model: torch.nn.Module) -> bool:
        """Record ``epoch``; return True when it is the new best."""
        if self.monitor not in record:
            raise KeyError(
                f"cannot monitor {self.monitor!r}: the epoch record holds {', '.join(record)}"
            )
        value = float(record[self.monitor])
        if self.improved(value):
            self.best_value, self.best_epoch, self.bad_epochs = value, epoch, 0
            self.best_weights = copy.deepcopy(model.state_dict())
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
        }

    def load_state_dict(
        self, state: dict[str, Any], best_weights: dict[str, torch.Tensor] | None
    ) -> None:
        self.best_value = state["best_value"]
        self.best_epoch = state["best_epoch"]
        self.bad_epochs = state["bad_epochs"]
        self.best_weights = best_weights
