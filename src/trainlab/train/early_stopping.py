"""Early stopping: track the best value of a monitored metric, keep the best weights, say when to
stop.

Stopping when the validation loss stops improving is the lecture's cure for overfitting: the
weights of the best validation epoch are kept and put back into the model when training ends.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch

from trainlab.train.callbacks import Callback, TrainState


class EarlyStopping(Callback):
    """Track the best value of ``monitor``; keep a copy of the best weights; say when to stop.

    As a callback it updates ``state.history.best_epoch``/``best_value`` and sets ``state.stop``
    (and ``history.stopped_early``) once ``patience`` epochs pass without improvement.

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
        """Whether ``value`` beats the best so far by more than ``min_delta`` (NaN never does)."""
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

    def on_epoch_end(self, state: TrainState, record: dict[str, float]) -> None:
        history = state.history
        if self.update(state.epoch, record, state.model):
            history.best_epoch, history.best_value = self.best_epoch, self.best_value
        if self.should_stop:
            history.stopped_early = True
            state.stop = True

    def restore_best(self, model: torch.nn.Module) -> None:
        """Load the best epoch's weights into ``model`` (nothing happens before a first best)."""
        if self.best_weights is not None:
            model.load_state_dict(self.best_weights)

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
