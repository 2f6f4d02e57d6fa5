"""Full-batch training for a fixed number of epochs, without the Trainer's per-epoch machinery.

Every COVID network but the course's sample trains on its fold's ~1,600 rows as one batch for a
fixed number of epochs (no early stopping, no best-epoch restoring). For a 23-input linear layer
the Trainer's bookkeeping (best-epoch snapshots, records, callbacks) costs far more than the step
itself. :func:`fit_full_batch` takes exactly the steps the Trainer would take
(:func:`trainlab.train.fit`): the same optimizer with the same weight decay
(:func:`trainlab.optim.create_optimizer`), the same schedule over ``epochs`` steps
(:func:`trainlab.optim.create_scheduler`), the same loss, gradient clipping and order of
``zero_grad``, ``backward``, ``step`` and the schedule's step. The one difference: the Trainer
shuffles the rows of its single batch every epoch, which changes only the order of a sum
(rounding in the last bits). :func:`runs_full_batch` says when this path applies. With
``records``, the doctor's :class:`~trainlab.doctor.Monitor` watches the fit (it never changes it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from trainlab.errors import TrainingDiverged
from trainlab.optim import create_optimizer, create_scheduler
from trainlab.seed import seed_everything
from trainlab.train import History, TrainConfig

Metric = Callable[[torch.Tensor, torch.Tensor], float]


def runs_full_batch(tc: TrainConfig, n_rows: int) -> bool:
    """Whether a fit of ``n_rows`` rows with ``tc`` is one full batch for fixed epochs on the
    CPU, in full precision (what :func:`fit_full_batch` does)."""
    return (
        n_rows <= tc.batch_size
        and tc.patience is None
        and not tc.restore_best
        and not tc.amp
        and tc.device == "cpu"
        and tc.steps_per_epoch is None
    )


def fit_full_batch(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    train: tuple[torch.Tensor, torch.Tensor],
    tc: TrainConfig,
    curves: Mapping[str, tuple[torch.Tensor, torch.Tensor, Metric]] | None = None,
    records: Path | None = None,
) -> History:
    """Train ``model`` on one batch for ``tc.epochs`` epochs, as :func:`trainlab.train.fit` would.

    Args:
        model: the network (left in training mode's weights, evaluation mode).
        loss_fn: ``loss_fn(outputs, targets)`` -> scalar loss.
        train: the inputs and targets, one batch.
        tc: the settings (optimizer, schedule, weight decay, clipping, epochs, seed).
        curves: name -> (inputs, targets, metric) evaluated after every epoch in evaluation
            mode and recorded as ``name`` (learning curves); None records only the loss.
        records: a folder for the doctor's records of this fit (None: not watched).

    Returns:
        The per-epoch records (``epoch``, ``train_loss``, ``lr`` and the curves).
    """
    seed_everything(tc.seed)
    opt_kwargs = dict(tc.optimizer_kwargs)
    if tc.weight_decay > 0:
        opt_kwargs["weight_decay"] = tc.weight_decay
    optimizer = create_optimizer(tc.optimizer, model.parameters(), **opt_kwargs)
    scheduler = create_scheduler(tc.scheduler, optimizer, tc.epochs, **tc.scheduler_kwargs)
    history = History(monitor="train_loss")
    monitor = _monitor(model, optimizer, loss_fn, train, tc, records)
    try:
        _steps(model, loss_fn, train, tc, optimizer, scheduler, history, curves, monitor)
    except BaseException as error:
        if monitor is not None:
            monitor.close(error)
        raise
    if monitor is not None:
        monitor.close()
    model.eval()
    return history


def _steps(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    train: tuple[torch.Tensor, torch.Tensor],
    tc: TrainConfig,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    history: History,
    curves: Mapping[str, tuple[torch.Tensor, torch.Tensor, Metric]] | None,
    monitor: Any,
) -> None:
    x, y = train
    for epoch in range(1, tc.epochs + 1):
        model.train()
        loss = loss_fn(model(x), y)
        if not torch.isfinite(loss):
            if monitor is not None:
                monitor.before_step(loss)  # records the divergence before stopping
            raise TrainingDiverged(f"epoch {epoch}: the training loss became {float(loss)}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if tc.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        if monitor is not None:
            monitor.epoch = epoch
            monitor.before_step(loss)
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        if monitor is not None:
            monitor.after_step()
        scheduler.step()
        record = {"epoch": float(epoch), "train_loss": float(loss.detach()), "lr": lr}
        if curves:
            model.eval()
            with torch.no_grad():
                for name, (cx, cy, metric) in curves.items():
                    record[name] = metric(model(cx), cy)
        history.append(record)
        if monitor is not None:
            monitor.epoch_end(epoch, train_loss=record["train_loss"])


def _monitor(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    train: tuple[torch.Tensor, torch.Tensor],
    tc: TrainConfig,
    records: Path | None,
) -> Any:
    """The doctor's monitor of this fit, or None without ``records``."""
    if records is None:
        return None
    from trainlab.doctor import Monitor

    x, y = train
    return Monitor(
        model, optimizer, records, loss_fn=loss_fn, probe=(x, y), batch_size=len(x),
        n_train=len(x), seed=tc.seed, description=records.name,
    )  # fmt: skip
