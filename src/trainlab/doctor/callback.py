"""The doctor as a callback of trainlab's :func:`~trainlab.train.fit`.

``fit`` attaches it by itself when the run has an ``out_dir`` and ``TrainConfig.doctor`` is on
(the default), so every trainlab run folder holds ``doctor.jsonl`` and ``trainlab doctor RUN_DIR``
works on it. It reads what the Trainer shares in :class:`~trainlab.train.callbacks.TrainState`:
the loss function (``state.extra["loss_fn"]``), the current batch (``state.extra["batch"]``, whose
first rows become the probe batch), the loss and batch size of each step, and each epoch's record
(training and validation metrics).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainlab.doctor.monitor import Monitor, _batch_rows
from trainlab.doctor.records import RECORDS_FILE
from trainlab.train.callbacks import Callback, TrainState

# frames of a padded-sequence probe through recurrent layers: their double backward keeps about
# 12 MB per frame for a 3-layer 256-unit BiLSTM (measured), so 32 frames cost under 0.5 GB
PROBE_FRAMES_RECURRENT = 32


class DoctorCallback(Callback):
    """Watch a :func:`~trainlab.train.fit` run with a :class:`~trainlab.doctor.monitor.Monitor`.

    Args:
        out_dir: where ``doctor.jsonl`` goes (the run folder).
        resume: append to the records of an interrupted run instead of starting anew.
        **monitor: settings of :class:`~trainlab.doctor.monitor.Monitor` (``overhead``,
            ``probe_rows``, ``tensorboard``, ...).
    """

    def __init__(self, out_dir: str | Path, resume: bool = False, **monitor: Any) -> None:
        self.out_dir = Path(out_dir)
        self.resume = resume
        self.settings = monitor
        self.monitor: Monitor | None = None
        self._probe_full = False

    def on_fit_start(self, state: TrainState) -> None:
        append = self.resume and (self.out_dir / RECORDS_FILE).is_file()
        settings = {
            "batch_size": state.config.batch_size,
            "n_train": state.steps_per_epoch * state.config.batch_size or None,
            "seed": state.config.seed,
            **self.settings,
        }
        self.monitor = Monitor(
            state.model, state.optimizer, self.out_dir, loss_fn=state.extra.get("loss_fn"),
            append=append, **settings,
        )  # fmt: skip
        self.monitor.step_count, self.monitor.epoch = state.step, state.epoch

    def on_after_backward(self, state: TrainState) -> None:
        mon = self.monitor
        if mon is None:
            return
        if not self._probe_full and "batch" in state.extra:
            self._grow_probe(mon, *state.extra["batch"])
        mon.batch_size = state.batch_size or mon.batch_size
        mon.epoch = state.epoch
        mon.before_step(state.loss)

    def on_step_end(self, state: TrainState) -> None:
        if self.monitor is not None:
            self.monitor.after_step()

    def on_epoch_end(self, state: TrainState, record: dict[str, float]) -> None:
        if self.monitor is not None:
            metrics = {k: v for k, v in record.items() if k not in ("epoch", "time_s")}
            self.monitor.epoch_end(epoch=state.epoch, **metrics)

    def on_fit_end(self, state: TrainState) -> None:
        if self.monitor is not None:
            self.monitor.close()

    def on_exception(self, state: TrainState, error: BaseException) -> None:
        if self.monitor is not None:
            self.monitor.close(error)

    def _grow_probe(self, mon: Monitor, inputs: Any, targets: Any) -> None:
        """Append this batch to the probe batch until it has ``probe_rows`` rows.

        A batch of several inputs is kept alone. Padded sequences in the common layout (inputs
        ``(x (B, T, ...), lengths (B,))``, targets ``(B*T,)`` or ``(B, T)``) are cut to a few
        frames (:func:`sequence_probe`): the probe's passes, curvature's double backward
        included, must stay as small as a training step, and through a recurrent layer that
        double backward keeps a copy of the weights' gradient per time step."""
        if isinstance(inputs, (tuple, list)):
            if mon._probe_x is None:
                frames = PROBE_FRAMES_RECURRENT if _recurrent(mon.model) else mon.probe_rows
                cut = sequence_probe(inputs, targets, frames)
                x, y = cut or (inputs, targets)  # an unknown layout: the whole batch, as it came
                mon.set_probe(x, y, whole=True)
            self._probe_full = True
            return
        if mon._probe_x is None or mon._probe_y is None:
            mon.set_probe(inputs, targets)
        else:
            try:
                mon.set_probe(_cat(mon._probe_x, inputs), _cat(mon._probe_y, targets))
            except (RuntimeError, TypeError):  # batches that do not join: keep the first
                self._probe_full = True
        self._probe_full = self._probe_full or _batch_rows(mon._probe_x) >= mon.probe_rows


def sequence_probe(inputs: Any, targets: Any, frames: int) -> tuple[Any, Any] | None:
    """The first ``frames`` frames of a padded batch ``((x, lengths), targets)``, or ``None``.

    Whole sequences are kept while they fit (at least one, cut to ``frames`` steps when it alone
    is longer); ``lengths`` is cut alike and targets of shape ``(B*T,)`` (row-major) or ``(B, T)``
    follow. ``None`` when the batch is not in that layout. The results are views of the batch
    (:meth:`Monitor.set_probe` copies them).
    """
    import torch

    if len(inputs) != 2 or not all(isinstance(t, torch.Tensor) for t in (*inputs, targets)):
        return None
    x, lengths = inputs
    if x.dim() < 3 or lengths.dim() != 1 or len(lengths) != len(x):
        return None
    b, t = x.shape[:2]
    if targets.shape[:2] == (b, t):
        per_frame = targets
    elif targets.dim() >= 1 and targets.shape[0] == b * t:
        per_frame = targets.reshape(b, t, *targets.shape[1:])
    else:
        return None
    keep_t = min(t, frames)
    keep_b = max(1, min(b, frames // max(t, 1)))
    y_cut = per_frame[:keep_b, :keep_t]
    if per_frame is not targets:
        y_cut = y_cut.reshape(keep_b * keep_t, *targets.shape[1:])
    return (x[:keep_b, :keep_t], lengths[:keep_b].clamp(max=keep_t)), y_cut


def _recurrent(model: Any) -> bool:
    import torch

    return any(isinstance(m, torch.nn.RNNBase) for m in model.modules())


def _cat(a: Any, b: Any) -> Any:
    import torch

    if isinstance(a, torch.Tensor):
        return torch.cat([a, b.detach()])
    if isinstance(a, (tuple, list)):
        return type(a)(_cat(x, y) for x, y in zip(a, b))
    raise TypeError("cannot join batches of this type")
