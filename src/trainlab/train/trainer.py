"""A model-agnostic training loop: ``fit(model, loss_fn, train, val, config)``.

The visible loop is forward -> loss -> zero_grad -> backward -> clip -> step, with the learning
rate schedule stepped after every step and a clear stop on a non-finite loss (minGPT's
``trainer.py``). Everything else attaches as a :class:`~trainlab.train.callbacks.Callback`, built
from the config in :func:`default_callbacks`: early stopping on any validation metric with the best
weights kept, atomic checkpoints that resume a run bit for bit (on the CPU, deterministic mode),
the run's files (config, history, learning curves) and progress output.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from trainlab.device import resolve_device
from trainlab.distributed import (
    DataParallel,
    DistContext,
    shard_batches,
    training_session,
    zero_loss,
)
from trainlab.errors import TrainingDiverged, TrainlabError
from trainlab.optim import create_optimizer, create_scheduler
from trainlab.seed import seed_everything
from trainlab.train._forward import autocast, batch_rows, forward
from trainlab.train.batches import epoch_batches, steps_per_epoch, to_device
from trainlab.train.callbacks import Callback, CallbackList, TrainState
from trainlab.train.checkpoint import Checkpoints, checkpoint_dir
from trainlab.train.config import TrainConfig
from trainlab.train.early_stopping import EarlyStopping
from trainlab.train.evaluation import LossFn, Metric, evaluate_batches
from trainlab.train.history import History
from trainlab.train.progress import Progress
from trainlab.train.run_files import RunFiles


def fit(
    model: torch.nn.Module,
    loss_fn: LossFn,
    train: Any,
    val: Any = None,
    config: TrainConfig | None = None,
    metrics: dict[str, Metric] | None = None,
    callbacks: Sequence[Callback] = (),
) -> History:
    """Train ``model`` and return its history.

    Args:
        model: any ``nn.Module``; called as ``model(x)``, or ``model(*x)`` when a batch's inputs are
            a tuple.
        loss_fn: ``loss_fn(outputs, targets)`` -> scalar mean loss.
        train: ``(X, y)`` arrays (tensors, NumPy arrays or memory maps); a re-iterable of
            ``(inputs, targets)`` batches (a list, a DataLoader); or a zero-argument callable
            returning a fresh iterable each epoch. A one-shot iterator (a generator) only for
            ``epochs=1``.
        val: validation data in the same forms, or ``None``.
        config: the settings (defaults: :class:`TrainConfig`).
        metrics: name -> ``fn(outputs, targets)``, computed on the validation set as ``val_<name>``.
        callbacks: hooks that see every event of the run (see :class:`Callback`), called after
            early stopping and checkpoints and before progress output and the run's files.

    Returns:
        The :class:`History`; ``model`` holds the best weights when ``restore_best`` is set.

    Raises:
        TrainingDiverged: the loss became NaN or infinite (the last checkpoint stays intact).
        ConfigError: a one-shot iterator for several epochs, or an unknowable schedule length.
    """
    cfg = config or TrainConfig()
    with training_session(cfg.device) as dist_ctx:
        generator = seed_everything(cfg.seed, cfg.deterministic)
        device = dist_ctx.device if dist_ctx is not None else resolve_device(cfg.device)
        model.to(device)
        train_batches, val_batches = _batches(train, val, cfg, generator, dist_ctx)
        monitor = (
            cfg.monitor if val is not None or not cfg.monitor.startswith("val_") else "train_loss"
        )
        steps = steps_per_epoch(train_batches, cfg.steps_per_epoch)
        state = _initial_state(model, cfg, device, steps, History(monitor=monitor, mode=cfg.mode))
        state.extra["loss_fn"] = loss_fn  # for callbacks that evaluate the loss (the doctor)
        if dist_ctx is not None:
            state.parallel = DataParallel(dist_ctx, model)
        stopper = EarlyStopping(monitor, cfg.mode, cfg.patience, cfg.min_delta)
        hooks = CallbackList(default_callbacks(cfg, stopper, generator, callbacks, dist_ctx))
        try:
            hooks.on_fit_start(state)
            while state.epoch < cfg.epochs and not state.stop:
                record = _run_epoch(
                    state, loss_fn, train_batches, val_batches, metrics or {}, hooks
                )
                hooks.on_epoch_end(state, record)
            hooks.on_fit_end(state)
        except BaseException as error:
            hooks.on_exception(state, error)
            raise
    if cfg.restore_best:
        stopper.restore_best(model)
    return state.history


def default_callbacks(
    cfg: TrainConfig,
    stopper: EarlyStopping,
    generator: torch.Generator | None,
    user: Sequence[Callback] = (),
    dist_ctx: DistContext | None = None,
) -> list[Callback]:
    """The callbacks ``cfg`` asks for, around the user's, in the order :func:`fit` calls them.

    Early stopping first (it marks the best epoch), then checkpoints (written before any user
    callback can interrupt), the doctor's records (``cfg.doctor``, with an ``out_dir``), the
    user's, progress output, and last the run's files.

    Args:
        cfg: the settings.
        stopper: the run's early stopping.
        generator: the data-shuffling generator (its state goes into checkpoints).
        user: the callbacks passed to :func:`fit`.
        dist_ctx: the process group under ``torchrun``: every rank keeps early stopping (its
            metrics are all-reduced, so it decides alike everywhere) and checkpoints (rank 0
            writes them); only rank 0 shows progress and writes the run's files.

    Returns:
        The callbacks, in calling order.
    """
    main = dist_ctx is None or dist_ctx.is_main
    found: list[Callback] = [stopper]
    ckpt_dir = checkpoint_dir(cfg)
    if ckpt_dir is not None and (cfg.checkpoint or cfg.resume):
        found.append(
            Checkpoints(
                ckpt_dir, stopper, generator, cfg.resume, save=cfg.checkpoint, dist=dist_ctx
            )
        )
    if cfg.out_dir is not None and cfg.doctor and main:
        from trainlab.doctor.callback import DoctorCallback  # the doctor builds on this package

        found.append(DoctorCallback(cfg.out_dir, resume=cfg.resume))
    found += list(user)
    found.append(Progress(cfg.quiet or not main, cfg.log_every))
    if cfg.out_dir is not None and main:
        found.append(RunFiles(cfg.out_dir))
    return found


def _batches(
    train: Any,
    val: Any,
    cfg: TrainConfig,
    generator: torch.Generator,
    dist_ctx: DistContext | None = None,
) -> tuple[Iterable[Any], Iterable[Any] | None]:
    """The training batches (shuffled with ``generator``) and the validation batches, if any;
    under ``torchrun`` each rank's shard of every batch."""
    train_batches = epoch_batches(
        train, cfg.batch_size, cfg.epochs, shuffle=cfg.shuffle, generator=generator
    )
    val_batches = None
    if val is not None:
        eval_size = cfg.eval_batch_size or max(1024, 4 * cfg.batch_size)
        val_batches = epoch_batches(val, eval_size, cfg.epochs, what="validation data")
    if dist_ctx is None:
        return train_batches, val_batches
    rank, world = dist_ctx.rank, dist_ctx.world_size
    if val_batches is not None:
        val_batches = shard_batches(val_batches, rank, world)
    return shard_batches(train_batches, rank, world), val_batches


def _initial_state(
    model: torch.nn.Module, cfg: TrainConfig, device: torch.device, steps: int, history: History
) -> TrainState:
    """The optimizer, the schedule over ``cfg.epochs * steps`` steps, and the state holding them."""
    opt_kwargs = dict(cfg.optimizer_kwargs)
    if cfg.weight_decay > 0:
        opt_kwargs["weight_decay"] = cfg.weight_decay
    optimizer = create_optimizer(cfg.optimizer, model.parameters(), **opt_kwargs)
    total = cfg.epochs * steps
    scheduler = create_scheduler(cfg.scheduler, optimizer, total, **cfg.scheduler_kwargs)
    return TrainState(
        model, optimizer, scheduler, cfg, history, device=device, steps_per_epoch=steps,
        total_steps=total,
    )  # fmt: skip


def _run_epoch(
    state: TrainState,
    loss_fn: LossFn,
    train_batches: Iterable[Any],
    val_batches: Iterable[Any] | None,
    metrics: dict[str, Metric],
    hooks: CallbackList,
) -> dict[str, float]:
    """Train one epoch, validate, append the epoch's record to the history and return it."""
    epoch = state.epoch + 1
    hooks.on_epoch_start(state)
    t0 = time.perf_counter()
    record: dict[str, float] = {
        "epoch": epoch,
        "train_loss": _train_epoch(state, loss_fn, train_batches, hooks),
    }
    if val_batches is not None:
        scores = evaluate_batches(
            state.model, loss_fn, val_batches, metrics, state.device, amp=state.config.amp,
            dist=None if state.parallel is None else state.parallel.ctx,
        )  # fmt: skip
        record.update({f"val_{k}": v for k, v in scores.items()})
    record["lr"] = state.optimizer.param_groups[0]["lr"]
    record["time_s"] = time.perf_counter() - t0
    state.history.append(record)
    state.epoch = epoch
    return record


def _train_epoch(
    state: TrainState, loss_fn: LossFn, batches: Iterable[Any], hooks: CallbackList
) -> float:
    """One pass over ``batches``; returns the mean training loss, weighted by batch size."""
    model, optimizer, cfg, device = state.model, state.optimizer, state.config, state.device
    parallel = state.parallel
    net = model if parallel is None else parallel.module  # DDP under torchrun
    model.train()
    total, count, index = torch.zeros((), device=device), 0, 0
    for index, (inputs, targets) in enumerate(batches, start=1):
        state.batch_index = index
        inputs, targets = to_device(inputs, device), to_device(targets, device)
        rows = batch_rows(targets)
        with autocast(device, cfg.amp):
            outputs = forward(net, inputs)
            loss = loss_fn(outputs, targets) if rows else zero_loss(outputs)
        state.loss, state.batch_size = loss.detach(), rows
        state.extra["batch"] = (inputs, targets)
        if not torch.isfinite(loss):
            raise TrainingDiverged(_diverged_message(loss, state))
        optimizer.zero_grad(set_to_none=True)
        # Weighted by this rank's share of the global batch: DDP's average is then the mean.
        (loss if parallel is None else loss * parallel.loss_weight(rows)).backward()
        hooks.on_after_backward(state)
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        state.scheduler.step()
        state.step += 1
        hooks.on_step_end(state)
        total += loss.detach().float() * rows
        count += rows
    if index == 0:
        raise TrainlabError(
            f"epoch {state.epoch + 1}: the training data yielded no batches (an iterator that "
            "was already used up?)"
        )
    if parallel is not None:
        return parallel.mean(total.item(), count)
    return (total / count).item()


def _diverged_message(loss: Tensor, state: TrainState) -> str:
    lr = state.optimizer.param_groups[0].get("lr")
    msg = (
        f"the loss became {loss.item()} at epoch {state.epoch + 1}, step {state.batch_index}. "
        f"Likely causes: a learning rate too high (lr={lr:g}; try 10x smaller or add gradient "
        f"clipping) or unnormalised inputs (standardise the features)."
    )
    ckpt_dir = checkpoint_dir(state.config)
    if ckpt_dir is not None and (ckpt_dir / "last.pt").is_file():
        msg += f" The last good checkpoint is {ckpt_dir / 'last.pt'}."
    return msg
