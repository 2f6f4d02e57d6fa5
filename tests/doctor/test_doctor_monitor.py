"""The monitor in a plain PyTorch loop: three lines, the records, and a training left unchanged."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch
from torch import nn

from trainlab.doctor import Monitor, examine, read_records
from trainlab.errors import TrainingDiverged

#: The README's plain-PyTorch example, exactly as printed there (run in a temporary folder).
README_SNIPPET = """
import torch
from torch import nn
from trainlab.doctor import Monitor

torch.manual_seed(0)
x = torch.randn(512, 10)
y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()  # 3 classes
model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 3))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
loss_fn = nn.functional.cross_entropy

mon = Monitor(model, optimizer, "runs/mine", loss_fn=loss_fn, probe=(x[:256], y[:256]))
for epoch in range(20):
    for i in range(0, 512, 64):
        loss = loss_fn(model(x[i : i + 64]), y[i : i + 64])
        optimizer.zero_grad()
        loss.backward()
        mon.step(loss)
        optimizer.step()
mon.close()
print(mon.report())  # the findings; from a shell: trainlab doctor runs/mine
"""


def test_readme_snippet_runs_and_is_healthy(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(README_SNIPPET, "README", "exec"), {})
    out = capsys.readouterr().out
    assert out.startswith("trainlab doctor: runs/mine (finished, 160 steps)")
    report = examine(tmp_path / "runs" / "mine")
    assert report.cause == "healthy"
    assert (tmp_path / "runs" / "mine" / "doctor.jsonl").is_file()


def _net(bn: bool = True) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Linear(6, 16)]
    if bn:
        layers.append(nn.BatchNorm1d(16))
    layers += [nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2)]
    return nn.Sequential(*layers)


def _train(model, mon=None, steps=30, two_calls=False):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(256, 6, generator=g), torch.randint(0, 2, (256,), generator=g)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for t in range(steps):
        i = (t * 32) % 256
        loss = nn.functional.cross_entropy(model(x[i : i + 32]), y[i : i + 32])
        opt.zero_grad()
        loss.backward()
        if mon is not None:
            (mon.before_step if two_calls else mon.step)(loss)
        opt.step()
        if mon is not None and two_calls:
            mon.after_step()
    return x, y


def _seeded_run(tmp_path=None, two_calls=False):
    """Train with every global generator seeded; watched when ``tmp_path`` is given."""
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    model = _net()
    mon = None
    if tmp_path is not None:
        g = torch.Generator().manual_seed(5)
        probe = (torch.randn(64, 6, generator=g), torch.randint(0, 2, (64,), generator=g))
        mon = Monitor(
            model, None, tmp_path, loss_fn=nn.functional.cross_entropy, probe=probe, every=1,
            probe_every=5, curvature_every=10, tensorboard=False,
        )  # fmt: skip
    _train(model, mon, two_calls=two_calls)
    if mon is not None:
        mon.close()
    rng = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    return model, rng


@pytest.mark.parametrize("two_calls", [False, True])
def test_watching_changes_nothing_weights_buffers_or_random_streams(tmp_path, two_calls):
    plain, rng_plain = _seeded_run()
    watched, rng_watched = _seeded_run(tmp_path, two_calls)
    for (name, a), b in zip(plain.state_dict().items(), watched.state_dict().values()):
        assert torch.equal(a, b), name  # BatchNorm's running statistics included
    assert torch.equal(rng_plain[0], rng_watched[0])
    assert np.array_equal(rng_plain[1], rng_watched[1]) and rng_plain[2] == rng_watched[2]
    r = read_records(tmp_path)
    assert len(r.steps) == 30 and r.ended
    assert len(r.probes) >= 6 and len(r.curvatures) >= 3 and r.baselines


def test_two_calls_record_this_steps_update(tmp_path):
    model = _net(bn=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mon = Monitor(model, opt, tmp_path, every=1, tensorboard=False)
    x, y = torch.randn(32, 6), torch.randint(0, 2, (32,))
    for _ in range(3):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        mon.before_step(loss)
        opt.step()
        mon.after_step()
    mon.close()
    steps = read_records(tmp_path).steps
    assert [s["step"] for s in steps] == [1, 2, 3]
    assert all(s.get("update") and s["loss"] is not None for s in steps)
    # SGD: the update of a layer is lr x its gradient
    first = steps[0]
    for u, g, w in zip(first["update"], first["grad"], first["weight"]):
        assert u == pytest.approx(0.1 * g / w, rel=1e-4)


def test_a_nan_loss_stops_the_run_with_a_message_and_is_recorded(tmp_path):
    model = _net(bn=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TrainingDiverged, match="the loss became nan by step 3") as err:
        with Monitor(model, opt, tmp_path, tensorboard=False) as mon:
            for t in range(5):
                loss = model(torch.randn(8, 6)).sum() * (float("nan") if t == 2 else 1.0)
                opt.zero_grad()
                loss.backward()
                mon.step(loss)
                opt.step()
    assert "trainlab doctor" in str(err.value)
    r = read_records(tmp_path)
    assert r.status == "diverged" and r.ended
    assert [e["event"] for e in r.events] == ["diverged"]
    assert examine(tmp_path).cause == "lr_too_high"


def test_without_loss_fn_no_curvature_and_the_first_inputs_are_the_probe(tmp_path):
    model = _net(bn=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mon = Monitor(model, opt, tmp_path, tensorboard=False, probe_every=1)
    _train(model, mon, steps=3)
    mon.close()
    r = read_records(tmp_path)
    assert not r.curvatures and not r.baselines and r.probes
    assert r.probes[0]["rows"] == 32 and mon.batch_size == 32
    assert set(r.probes[0]["layers"]) == {"0", "1", "3"}


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("tensorboard") is None, reason="tensorboard absent"
)
def test_tensorboard_events_when_installed(tmp_path):
    model = _net(bn=False)
    mon = Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1), tmp_path, tensorboard=True)
    _train(model, mon, steps=3)
    mon.close()
    events = os.listdir(tmp_path / "tensorboard")
    assert any(e.startswith("events.out.tfevents") for e in events)


def test_every_loss_given_reaches_the_records(tmp_path) -> None:  # noqa: ANN001
    """The steps after the last record are written at close, and an epoch record without a
    train_loss gets the mean of the epoch's losses: the trend is read from all of them."""
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # the losses stay what we give
    mon = Monitor(model, opt, tmp_path, tensorboard=False, every=1000)
    given = []
    for epoch in range(3):
        for _ in range(7):
            loss = model(torch.randn(4, 3)).pow(2).mean()
            loss.backward()
            mon.step(loss)
            opt.step()
            given.append(float(loss.detach()))
        mon.epoch_end(epoch, val_loss=1.0)
    mon.close()
    rec = read_records(tmp_path / "doctor.jsonl")
    steps = [r for r in rec.steps if r.get("loss") is not None]
    assert sum(r["loss_steps"] for r in steps) == len(given) == 21
    total = sum(r["loss"] * r["loss_steps"] for r in steps)
    assert total == pytest.approx(sum(given), rel=1e-9)
    means = [e["train_loss"] for e in rec.epochs]
    assert means == pytest.approx([np.mean(given[i : i + 7]) for i in (0, 7, 14)], rel=1e-9)
