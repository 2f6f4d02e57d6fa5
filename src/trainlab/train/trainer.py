"""A model-agnostic training loop: ``fit(model, loss_fn, train, val, config)``.

The visible loop is forward -> loss -> zero_grad -> backward -> clip -> step. Around it: per-step
learning-rate schedules, early stopping on any validation metric with the best weights kept,
atomic checkpoints that resume a run bit for bit (on CPU, deterministic mode), a progress bar,
history as CSV/JSON, learning curves, and a clear stop on a non-finite loss.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from trainlab.config import save_config, to_dict
from trainlab.device import resolve_device
from trainlab.errors import TrainingDiverged
from trainlab.optim import create_optimizer, create_scheduler
from trainlab.seed import seed_everything
from trainlab.train.batches import as_batches, to_device
from trainlab.train.callbacks import Callback, EarlyStopping, TrainState
from trainlab.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from trainlab.train.config import TrainConfig
from trainlab.train.history import History

LossFn = Callable[[Any, Any], Tensor]
Metric = Callable[[Tensor, Tensor], float]


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
        train: ``(X, y)`` arrays (tensors, NumPy arrays or memory maps) or an iterable of
            ``(inputs, targets)`` batches.
        val: validation data in the same forms, or ``None``.
        config: the settings (defaults: :class:`TrainConfig`).
        metrics: name -> ``fn(outputs, targets)``, computed on the validation set as ``val_<name>``.
        callbacks: hooks called at the start, after every epoch and at the end.

    Returns:
        The :class:`History`; ``model`` holds the best weights when ``restore_best`` is set.

    Raises:
        TrainingDiverged: the loss became NaN or infinite (the last checkpoint stays intact).
    """
    cfg = config or TrainConfig()
    metrics = dict(metrics or {})
    generator = seed_everything(cfg.seed, cfg.deterministic)
    device = resolve_device(cfg.device)
    model.to(device)
    monitor = (
        cfg.monitor if (val is not None or not cfg.monitor.startswith("val_")) else "train_loss"
    )

    train_batches = as_batches(train, cfg.batch_size, shuffle=cfg.shuffle, generator=generator)
    val_batches = (
        as_batches(val, cfg.eval_batch_size or max(1024, 4 * cfg.batch_size))
        if val is not None
        else None
    )
    steps_per_epoch = _length(train_batches)
    opt_kwargs = dict(cfg.optimizer_kwargs)
    if cfg.weight_decay > 0:
        opt_kwargs["weight_decay"] = cfg.weight_decay
    optimizer = create_optimizer(cfg.optimizer, model.parameters(), **opt_kwargs)
    scheduler = create_scheduler(
        cfg.scheduler,
        optimizer,
        max(1, cfg.epochs * (steps_per_epoch or 1)),
        **cfg.scheduler_kwargs,
    )
    history = History(monitor=monitor, mode=cfg.mode)
    stopper = EarlyStopping(monitor, cfg.mode, cfg.patience, cfg.min_delta)
    state = TrainState(model, optimizer, scheduler, cfg, history)

    out = Path(cfg.out_dir) if cfg.out_dir else None
    ckpt_dir = out / "checkpoints" if out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.json")
    if cfg.resume and ckpt_dir is not None and (ckpt_dir / "last.pt").is_file():
        _restore(state, stopper, ckpt_dir, generator, device)

    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if cfg.amp and device.type == "cuda"
        else nullcontext()
    )
    progress = _Progress(cfg, start=state.epoch)
    for cb in callbacks:
        cb.on_fit_start(state)
    try:
        while state.epoch < cfg.epochs and not state.stop:
            epoch = state.epoch + 1
            t0 = time.perf_counter()
            model.train()
            total, count = torch.zeros((), device=device), 0
            for step, (inputs, targets) in enumerate(train_batches, start=1):
                inputs, targets = to_device(inputs, device), to_device(targets, device)
                with autocast:
                    outputs = _forward(model, inputs)
                    loss = loss_fn(outputs, targets)
                if not torch.isfinite(loss):
                    raise TrainingDiverged(
                        _diverged_message(loss, epoch, step, optimizer, ckpt_dir)
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                scheduler.step()
                n = _batch_len(targets)
                total += loss.detach().float() * n
                count += n
                state.step += 1
            record: dict[str, float] = {
                "epoch": epoch,
                "train_loss": (total / max(count, 1)).item(),
            }
            if val_batches is not None:
                scores = evaluate(
                    model, loss_fn, val_batches, metrics, device=device, _autocast=autocast
                )
                record.update({f"val_{k}": v for k, v in scores.items()})
            record["lr"] = optimizer.param_groups[0]["lr"]
            record["time_s"] = time.perf_counter() - t0
            history.append(record)
            state.epoch = epoch
            if stopper.update(epoch, record, model):
                history.best_epoch, history.best_value = stopper.best_epoch, stopper.best_value
                if ckpt_dir is not None and cfg.checkpoint:
                    save_checkpoint(
                        {"model": model.state_dict(), "epoch": epoch}, ckpt_dir / "best.pt"
                    )
            if stopper.should_stop:
                history.stopped_early = True
                state.stop = True
            # The checkpoint comes before the callbacks, so an interruption inside one loses nothing.
            if (
                ckpt_dir is not None
                and cfg.checkpoint
                and (epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs or state.stop)
            ):
                _save_last(state, stopper, ckpt_dir, generator)
            for cb in callbacks:
                cb.on_epoch_end(state, record)
            progress.update(record, cfg.epochs)
    finally:
        progress.close()
    for cb in callbacks:
        cb.on_fit_end(state)
    if cfg.restore_best and stopper.best_weights is not None:
        model.load_state_dict(stopper.best_weights)
    if out is not None:
        history.to_csv(out / "history.csv")
        history.to_json(out / "history.json")
        if len(history) > 0:
            history.plot(out / "curves.png")
    return history


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    loss_fn: LossFn | None,
    data: Any,
    metrics: dict[str, Metric] | None = None,
    batch_size: int = 1024,
    device: torch.device | str | None = None,
    _autocast: Any = None,
) -> dict[str, float]:
    """Loss and metrics of ``model`` on ``data`` in evaluation mode.

    Args:
        model: the model (its training mode is restored afterwards).
        loss_fn: as in :func:`fit`, or ``None`` to skip the loss.
        data: ``(X, y)`` arrays or an iterable of ``(inputs, targets)`` batches.
        metrics: name -> ``fn(outputs, targets)``; computed on all outputs at once when they
            concatenate, else averaged over batches weighted by their size.
        batch_size: rows per forward pass for array data.
        device: where to run (default: the model's device).

    Returns:
        ``{"loss": ..., "<metric>": ...}``.
    """
    device = _model_device(model) if device is None else torch.device(device)
    was_training = model.training
    model.eval()
    ctx = _autocast if _autocast is not None else nullcontext()
    total, count = 0.0, 0
    outs: list[Tensor] = []
    tgts: list[Tensor] = []
    try:
        for inputs, targets in as_batches(data, batch_size):
            inputs, targets = to_device(inputs, device), to_device(targets, device)
            with ctx:
                outputs = _forward(model, inputs)
                n = _batch_len(targets)
                if loss_fn is not None:
                    total += float(loss_fn(outputs, targets)) * n
            count += n
            outputs, targets = outputs.float().cpu(), targets.cpu()
            outs.append(outputs)
            tgts.append(targets)
    finally:
        model.train(was_training)
    scores: dict[str, float] = {}
    if loss_fn is not None:
        scores["loss"] = total / max(count, 1)
    if metrics:
        try:
            all_out, all_tgt = torch.cat(outs), torch.cat(tgts)
        except RuntimeError:  # ragged outputs (e.g. padded sequences): weighted batch average
            for k, fn in metrics.items():
                total_k = sum(fn(o, t) * _batch_len(t) for o, t in zip(outs, tgts))
                scores[k] = total_k / max(count, 1)
        else:
            scores.update({k: float(fn(all_out, all_tgt)) for k, fn in metrics.items()})
    return scores


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    data: Any,
    batch_size: int = 1024,
    device: torch.device | str | None = None,
) -> Tensor:
    """Outputs of ``model`` (evaluation mode) for array ``data`` or an iterable of inputs, on the CPU."""
    device = _model_device(model) if device is None else torch.device(device)
    was_training = model.training
    model.eval()
    try:
        if isinstance(data, (Tensor,)) or hasattr(data, "__array__"):
            batches: Iterable[Any] = (b[0] for b in as_batches((data,), batch_size))
        else:
            batches = data
        outs = [_forward(model, to_device(x, device)).float().cpu() for x in batches]
    finally:
        model.train(was_training)
    return torch.cat(outs)


def _forward(model: torch.nn.Module, inputs: Any) -> Any:
    return model(*inputs) if isinstance(inputs, (tuple, list)) else model(inputs)


def _batch_len(targets: Any) -> int:
    return int(targets.shape[0]) if isinstance(targets, Tensor) and targets.dim() > 0 else 1


def _length(batches: Iterable[Any]) -> int | None:
    try:
        return len(batches)  # type: ignore[arg-type]
    except TypeError:
        return None


def _model_device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _diverged_message(
    loss: Tensor, epoch: int, step: int, optimizer: torch.optim.Optimizer, ckpt_dir: Path | None
) -> str:
    lr = optimizer.param_groups[0].get("lr")
    msg = (
        f"the loss became {loss.item()} at epoch {epoch}, step {step}. Likely causes: a learning "
        f"rate too high (lr={lr:g}; try 10x smaller or add gradient clipping) or unnormalised "
        f"inputs (standardise the features)."
    )
    if ckpt_dir is not None and (ckpt_dir / "last.pt").is_file():
        msg += f" The last good checkpoint is {ckpt_dir / 'last.pt'}."
    return msg


def _save_last(
    state: TrainState, stopper: EarlyStopping, ckpt_dir: Path, generator: torch.Generator
) -> None:
    save_checkpoint(
        {
            "model": state.model.state_dict(),
            "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict(),
            "epoch": state.epoch,
            "step": state.step,
            "history": state.history.state_dict(),
            "early_stopping": stopper.state_dict(),
            "rng": rng_state(generator),
            "config": to_dict(state.config),
        },
        ckpt_dir / "last.pt",
    )


def _restore(
    state: TrainState,
    stopper: EarlyStopping,
    ckpt_dir: Path,
    generator: torch.Generator,
    device: torch.device,
) -> None:
    ckpt = load_checkpoint(ckpt_dir / "last.pt", map_location=device)
    state.model.load_state_dict(ckpt["model"])
    state.optimizer.load_state_dict(ckpt["optimizer"])
    state.scheduler.load_state_dict(ckpt["scheduler"])
    state.epoch = int(ckpt["epoch"])
    state.step = int(ckpt["step"])
    state.history.load_state_dict(ckpt["history"])
    best = None
    if (ckpt_dir / "best.pt").is_file():
        best = load_checkpoint(ckpt_dir / "best.pt", map_location=device)["model"]
    stopper.load_state_dict(ckpt["early_stopping"], best)
    if stopper.should_stop:
        state.stop = True
    set_rng_state(ckpt["rng"], generator)


class _Progress:
    """A tqdm bar over epochs on a terminal; plain lines elsewhere; nothing when quiet."""

    def __init__(self, cfg: TrainConfig, start: int) -> None:
        self.quiet = cfg.quiet
        self.bar = None
        self.every = cfg.log_every or max(1, math.ceil(cfg.epochs / 20))
        if not cfg.quiet and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=cfg.epochs, initial=start, unit="epoch", dynamic_ncols=True)

    def update(self, record: dict[str, float], epochs: int) -> None:
        if self.quiet:
            return
        shown = {k: v for k, v in record.items() if k not in ("epoch", "time_s", "lr")}
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()}, refresh=False)
            self.bar.update(1)
            return
        epoch = int(record["epoch"])
        if epoch % self.every == 0 or epoch == epochs or epoch == 1:
            parts = "  ".join(f"{k} {v:.4g}" for k, v in shown.items())
            print(f"epoch {epoch}/{epochs}  {parts}  ({record['time_s']:.2f} s)", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
