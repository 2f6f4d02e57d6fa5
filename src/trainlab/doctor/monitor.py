"""The monitor: watch any model and optimizer in any training loop, write the records.

In a plain PyTorch loop it costs three lines::

    mon = Monitor(model, optimizer, "runs/mine", loss_fn=loss_fn, probe=(x[:256], y[:256]))
    for x, y in batches:
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(); loss.backward()
        mon.step(loss)                 # after backward(), before or after optimizer.step()
        optimizer.step()
    mon.close()                        # or: with Monitor(...) as mon:

``mon.before_step(loss)`` / ``mon.after_step()`` around ``optimizer.step()`` do the same in two
calls; ``mon.epoch_end(val_loss=...)`` adds validation numbers (the overfitting rule needs them).
``trainlab doctor runs/mine`` (or :func:`trainlab.doctor.examine`) then names the cause.

What is recorded, and how often, is set by a time budget: each activity (the cheap per-step
record, the probe pass, the noise-scale window, the curvature check) runs at step 1 (the first
four steps are always recorded) and then again once the training time since its last run, times
its share of ``overhead``, exceeds what its last run cost. The first curvature check waits until
its estimated cost fits the budget (a small model's runs within the first steps; a big model's
after minutes). With the default ``overhead=0.03`` the monitor takes about 3% of the training
time whatever the model's size, recording densely where steps are slow and sparsely where they
are fast. At :meth:`close` a last probe and curvature check (with the bottom eigenvalue: saddle
or minimum?) are taken, their Lanczos steps cut to what is left of the budget; a big model's
short run, whose budget cannot pay for eight steps at each end, gets none.
Fixed intervals (``every=``, ``probe_every=``, ``curvature_every=``) override the budget.

The monitor never changes the training: it reads gradients and weights without writing them,
runs its probe and curvature passes without touching parameters, gradients or buffers (see
:mod:`~trainlab.doctor.probes` and :mod:`~trainlab.doctor.curvature`), and draws no number from
the global random generators; a run with and without it gives the same weights, bit for bit.

Without ``loss_fn`` and probe targets the curvature checks and the baseline are skipped; without
``probe`` the inputs of the model's first training forward pass serve as the probe batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from trainlab.doctor.curvature import NoiseScale, measure_curvature
from trainlab.doctor.probes import (
    RELU_FAMILY,
    constant_baseline,
    input_scales,
    probe_activations,
    saturation_threshold,
    target_scale,
)
from trainlab.doctor.records import FORMAT_VERSION, RecordWriter
from trainlab.errors import TrainingDiverged

#: Each activity's share of the overhead budget.
SHARES = {"record": 0.3, "loss": 0.1, "probe": 0.15, "noise": 0.15, "curvature": 0.3}
#: The first steps are always recorded: a run that explodes does so within a few steps.
WARMUP_RECORDS = 4
#: Seconds a first curvature check may cost beyond the budget (a small model's runs at once).
FIRST_CHECK_CREDIT = 0.02
#: Seconds the checks at close may cost beyond what is left of the budget...
FINAL_CREDIT = 0.1  # a small model's MIN_FINAL_STEPS products, on a busy machine too
#: ... and when the loss has stalled, which is when the Hessian says most (saddle or minimum?).
STALLED_CREDIT = 1.0
#: Fewest Lanczos steps (each end) a final check is worth running with; fewer fit: none.
MIN_FINAL_STEPS = 8
#: Models up to this size get the exact spectrum at the final check, whatever the budget.
EXACT_MAX_PARAMS = 400

_WEIGHT_TYPES = (
    nn.Linear, nn.Bilinear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d,
    nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Embedding, nn.RNNBase,
)  # fmt: skip
_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
_DROPOUT_TYPES = (nn.modules.dropout._DropoutNd,)


class Monitor:
    """Watch a model and its optimizer; write ``out_dir/doctor.jsonl``.

    Args:
        model: any ``nn.Module``.
        optimizer: its optimizer (learning rates, update sizes, the stability threshold);
            ``None`` records gradients only.
        out_dir: the run folder for the records.
        loss_fn: ``loss_fn(outputs, targets)``; with probe targets it enables the curvature
            checks and the constant-output baseline.
        probe: ``(inputs, targets)`` or ``inputs``: a fixed batch (the first ``probe_rows`` rows
            are used). Default: the inputs of the first training forward pass.
        overhead: the share of training time the monitor may take (see the module docstring).
        every, probe_every, curvature_every: fixed intervals in steps instead of the budget.
        probe_rows: rows of the probe batch.
        lanczos_steps: Hessian-vector products per sharpness estimate.
        bottom_hvp: Lanczos steps for a bottom-eigenvalue estimate (large models).
        noise_window: consecutive steps per noise-scale window.
        seed: the monitor's own seed (random vectors, dropout masks of probe passes).
        tensorboard: also write TensorBoard events (``None``: if ``tensorboard`` is installed).
        batch_size: rows per step, for the noise scale (default: from the first forward pass).
        n_train: training examples, if known (a capacity hint for the model-bias rule).
        append: continue an existing records file (a resumed run).
        stop_on_nonfinite: raise :class:`~trainlab.errors.TrainingDiverged` on a NaN/inf loss
            or gradient (after recording it).
        description: a name for the run, shown in the report.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        out_dir: str | Path = "runs/doctor",
        *,
        loss_fn: Callable[[Any, Any], Tensor] | None = None,
        probe: Any = None,
        overhead: float = 0.03,
        every: int | None = None,
        probe_every: int | None = None,
        curvature_every: int | None = None,
        probe_rows: int = 256,
        lanczos_steps: int = 20,
        bottom_hvp: int = 40,
        noise_window: int = 8,
        seed: int = 0,
        tensorboard: bool | None = None,
        batch_size: int | None = None,
        n_train: int | None = None,
        append: bool = False,
        stop_on_nonfinite: bool = True,
        description: str | None = None,
    ) -> None:
        import scipy.linalg  # noqa: F401 - imported now, not inside the first timed check

        self.model = model
        self.optimizer = optimizer
        self.out_dir = Path(out_dir)
        self.loss_fn = loss_fn
        self.overhead = float(overhead)
        self.fixed = {"record": every, "probe": probe_every, "curvature": curvature_every}
        if curvature_every:
            self.fixed["curvature"] = curvature_every
        self.probe_rows = int(probe_rows)
        self.lanczos_steps = int(lanczos_steps)
        self.bottom_hvp = int(bottom_hvp)
        self.seed = int(seed)
        self.batch_size = batch_size
        self.n_train = n_train
        self.stop_on_nonfinite = stop_on_nonfinite
        self.description = description
        self.step_count = 0
        self.epoch = 0
        self.closed = False
        self.writer = RecordWriter(self.out_dir, append=append, tensorboard=tensorboard)
        self._params: list[Tensor] = [p for p in model.parameters() if p.requires_grad]
        self._layers = _layers(model, self._params)
        self._owner = [0] * len(self._params)
        for li, (_, idx) in enumerate(self._layers):
            for i in idx:
                self._owner[i] = li
        self._probe_x: Any = None
        self._probe_y: Any = None
        if probe is not None:
            x, y = probe if isinstance(probe, (tuple, list)) and len(probe) == 2 else (probe, None)
            self._probe_x, self._probe_y = _rows(x, self.probe_rows), _rows(y, self.probe_rows)
        self._hook: Any = model.register_forward_pre_hook(self._capture)
        self._loss_sum: Any = 0.0
        self._loss_n = 0
        self._epoch_sum: Any = 0.0  # this epoch's losses, for an epoch record without train_loss
        self._epoch_n = 0
        self._loss_step = 0  # the step whose loss was last added
        self._pending: dict[str, Any] | None = None
        self._snapshot: list[Tensor] | None = None
        self._noise = NoiseScale(noise_window)
        self._cost: dict[str, float] = {}
        self._runs: dict[str, int] = {}
        # the noise scale at initialisation says little: its first window opens at step 16
        self._next: dict[str, float] = {
            "record": 1, "loss": 2, "noise": 16, "probe": 1, "curvature": 2,
        }  # fmt: skip
        self._next_any: float = 1
        self._record_time: float | None = None
        self._noise_time = 0.0
        self._input_done = False
        self._step_losses: list[float] = []
        self._epoch_losses: list[float] = []
        self._t_start = time.perf_counter()
        self._t_monitor = 0.0
        self._grad_ref = 0.0
        self._hvp_cost: float | None = None
        self._baseline_done = False
        self._write_meta()

    # --- the three calls ---------------------------------------------------------------------
    def step(self, loss: Any = None) -> None:
        """Once per optimisation step, after ``loss.backward()`` (before or after
        ``optimizer.step()``)."""
        self.before_step(loss)

    def before_step(self, loss: Any = None) -> None:
        """After ``backward()``, before ``optimizer.step()``: gradients, probes, curvature."""
        t0 = time.perf_counter()
        try:
            self._flush()
            self.step_count += 1
            self._began = True
            self._epoch_closed = False
            self._add_loss(loss)
            self._steps()
        finally:
            self._t_monitor += time.perf_counter() - t0

    def after_step(self, loss: Any = None) -> None:
        """After ``optimizer.step()``: the update-to-weight ratios of this step."""
        t0 = time.perf_counter()
        try:
            if not self._began:  # no before_step this step: do its work now
                self._flush()
                self.step_count += 1
                self._steps()
            self._began = False
            self._add_loss(loss)
            self._flush()
        finally:
            self._t_monitor += time.perf_counter() - t0

    def epoch_end(self, epoch: int | None = None, **metrics: float) -> None:
        """Record an epoch's metrics (``train_loss``, ``val_loss``, ``val_acc``, ...); without
        ``train_loss``, the mean of the losses given to :meth:`step` since the last epoch."""
        t0 = time.perf_counter()
        self._flush()
        self.epoch = int(epoch) if epoch is not None else self.epoch + 1
        self._epoch_closed = True
        clean = {k: _num(v) for k, v in metrics.items() if _num(v) is not None}
        if "train_loss" not in clean and self._epoch_n:  # the mean of the losses it was given
            clean["train_loss"] = _num(float(self._epoch_sum) / self._epoch_n)
        self._epoch_sum, self._epoch_n = 0.0, 0
        if clean.get("train_loss") is not None:
            self._epoch_losses.append(float(clean["train_loss"] or 0.0))
        self.writer.write("epoch", {"epoch": self.epoch, "step": self.step_count, **clean})
        self._t_monitor += time.perf_counter() - t0

    def close(self, error: BaseException | None = None) -> None:
        """Final probe, curvature check and baseline; the end record. Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        t0 = time.perf_counter()
        try:
            self._flush()
            if self._loss_n and not self._diverged_written:
                self._write_loss(self.step_count)  # the steps since the last record
            if self._hook is not None:
                self._hook.remove()
                self._hook = None
            finite = all(bool(torch.isfinite(p).all()) for p in self._params)
            if error is not None:
                kind = "diverged" if isinstance(error, TrainingDiverged) else "exception"
                if not (kind == "diverged" and self._diverged_written):
                    self.writer.write(
                        "event",
                        {"event": kind, "step": self.step_count, "epoch": self.epoch,
                         "message": f"{type(error).__name__}: {error}"[:500]},
                    )  # fmt: skip
            if finite and self.step_count > 0 and not isinstance(error, KeyboardInterrupt):
                self._final_checks()
            self.writer.write(
                "end",
                {"step": self.step_count, "epoch": self.epoch,
                 "status": "finished" if error is None else type(error).__name__,
                 "monitor_seconds": self._t_monitor + time.perf_counter() - t0,
                 "runs": dict(self._runs), "costs": dict(self._cost),
                 "seconds": time.perf_counter() - self._t_start},
            )  # fmt: skip
        finally:
            self.writer.close()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.close(exc)

    def report(self) -> Any:
        """Close (if open) and diagnose the records: a :class:`~trainlab.doctor.report.DoctorReport`."""
        from trainlab.doctor.report import examine

        self.close()
        return examine(self.out_dir)

    @property
    def overhead_seconds(self) -> float:
        """Time spent inside the monitor so far."""
        return self._t_monitor

    _diverged_written = False
    _began = False
    _epoch_closed = False

    def _current_epoch(self) -> int:
        """The 1-based epoch of the latest step (``epoch`` counts finished epochs)."""
        return self.epoch if self._epoch_closed else self.epoch + 1

    # --- what each step does -----------------------------------------------------------------
    def _steps(self) -> None:
        step = self.step_count
        if step < self._next_any and not self._noise.active:
            return  # nothing due: the common case costs one comparison
        if self._due("record", step):
            t0 = time.perf_counter()
            self._pending = self._gradient_record(step)
            self._snapshot = [p.detach().clone() for p in self._params]
            self._record_time = time.perf_counter() - t0  # the flush adds its share
            if not self.fixed.get("record"):
                self._next["record"] = math.inf  # planned when the record is complete
        elif self._pending is None and self._due("loss", step):
            t0 = time.perf_counter()
            self._write_loss(step)
            self._spent("loss", time.perf_counter() - t0)
            self._plan("loss", step)
        if self._noise.active:
            t0 = time.perf_counter()
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self._params]
            full = self._noise.add(grads, self._rows_per_step())
            if full:
                result = self._noise.close()
                if result is not None:
                    self.writer.write("noise", {"step": step, **result})
            self._noise_time += time.perf_counter() - t0
            if full:
                self._spent("noise", self._noise_time)
                self._plan("noise", step)
        elif self._rows_per_step() >= 2 and self._due("noise", step):
            self._noise_time = 0.0
            self._noise.start()
        if self._probe_x is not None and self._due("probe", step):
            t0 = time.perf_counter()
            if self._safely("probe", step, lambda: self._probe(step)):
                self._spent("probe", time.perf_counter() - t0)
                self._plan("probe", step)
        if self._can_curve() and self._due("curvature", step):
            t0 = time.perf_counter()
            if self._safely("curvature", step, lambda: self._curvature(step, final=False)):
                self._spent("curvature", time.perf_counter() - t0)
                self._plan("curvature", step)
        self._next_any = min(self._next.values())

    def _safely(self, name: str, step: int, measure: Callable[[], None]) -> bool:
        """Run a sampled measurement; if the model cannot run on the probe batch (a model whose
        batches the probe does not fit, say), record why once and stop that measurement, never
        the training."""
        try:
            measure()
            return True
        except (RuntimeError, ValueError, TypeError, IndexError) as e:
            self._next[name] = math.inf
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            self.writer.write(
                "event",
                {"event": f"{name}_skipped", "step": step, "epoch": self._current_epoch(),
                 "message": reason},
            )  # fmt: skip
            return False

    def _train_time(self) -> float:
        return max(time.perf_counter() - self._t_start - self._t_monitor, 1e-9)

    def _step_time(self) -> float | None:
        """Mean training time per step so far, the monitor's own time left out."""
        if self.step_count < 2:
            return None
        return self._train_time() / (self.step_count - 1)

    def _hvp_estimate(self) -> float:
        """Seconds per Hessian-vector product: measured, else from the model's size (a product
        costs about three forward and backward passes, 6 x parameters FLOPs per row, at a
        modest 10 GFLOP/s, plus half a millisecond of fixed cost)."""
        if self._hvp_cost is not None:
            return self._hvp_cost
        rows = max(_batch_rows(self._probe_x), 1)
        return 6.0 * sum(p.numel() for p in self._params) * rows / 1e10 + 5e-4

    def _write_loss(self, step: int) -> None:
        """A light record: the mean loss of the steps since the last record, nothing else."""
        loss, n = self._take_loss()
        if loss is None:
            return
        self._step_losses.append(loss)
        self.writer.write(
            "step", {"step": step, "epoch": self._current_epoch(), "loss": loss, "loss_steps": n}
        )
        if not math.isfinite(loss):
            self._diverge(f"the loss became {loss} by step {step}")

    def _steps_for(self, seconds: float) -> int:
        """Training steps whose budget pays for ``seconds`` of monitoring."""
        step_time = self._step_time() or 1e-3
        return max(1, math.ceil(seconds / (self.overhead * step_time)))

    def _due(self, what: str, step: int) -> bool:
        """Whether ``what`` runs at ``step``: its planned step has come and the monitor as a
        whole is within its budget (the first records, the first probe and the light loss
        records, which keep to their own share, always run)."""
        fixed = self.fixed.get(what)
        if fixed:
            if step < self._next.get(what, 1):
                return False
            self._next[what] = step + fixed
            return True
        if what == "record" and step <= WARMUP_RECORDS:
            return True
        if step < self._next.get(what, 1):
            return False
        if what == "curvature" and self._runs.get("curvature", 0) == 0:
            # the first check waits until its estimated cost fits the budget plus a credit (a
            # small model's runs at once; the check then times one product and fits itself)
            step_time = self._step_time()
            if step_time is None:
                self._next[what] = step + 1
                return False
            share = SHARES[what] * self.overhead * step_time
            need = (self._hvp_estimate() * self.lanczos_steps - FIRST_CHECK_CREDIT) / share
            if step < need:
                self._next[what] = math.ceil(need)
                return False
        if what != "loss" and (self._runs.get(what, 0) > 0 or what != "probe"):
            excess = self._t_monitor - self.overhead * self._train_time()
            if excess > 0:  # over budget: wait until the training time catches up
                self._next[what] = step + self._steps_for(excess)
                return False
        return True

    def _plan(self, what: str, step: int) -> None:
        """After ``what`` ran at ``step``: its next step, so that it keeps to its share."""
        if self.fixed.get(what):
            return
        if what == "record" and step < WARMUP_RECORDS:
            self._next[what] = step + 1
            return
        step_time = self._step_time() or 1e-3
        gap = self._cost.get(what, 0.0) / (SHARES[what] * self.overhead * step_time)
        self._next[what] = step + max(1, math.ceil(gap))

    def _spent(self, what: str, seconds: float) -> None:
        """Remember what ``what`` costs: the mean of its runs, the first (warm-up) one apart."""
        n = self._runs.get(what, 0)
        self._runs[what] = n + 1
        if n <= 1:  # the first run pays one-off costs; the second replaces it
            self._cost[what] = seconds
        else:
            self._cost[what] += (seconds - self._cost[what]) / n

    def _gradient_record(self, step: int) -> dict[str, Any]:
        params = self._params
        have = [i for i, p in enumerate(params) if p.grad is not None]
        gn = torch._foreach_norm([params[i].grad for i in have]) if have else []  # type: ignore[misc]
        wn = torch._foreach_norm(params)
        dev = params[0].device if params else torch.device("cpu")
        values = torch.stack([t.to(dev).float() for t in [*gn, *wn]]).tolist() if params else []
        g_param = [0.0] * len(params)
        for j, i in enumerate(have):
            g_param[i] = values[j]
        w_param = values[len(have) :]
        grad = _per_layer(g_param, self._layers)
        weight = _per_layer(w_param, self._layers)
        total = math.sqrt(sum(g * g for g in g_param)) if g_param else 0.0
        record = {
            "step": step,
            "epoch": self._current_epoch(),
            "lr": self._lr(),
            "grad_norm": total,
            "grad": grad,
            "weight": weight,
            "time": time.perf_counter() - self._t_start,
        }
        if not math.isfinite(total):
            self._pending = record
            self._flush()
            self._diverge(f"the gradient norm became {total} at step {step}")
        return record

    def _flush(self) -> None:
        """Complete the pending step record (loss, update ratios) and write it."""
        record = self._pending
        if record is None:
            return
        t0 = time.perf_counter()
        self._pending = None
        if self._snapshot is not None:
            snap, self._snapshot = self._snapshot, None
            if self.step_count >= record["step"]:
                deltas = torch._foreach_sub([p.detach() for p in self._params], snap)
                un = torch._foreach_norm(deltas)
                dev = self._params[0].device
                u_param = torch.stack([t.to(dev).float() for t in un]).tolist()
                upd = _per_layer(u_param, self._layers)
                ratio = [(u / w if w > 1e-12 else None) for u, w in zip(upd, record["weight"])]
                if any(u > 0 for u in u_param):  # the optimizer has stepped since the snapshot
                    record["update"] = ratio
                    finite = [r for r in ratio if r is not None and math.isfinite(r)]
                    record["update_ratio_max"] = max(finite) if finite else None
        loss, n = self._take_loss()
        record["loss"], record["loss_steps"] = loss, n
        if loss is not None:
            self._step_losses.append(loss)
        self.writer.write("step", record)
        if self._record_time is not None:
            self._spent("record", self._record_time + time.perf_counter() - t0)
            self._record_time = None
            self._plan("record", record["step"])
            self._next_any = min(self._next.values())
        if loss is not None and not math.isfinite(loss):
            self._diverge(f"the loss became {loss} by step {record['step']}")

    # --- loss --------------------------------------------------------------------------------
    def _add_loss(self, loss: Any) -> None:
        if loss is None or self._loss_step == self.step_count:
            return
        self._loss_step = self.step_count
        value: Any
        if isinstance(loss, Tensor) and loss.device.type != "cpu":
            value = loss.detach().float().reshape(())  # no sync until the record is written
        else:
            value = loss.item() if isinstance(loss, Tensor) else float(loss)
            if not math.isfinite(value):
                self._diverge_at_loss(value)
        self._loss_sum = self._loss_sum + value
        self._epoch_sum = self._epoch_sum + value
        self._loss_n += 1
        self._epoch_n += 1

    def _take_loss(self) -> tuple[float | None, int]:
        n = self._loss_n
        if n == 0:
            return None, 0
        total = float(self._loss_sum)
        self._loss_sum, self._loss_n = 0.0, 0
        return total / n, n

    def _diverge_at_loss(self, value: float) -> None:
        if self._pending is None:
            self._pending = {
                "step": self.step_count,
                "epoch": self._current_epoch(),
                "lr": self._lr(),
            }
        self._loss_sum, self._loss_n = value, 1
        self._flush()

    def _diverge(self, what: str) -> None:
        if self._diverged_written:
            return
        self._diverged_written = True
        lr = self._lr()
        msg = (
            f"{what} (epoch {self.epoch + 1}). Likely causes: a learning rate too high "
            f"(lr={lr:g}; try 10x smaller or clip the gradients), an initialisation too large, or "
            f"unnormalised inputs. Run `trainlab doctor {self.out_dir}` for the evidence."
            if lr is not None
            else f"{what}. Run `trainlab doctor {self.out_dir}` for the evidence."
        )
        self.writer.write(
            "event",
            {"event": "diverged", "step": self.step_count, "epoch": self.epoch, "message": msg},
        )
        self.writer.sync()
        if self.stop_on_nonfinite:
            raise TrainingDiverged(msg)

    # --- probe batch, curvature --------------------------------------------------------------
    def _capture(self, module: nn.Module, args: Any) -> None:
        """Forward pre-hook: batch size and (without a given probe) the first training inputs."""
        if not (module.training and torch.is_grad_enabled()):
            return
        x = args[0] if len(args) == 1 else tuple(args)
        rows = _batch_rows(x)
        if rows:
            self.batch_size = self.batch_size or rows
        if self._probe_x is None:
            self._probe_x = _rows(_detached(x), self.probe_rows)
        if self._hook is not None and self.batch_size:
            self._hook.remove()
            self._hook = None

    def set_probe(self, inputs: Any, targets: Any = None, whole: bool = False) -> None:
        """Use ``(inputs, targets)`` as the probe batch: its first ``probe_rows`` rows, or all of
        it with ``whole`` (a batch whose targets do not pair row by row with its inputs)."""
        rows = None if whole else self.probe_rows
        self._probe_x = _rows(_detached(inputs), rows)
        self._probe_y = _rows(_detached(targets), rows)

    def _probe(self, step: int) -> None:
        stats, outputs = probe_activations(self.model, self._probe_x, self.seed)
        record: dict[str, Any] = {"step": step, "epoch": self._current_epoch(), "layers": stats}
        record["rows"] = _batch_rows(self._probe_x)
        if not self._input_done:
            self._input_done = True
            record["input"] = input_scales(self._probe_x)
            record["target"] = target_scale(self._probe_y)
        self.writer.write("probe", record)
        if not self._baseline_done and self._probe_y is not None and self.loss_fn is not None:
            self._baseline_done = True
            base = constant_baseline(self.loss_fn, outputs, self._probe_y)
            self.writer.write("baseline", {"step": step, "constant_loss": base})

    def _can_curve(self) -> bool:
        if self.loss_fn is None or self._probe_x is None or self._probe_y is None:
            return False
        opt = self.optimizer
        if opt is not None and not opt.state:  # an adaptive optimizer has no statistics yet
            adaptive = any(k in g for g in opt.param_groups for k in ("betas", "alpha", "lr_decay"))
            return not adaptive
        return True

    def _curvature(self, step: int, final: bool, budget: float | None = None) -> None:
        assert self.loss_fn is not None
        tol = max(1e-4, 0.01 * self._grad_ref)
        if budget is None and not self.fixed.get("curvature"):
            left = self.overhead * self._train_time() - self._t_monitor
            budget = max(left, 0.0) + (FIRST_CHECK_CREDIT if not self._runs.get("curvature") else 0)
            budget = max(budget, 2.0 * (self._hvp_cost or 0.0) * self.lanczos_steps)
        reading = measure_curvature(
            self.model, self.loss_fn, self._probe_x, self._probe_y, self.optimizer,
            lanczos_steps=self.lanczos_steps, bottom=True if final else None,
            bottom_hvp=self.bottom_hvp, grad_tol=tol, seed=self.seed + step,
            time_budget=None if budget == math.inf else budget, min_steps=MIN_FINAL_STEPS,
        )  # fmt: skip
        if reading is None:  # the budget could not pay for it: try again much later
            return
        if reading.bottom_method != "exact" and reading.num_hvp:
            self._hvp_cost = reading.seconds / reading.num_hvp
        self._grad_ref = max(self._grad_ref, reading.grad_norm)
        if final:  # the tolerance relative to the largest gradient seen, this one included
            reading.grad_tol = max(1e-4, 0.01 * self._grad_ref)
        self.writer.write(
            "curvature",
            {"step": step, "epoch": self._current_epoch(), "final": final, **reading.to_dict()},
        )

    def _final_checks(self) -> None:
        """A last probe and curvature check, cut to what is left of the budget."""
        step = self.step_count
        if self._probe_x is not None:
            try:
                self._probe(step)
            except RuntimeError:  # a model that cannot run on its probe any more
                pass
        if not self._can_curve():
            return
        credit = STALLED_CREDIT if self._stalled() else FINAL_CREDIT
        left = max(self.overhead * self._train_time() - self._t_monitor, 0.0) + credit
        hvp = self._hvp_estimate()
        small = sum(p.numel() for p in self._params) <= EXACT_MAX_PARAMS
        if hvp * 2 * MIN_FINAL_STEPS > 2 * left and not small:
            return  # a short run of a big model: the check would cost far more than the budget
        try:
            self._curvature(step, final=True, budget=math.inf if small else left)
        except Exception:  # noqa: BLE001 - a loss that is not finite at the end: no reading
            pass

    def _stalled(self) -> bool:
        """Whether the training loss fell by less than 2% over the second half of the run (from
        the epochs' training losses where there are four or more, else the step records)."""
        series = self._epoch_losses if len(self._epoch_losses) >= 4 else self._step_losses
        if len(series) < 3:
            return False
        n = len(series)
        mid = series[int(0.4 * (n - 1)) : int(0.6 * (n - 1)) + 1]
        tail = series[-max(1, n // 5) :]
        a, b = sum(mid) / len(mid), sum(tail) / len(tail)
        return math.isfinite(a) and math.isfinite(b) and a > 0 and (a - b) / a < 0.02

    # --- small things ------------------------------------------------------------------------
    def _rows_per_step(self) -> int:
        return int(self.batch_size or 0)

    def _lr(self) -> float | None:
        if self.optimizer is None or not self.optimizer.param_groups:
            return None
        return _num(self.optimizer.param_groups[0].get("lr"))

    def _write_meta(self) -> None:
        model = self.model
        acts = sorted(
            {
                type(m).__name__
                for m in model.modules()
                if isinstance(m, RELU_FAMILY) or saturation_threshold(m) is not None
            }
        )
        weight_layers = [name for name, m in model.named_modules() if isinstance(m, _WEIGHT_TYPES)]
        norms = any(isinstance(m, _NORM_TYPES) for m in model.modules())
        dropout = [float(m.p) for m in model.modules() if isinstance(m, _DROPOUT_TYPES)]
        opt = self.optimizer
        hyper = {}
        if opt is not None and opt.param_groups:
            g = opt.param_groups[0]
            for key in ("lr", "momentum", "betas", "eps", "weight_decay", "alpha", "nesterov"):
                if key in g:
                    hyper[key] = list(g[key]) if isinstance(g[key], tuple) else _jsonable(g[key])
        self.writer.write(
            "meta",
            {
                "version": FORMAT_VERSION,
                "description": self.description,
                "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                "model": type(model).__name__,
                "num_params": sum(p.numel() for p in self._params),
                "layers": [
                    {
                        "name": name,
                        "params": sum(self._params[i].numel() for i in idx),
                        "type": _module_type(model, name),
                    }
                    for name, idx in self._layers
                ],  # fmt: skip
                "weight_layers": weight_layers,
                "activations": acts,
                "normalization": norms,
                "dropout": dropout,
                "linear_model": len(weight_layers) == 1
                and not acts
                and len(self._layers) == 1
                and self._layers[0][0] == weight_layers[0],
                "optimizer": type(opt).__name__ if opt is not None else None,
                "hyper": hyper,
                "loss_fn": _name(self.loss_fn),
                "batch_size": self.batch_size,
                "n_train": self.n_train,
                "curvature": self.loss_fn is not None,
                "overhead": self.overhead,
                "tensorboard": self.writer.tensorboard,
            },
        )


# --- helpers ---------------------------------------------------------------------------------


def _layers(model: nn.Module, params: list[Tensor]) -> list[tuple[str, list[int]]]:
    """``[(module name, indices into params)]``: parameters grouped by the module owning them."""
    index = {id(p): i for i, p in enumerate(params)}
    out = []
    for name, m in model.named_modules():
        idx = [index[id(p)] for p in m.parameters(recurse=False) if id(p) in index]
        if idx:
            out.append((name or "(model)", idx))
    seen = {i for _, idx in out for i in idx}
    rest = [i for i in range(len(params)) if i not in seen]
    if rest:
        out.append(("(other)", rest))
    return out


def _per_layer(values: list[float], layers: list[tuple[str, list[int]]]) -> list[float]:
    return [math.sqrt(sum(values[i] ** 2 for i in idx)) for _, idx in layers]


def _module_type(model: nn.Module, name: str) -> str:
    if name in ("(model)", "(other)"):
        return type(model).__name__ if name == "(model)" else "?"
    return type(model.get_submodule(name)).__name__


def _detached(x: Any) -> Any:
    if isinstance(x, Tensor):
        return x.detach()
    if isinstance(x, (tuple, list)):
        return type(x)(_detached(t) for t in x)
    return x


def _rows(x: Any, n: int | None) -> Any:
    """The first ``n`` rows (``None``: all) of a tensor (or of each tensor in a tuple), cloned."""
    if isinstance(x, Tensor):
        return x[:n].detach().clone() if x.dim() > 0 else x.detach().clone()
    if isinstance(x, (tuple, list)):
        return type(x)(_rows(t, n) for t in x)
    return x


def _batch_rows(x: Any) -> int:
    if isinstance(x, Tensor):
        return int(x.shape[0]) if x.dim() > 0 else 0
    if isinstance(x, (tuple, list)) and x:
        return _batch_rows(x[0])
    return 0


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f


def _jsonable(v: Any) -> Any:
    return v if isinstance(v, (int, float, str, bool)) or v is None else str(v)


def _name(fn: Any) -> str | None:
    if fn is None:
        return None
    return getattr(fn, "__name__", None) or type(fn).__name__
