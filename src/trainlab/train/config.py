"""The Trainer's settings: one typed dataclass, saved beside every run's outputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainConfig:
    """How :func:`trainlab.train.fit` trains a model.

    Attributes:
        epochs: passes over the training data.
        batch_size: rows per optimisation step.
        optimizer: a name from :func:`trainlab.optim.list_optimizers`.
        optimizer_kwargs: passed to the optimizer (``lr``, ``betas``, ``momentum``, ...).
        scheduler: a name from :func:`trainlab.optim.list_schedulers`; stepped once per step.
        scheduler_kwargs: passed to the schedule (``warmup_steps``, ...).
        weight_decay: L2 penalty handed to the optimizer as ``weight_decay`` when > 0.
        grad_clip: clip the global gradient norm to this value (``None``: no clipping).
        seed: seeds initialisation-independent randomness (shuffling, dropout).
        device: ``auto`` (CUDA, else MPS, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        amp: bf16 autocast on CUDA (ignored elsewhere).
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
    """

    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adam"
    optimizer_kwargs: dict[str, Any] = field(default_factory=lambda: {"lr": 1e-3})
    scheduler: str = "constant"
    scheduler_kwargs: dict[str, Any] = field(default_factory=dict)
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

    def __post_init__(self) -> None:
        from trainlab.errors import ConfigError

        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.mode not in ("min", "max"):
            raise ConfigError(f"mode must be 'min' or 'max', got {self.mode!r}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be at least 1 (or None), got {self.patience}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"grad_clip must be positive, got {self.grad_clip}")
        if self.checkpoint_every < 1:
            raise ConfigError(f"checkpoint_every must be at least 1, got {self.checkpoint_every}")
