"""The Trainer's settings: one typed dataclass, checked when built, saved beside every run's outputs."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from trainlab.errors import ConfigError


@dataclass
class TrainConfig:
    """How :func:`trainlab.train.fit` trains a model.

    Attributes:
        epochs: passes over the training data.
        batch_size: rows per optimisation step; under ``torchrun`` the global batch, summed
            over ranks (each of N ranks takes ``batch_size / N`` rows), so the learning rate means
            the same with any number of ranks.
        optimizer: a name from :func:`trainlab.optim.list_optimizers`.
        optimizer_kwargs: passed to the optimizer (``lr``, ``betas``, ``momentum``, ...).
        scheduler: a name from :func:`trainlab.optim.list_schedulers`; stepped once per step.
        scheduler_kwargs: passed to the schedule (``warmup_steps``, ...).
        steps_per_epoch: batches per epoch, which a per-step schedule needs to know the run's
            length, for training data without ``len()`` (``None``: use ``len()``, else count one
            pass over the data before training; a one-shot iterator cannot be counted).
        weight_decay: L2 penalty handed to the optimizer as ``weight_decay`` when > 0.
        grad_clip: clip the global gradient norm to this value (``None``: no clipping).
        seed: seeds initialisation-independent randomness (shuffling, dropout).
        device: ``auto`` (CUDA, else MPS, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        amp: bf16 autocast on CUDA and on CPUs with native bf16 (ignored elsewhere).
        shuffle: reshuffle the training rows every epoch.
        monitor: history key that decides the best epoch and early stopping.
        mode: ``min`` or ``max`` for ``monitor``.
        patience: stop after this many epochs without improvement (``None``: never).
        min_delta: an improvement must exceed this.
        restore_best: load the best epoch's weights when training ends.
        out_dir: where config, history, curves and checkpoints go (``None``: nothing written).
        checkpoint: write ``checkpoints/last.pt`` and ``best.pt`` under ``out_dir``.
        checkpoint_every: write ``last.pt`` every this many epochs (and at the end).
        resume: continue from ``out_dir/checkpoints/last.pt`` if it exists.
        quiet: no progress bar and no per-epoch lines.
        deterministic: ask PyTorch for deterministic kernels.
        eval_batch_size: batch size for validation (default ``4 * batch_size``, at least 1024).
        log_every: print a line every this many epochs when no progress bar is shown
            (``0``: about twenty lines per run).
        doctor: write the doctor's records (``doctor.jsonl``) under ``out_dir``, for
            ``trainlab doctor`` (see :mod:`trainlab.doctor`; about 3% of the training time).
    """

    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adam"
    optimizer_kwargs: dict[str, Any] = field(default_factory=lambda: {"lr": 1e-3})
    scheduler: str = "constant"
    scheduler_kwargs: dict[str, Any] = field(default_factory=dict)
    steps_per_epoch: int | None = None
    weight_decay: float = 0.0
    grad_clip: float | None = None
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    shuffle: bool = True
    monitor: str = "val_loss"
    mode: str = "min"
    patience: int | None = None
    min_delta: float = 0.0
    restore_best: bool = True
    out_dir: str | None = None
    checkpoint: bool = True
    checkpoint_every: int = 1
    resume: bool = False
    quiet: bool = False
    deterministic: bool = False
    eval_batch_size: int | None = None
    log_every: int = 0
    doctor: bool = True

    def __post_init__(self) -> None:
        _check_counts(self)
        _check_optimisation(self)
        if self.mode not in ("min", "max"):
            raise ConfigError(f"mode must be 'min' or 'max', got {self.mode!r}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be at least 1 (or None), got {self.patience}")
        if not self.min_delta >= 0:
            raise ConfigError(f"min_delta must be >= 0, got {self.min_delta}")
        if self.device not in ("auto", "cpu", "cuda", "mps") and not re.fullmatch(
            r"cuda:\d+", self.device
        ):
            raise ConfigError(f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")


def _check_counts(cfg: TrainConfig) -> None:
    for name in ("epochs", "batch_size", "checkpoint_every"):
        value = getattr(cfg, name)
        if value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")
    for name in ("steps_per_epoch", "eval_batch_size"):
        value = getattr(cfg, name)
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be at least 1 (or None), got {value}")
    if cfg.log_every < 0:
        raise ConfigError(f"log_every must be >= 0, got {cfg.log_every}")


def _check_optimisation(cfg: TrainConfig) -> None:
    from trainlab.optim import OPTIMIZERS, SCHEDULERS

    for setting, registry, name in (
        ("optimizer", OPTIMIZERS, cfg.optimizer),
        ("scheduler", SCHEDULERS, cfg.scheduler),
    ):
        if name not in registry:
            raise ConfigError(
                f"{setting}: unknown {registry.kind} {name!r}; choose one of: "
                f"{', '.join(registry.names())}"
            )
    lr = cfg.optimizer_kwargs.get("lr")
    if lr is not None and not _positive(lr):
        raise ConfigError(f"optimizer_kwargs.lr must be a positive number, got {lr!r}")
    decays = [("weight_decay", cfg.weight_decay)]
    if "weight_decay" in cfg.optimizer_kwargs:
        decays.append(("optimizer_kwargs.weight_decay", cfg.optimizer_kwargs["weight_decay"]))
    for setting, value in decays:
        if not _number(value) or not float(value) >= 0:
            raise ConfigError(f"{setting} must be >= 0, got {value!r}")
    if cfg.grad_clip is not None and not _positive(cfg.grad_clip):
        raise ConfigError(f"grad_clip must be positive (or None), got {cfg.grad_clip}")
    _check_built(cfg)


def _check_built(cfg: TrainConfig) -> None:
    """Build the optimizer and the schedule once on a dummy parameter, so that a setting they
    refuse (an unknown keyword, a beta of 1.5) is an error now, naming the setting."""
    import torch

    from trainlab.optim import create_optimizer, create_scheduler

    param = torch.zeros(1, requires_grad=True)
    kwargs = dict(cfg.optimizer_kwargs)
    if cfg.weight_decay > 0:
        kwargs["weight_decay"] = cfg.weight_decay
    try:
        opt = create_optimizer(cfg.optimizer, [param], **kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"optimizer_kwargs: {cfg.optimizer} refuses them: {e}") from None
    try:
        create_scheduler(cfg.scheduler, opt, max(1, cfg.epochs), **cfg.scheduler_kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"scheduler_kwargs: {cfg.scheduler} refuses them: {e}") from None


def _number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, bool)


def _positive(value: Any) -> bool:
    return _number(value) and float(value) > 0 and math.isfinite(float(value))
