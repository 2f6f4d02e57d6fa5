"""The doctor as a PyTorch Lightning callback (optional extra: ``pip install 'trainlab[lightning]'``).

::

    from trainlab.doctor.lightning import DoctorLightning

    trainer = lightning.Trainer(callbacks=[DoctorLightning("runs/mine", loss_fn=F.cross_entropy)])
    trainer.fit(module, train_loader, val_loader)
    # then: trainlab doctor runs/mine

The hooks used: ``on_before_optimizer_step`` (gradients, unscaled under mixed precision, before
the step), ``on_train_batch_end`` (the step's loss; the update it made), the epoch ends (the
``train_loss``/``val_loss`` the module logs with ``self.log``), ``on_fit_end`` and
``on_exception``. With ``loss_fn`` and batches of ``(inputs, targets)``, the first batch's rows
become the probe for the curvature checks; without, the probe pass still sees the first inputs.
Only the first optimizer is watched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from trainlab.doctor.monitor import Monitor


class DoctorLightning(pl.Callback):
    """Watch a Lightning run with a :class:`~trainlab.doctor.monitor.Monitor`.

    Args:
        out_dir: the run folder for ``doctor.jsonl`` (default: the trainer's ``log_dir``, else
            ``default_root_dir``).
        loss_fn: ``loss_fn(module(inputs), targets)``, for the curvature checks and baseline.
        **monitor: settings of :class:`~trainlab.doctor.monitor.Monitor`.
    """

    def __init__(
        self, out_dir: str | Path | None = None, loss_fn: Any = None, **monitor: Any
    ) -> None:
        super().__init__()
        self.out_dir = out_dir
        self.loss_fn = loss_fn
        self.settings = monitor
        self.monitor: Monitor | None = None

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.is_global_zero:
            return
        out = self.out_dir or trainer.log_dir or trainer.default_root_dir
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        self.monitor = Monitor(
            pl_module, optimizer, out, loss_fn=self.loss_fn,
            description=f"Lightning: {type(pl_module).__name__}", **self.settings,
        )  # fmt: skip

    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        mon = self.monitor
        if mon is not None and mon._probe_y is None and self.loss_fn is not None:
            if isinstance(batch, (tuple, list)) and len(batch) == 2:
                mon.set_probe(batch[0], batch[1])

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        if self.monitor is not None and optimizer is self.monitor.optimizer:
            self.monitor.epoch = trainer.current_epoch
            self.monitor.before_step()

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.monitor is None:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        self.monitor.after_step(loss)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self.monitor is None:
            return
        metrics = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if getattr(v, "numel", lambda: 1)() == 1
        }
        self.monitor.epoch_end(epoch=trainer.current_epoch + 1, **_rename(metrics))

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        if self.monitor is not None:
            self.monitor.close()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if self.monitor is not None:
            self.monitor.close(exception)


def _rename(metrics: dict[str, float]) -> dict[str, float]:
    """Lightning's ``train_loss_epoch``/``val_loss_epoch`` as the doctor's ``train_loss``/``val_loss``."""
    out = dict(metrics)
    for key in ("train_loss", "val_loss"):
        for variant in (f"{key}_epoch", key.replace("_", "/")):
            if key not in out and variant in out:
                out[key] = out[variant]
    return out
