"""The one interface through which anything attaches to the training loop, and the state it sees.

Early stopping, checkpoints, history files, progress output and plots are callbacks, like any
user's, so the loop itself stays forward -> loss -> zero_grad -> backward -> clip -> step (minGPT's
``trainer.py``). The events, in the order a run raises them::

    on_fit_start
    per epoch:  on_epoch_start
                per step: on_after_backward -> (clip, optimizer.step, scheduler.step) -> on_step_end
                on_epoch_end(record)
    on_fit_end                      (or on_exception when anything above raised)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from trainlab.train.config import TrainConfig
from trainlab.train.history import History


@dataclass
class TrainState:
    """What callbacks can read (and ``stop``, which they may set to end the run after this epoch).

    Attributes:
        model, optimizer, scheduler, config, history: the run's objects.
        epoch: epochs finished.
        step: optimisation steps taken (the current step is ``step + 1`` until it is taken).
        stop: set to end training after the current epoch.
        device: where the model and batches live.
        steps_per_epoch: optimisation steps per epoch, as the schedule was built for.
        total_steps: ``config.epochs * steps_per_epoch``, the schedule's length.
        batch_index: 1-based position of the current batch in its epoch.
        loss: the current step's loss (detached, on ``device``; ``.item()`` only when needed, it
            waits for the device).
        batch_size: rows in the current batch (the last one of an epoch may be smaller).
        extra: free room for callbacks to share values.
        parallel: under ``torchrun``, the :class:`~trainlab.distributed.DataParallel` (the
            DDP-wrapped model, the process group); ``None`` in a single process.
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    config: TrainConfig
    history: History
    epoch: int = 0
    step: int = 0
    stop: bool = False
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    steps_per_epoch: int = 0
    total_steps: int = 0
    batch_index: int = 0
    loss: Tensor | None = None
    batch_size: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    parallel: Any = None


class Callback:
    """Override any of these hooks; the defaults do nothing."""

    def on_fit_start(self, state: TrainState) -> None:
        """Before the first epoch (after a resume has restored the state)."""

    def on_epoch_start(self, state: TrainState) -> None:
        """Before the first batch of epoch ``state.epoch + 1``."""

    def on_after_backward(self, state: TrainState) -> None:
        """Gradients are in ``.grad``, not yet clipped or applied; ``state.loss`` and
        ``state.batch_size`` describe this step."""

    def on_step_end(self, state: TrainState) -> None:
        """After ``optimizer.step()`` and ``scheduler.step()``; ``state.step`` counts this step."""

    def on_epoch_end(self, state: TrainState, record: dict[str, float]) -> None:
        """After each epoch's record is complete (validation included) and appended to the
        history; ``record`` is the dict the progress output and later callbacks see."""

    def on_fit_end(self, state: TrainState) -> None:
        """After the last epoch, before the best weights are restored."""

    def on_exception(self, state: TrainState, error: BaseException) -> None:
        """Training raised ``error`` (a diverged loss, a Ctrl-C, a failing callback); it is
        re-raised after every callback has seen it. ``state.loss`` is the last loss computed."""


HOOKS = (
    "on_fit_start",
    "on_epoch_start",
    "on_after_backward",
    "on_step_end",
    "on_epoch_end",
    "on_fit_end",
    "on_exception",
)


class CallbackList:
    """Calls each hook on every callback, in order, skipping those that leave it as the default.

    Callbacks need not subclass :class:`Callback`; a missing hook is skipped. Skipping the
    defaults keeps the two per-step events free for callbacks that do not use them.
    """

    def __init__(self, callbacks: Sequence[Any]) -> None:
        self.callbacks = list(callbacks)
        self._hooks = {name: _implementations(self.callbacks, name) for name in HOOKS}

    def on_fit_start(self, state: TrainState) -> None:
        for fn in self._hooks["on_fit_start"]:
            fn(state)

    def on_epoch_start(self, state: TrainState) -> None:
        for fn in self._hooks["on_epoch_start"]:
            fn(state)

    def on_after_backward(self, state: TrainState) -> None:
        for fn in self._hooks["on_after_backward"]:
            fn(state)

    def on_step_end(self, state: TrainState) -> None:
        for fn in self._hooks["on_step_end"]:
            fn(state)

    def on_epoch_end(self, state: TrainState, record: dict[str, float]) -> None:
        for fn in self._hooks["on_epoch_end"]:
            fn(state, record)

    def on_fit_end(self, state: TrainState) -> None:
        for fn in self._hooks["on_fit_end"]:
            fn(state)

    def on_exception(self, state: TrainState, error: BaseException) -> None:
        for fn in self._hooks["on_exception"]:
            fn(state, error)


def _implementations(callbacks: Sequence[Any], name: str) -> list[Any]:
    default = getattr(Callback, name)
    found = []
    for cb in callbacks:
        fn = getattr(cb, name, None)
        if fn is not None and getattr(fn, "__func__", None) is not default:
            found.append(fn)
    return found
