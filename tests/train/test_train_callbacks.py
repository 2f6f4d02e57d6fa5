"""The callback interface: every event in order, what each one sees, and the built-in callbacks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainlab.errors import TrainingDiverged
from trainlab.train import (
    Callback,
    Checkpoints,
    EarlyStopping,
    Progress,
    RunFiles,
    TrainConfig,
    default_callbacks,
    fit,
)

ROWS, BATCH = 100, 32  # four batches per epoch, the last one of 4 rows


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(ROWS, 8, generator=g)
    return x, x @ torch.randn(8, generator=g)


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))


def loss(o, t):
    return nn.functional.mse_loss(o.squeeze(-1), t)


def cfg(**kw):
    base = dict(
        epochs=2,
        batch_size=BATCH,
        optimizer="sgd",
        optimizer_kwargs={"lr": 0.05},
        device="cpu",
        quiet=True,
        shuffle=False,
    )
    base.update(kw)
    return TrainConfig(**base)


class Recorder(Callback):
    """Logs every event with what it saw."""

    def __init__(self):
        self.events: list[tuple] = []

    def on_fit_start(self, state):
        self.events.append(("fit_start", state.epoch, state.step))

    def on_epoch_start(self, state):
        self.events.append(("epoch_start", state.epoch))

    def on_after_backward(self, state):
        params = list(state.model.parameters())
        assert all(p.grad is not None for p in params)
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
        before = [p.detach().clone() for p in params]
        self.events.append(
            ("after_backward", state.step, state.batch_index, state.batch_size, float(state.loss))
        )
        self.last = (norm.item(), before)

    def on_step_end(self, state):
        changed = any(not torch.equal(p, b) for p, b in zip(state.model.parameters(), self.last[1]))
        self.events.append(("step_end", state.step, changed))

    def on_epoch_end(self, state, record):
        self.events.append(("epoch_end", state.epoch, sorted(record)))

    def on_fit_end(self, state):
        self.events.append(("fit_end", state.epoch, state.step))

    def on_exception(self, state, error):
        self.events.append(("exception", type(error).__name__, float(state.loss)))


def test_events_in_order_and_what_they_see():
    rec = Recorder()
    x, y = data()
    fit(model(), loss, (x, y), (x, y), cfg(), callbacks=[rec])
    names = [e[0] for e in rec.events]
    epoch = ["epoch_start"] + ["after_backward", "step_end"] * 4 + ["epoch_end"]
    assert names == ["fit_start", *epoch, *epoch, "fit_end"]
    backward = [e for e in rec.events if e[0] == "after_backward"]
    assert [e[1] for e in backward] == list(range(8))  # steps taken before this one
    assert [e[2] for e in backward] == [1, 2, 3, 4] * 2
    assert [e[3] for e in backward] == [32, 32, 32, 4] * 2
    assert all(math.isfinite(e[4]) and e[4] > 0 for e in backward)
    steps = [e for e in rec.events if e[0] == "step_end"]
    assert [e[1] for e in steps] == list(range(1, 9)) and all(e[2] for e in steps)
    end = next(e for e in rec.events if e[0] == "epoch_end")
    assert end[1] == 1 and end[2] == ["epoch", "lr", "time_s", "train_loss", "val_loss"]
    assert rec.events[-1] == ("fit_end", 2, 8)


def test_the_step_loss_is_the_mean_batch_loss():
    rec = Recorder()
    x, y = data()
    hist = fit(model(), loss, (x, y), None, cfg(epochs=1), callbacks=[rec])
    backward = [e for e in rec.events if e[0] == "after_backward"]
    weighted = sum(e[3] * e[4] for e in backward) / ROWS
    assert hist["train_loss"][0] == pytest.approx(weighted, rel=1e-6)


def test_after_backward_sees_gradients_before_clipping():
    rec = Recorder()
    clip = 1e-3
    x, y = data()
    fit(model(), loss, (x, y), None, cfg(epochs=1, grad_clip=clip), callbacks=[rec])
    assert rec.last[0] > 10 * clip  # the unclipped norm


def test_exception_reaches_callbacks_then_propagates():
    rec = Recorder()
    x, y = data()
    n = {"calls": 0}

    def bad_loss(o, t):
        n["calls"] += 1
        return loss(o, t) * (math.nan if n["calls"] == 6 else 1.0)

    with pytest.raises(TrainingDiverged, match="epoch 2, step 2"):
        fit(model(), bad_loss, (x, y), None, cfg(epochs=3), callbacks=[rec])
    assert rec.events[-1][:2] == ("exception", "TrainingDiverged")
    assert math.isnan(rec.events[-1][2])
    assert "fit_end" not in [e[0] for e in rec.events]


def test_keyboard_interrupt_in_a_callback_reaches_the_others():
    class Interrupt(Callback):
        def on_step_end(self, state):
            if state.step == 3:
                raise KeyboardInterrupt

    rec = Recorder()
    x, y = data()
    with pytest.raises(KeyboardInterrupt):
        fit(model(), loss, (x, y), None, cfg(), callbacks=[Interrupt(), rec])
    assert rec.events[-1][:2] == ("exception", "KeyboardInterrupt")


def test_a_callback_can_stop_the_run():
    class StopAfterFirstEpoch(Callback):
        def on_step_end(self, state):
            state.stop = True

    x, y = data()
    hist = fit(model(), loss, (x, y), None, cfg(epochs=5), callbacks=[StopAfterFirstEpoch()])
    assert len(hist) == 1


def test_duck_typed_callbacks_need_only_the_hooks_they_use():
    seen = []

    class OnlyEpochs:
        def on_epoch_end(self, state, record):
            seen.append(record["epoch"])

    x, y = data()
    fit(model(), loss, (x, y), None, cfg(epochs=3), callbacks=[OnlyEpochs()])
    assert seen == [1, 2, 3]


def test_record_changes_made_by_callbacks_reach_the_history():
    class AddMetric(Callback):
        def on_epoch_end(self, state, record):
            record["extra"] = 1.0
            state.history.records[-1]["extra"] = 1.0

    x, y = data()
    hist = fit(model(), loss, (x, y), None, cfg(), callbacks=[AddMetric()])
    assert hist["extra"] == [1.0, 1.0]


def test_default_callbacks_follow_the_config(tmp_path):
    stopper = EarlyStopping("val_loss", "min", None)
    user = Callback()
    quiet = default_callbacks(cfg(), stopper, None, [user])
    assert [type(c) for c in quiet] == [EarlyStopping, Callback, Progress]
    from trainlab.doctor import DoctorCallback

    full = default_callbacks(cfg(out_dir=str(tmp_path)), stopper, None, [user])
    assert [type(c) for c in full] == [
        EarlyStopping, Checkpoints, DoctorCallback, Callback, Progress, RunFiles
    ]  # fmt: skip
    no_ckpt = default_callbacks(cfg(out_dir=str(tmp_path), checkpoint=False), stopper, None)
    assert [type(c) for c in no_ckpt] == [EarlyStopping, DoctorCallback, Progress, RunFiles]
    no_doctor = default_callbacks(cfg(out_dir=str(tmp_path), checkpoint=False, doctor=False),
                                  stopper, None)  # fmt: skip
    assert [type(c) for c in no_doctor] == [EarlyStopping, Progress, RunFiles]


def test_progress_prints_plain_lines_unless_quiet(capsys):
    x, y = data()
    fit(model(), loss, (x, y), (x, y), cfg(epochs=3, quiet=False, log_every=2))
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"]
    assert "train_loss" in lines[0] and "val_loss" in lines[0] and "lr" not in lines[0].split()
    fit(model(), loss, (x, y), None, cfg(epochs=3))
    assert capsys.readouterr().out == ""
