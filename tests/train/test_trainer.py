"""The Trainer learns, stops early, resumes exactly, and fails clearly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from trainlab.errors import TrainingDiverged, TrainlabError
from trainlab.train import Callback, TrainConfig, accuracy, evaluate, fit, load_checkpoint, predict


def regression_data(n: int = 256, d: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    w = torch.randn(d, generator=g)
    y = x @ w + 0.05 * torch.randn(n, generator=g)
    return x, y


def classification_data(n: int = 300, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.5]])
    y = torch.randint(0, 3, (n,), generator=g)
    x = centers[y] + 0.6 * torch.randn(n, 2, generator=g)
    return x, y


def mlp(d_in: int, d_out: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, 32), nn.ReLU(), nn.Linear(32, d_out))


def mse_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.mse_loss(out.squeeze(-1), y)


def cfg(**kw) -> TrainConfig:
    base = dict(
        epochs=30,
        batch_size=32,
        optimizer="torch_adam",
        optimizer_kwargs={"lr": 1e-2},
        device="cpu",
        quiet=True,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_learns_regression():
    x, y = regression_data()
    model = mlp(8, 1)
    start = evaluate(model, mse_loss, (x, y))["loss"]
    hist = fit(model, mse_loss, (x[:200], y[:200]), (x[200:], y[200:]), cfg())
    assert hist["train_loss"][-1] < 0.05 * start
    assert hist["val_loss"][-1] < 0.1 * start
    assert len(hist) == 30 and hist.best_epoch is not None


def test_learns_classification_with_metric():
    x, y = classification_data()
    model = mlp(2, 3)
    hist = fit(
        model,
        nn.functional.cross_entropy,
        (x[:240], y[:240]),
        (x[240:], y[240:]),
        cfg(epochs=20),
        metrics={"acc": accuracy},
    )
    assert hist["train_loss"][-1] < 0.3 * hist["train_loss"][0]
    assert hist["val_acc"][-1] > 0.9
    assert accuracy(predict(model, x[240:]), y[240:]) == pytest.approx(
        hist["val_acc"][hist.best_epoch - 1]
    )


def test_early_stopping_stops_and_restores_best():
    x, y = regression_data(n=120)
    # Validation on pure noise: validation loss soon stops improving while training continues.
    g = torch.Generator().manual_seed(1)
    xv, yv = torch.randn(60, 8, generator=g), torch.randn(60, generator=g)
    snapshots = {}

    class Snap(Callback):
        def on_epoch_end(self, state, record):
            snapshots[record["epoch"]] = {k: v.clone() for k, v in state.model.state_dict().items()}

    model = mlp(8, 1)
    hist = fit(model, mse_loss, (x, y), (xv, yv), cfg(epochs=200, patience=5), callbacks=[Snap()])
    assert hist.stopped_early
    assert len(hist) == hist.best_epoch + 5 < 200
    assert hist.best_value == min(hist["val_loss"])
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, snapshots[hist.best_epoch][k], rtol=0, atol=0)


def test_max_mode_monitor():
    x, y = classification_data()
    hist = fit(
        mlp(2, 3),
        nn.functional.cross_entropy,
        (x[:240], y[:240]),
        (x[240:], y[240:]),
        cfg(epochs=8, monitor="val_acc", mode="max"),
        metrics={"acc": accuracy},
    )
    assert hist.best_value == max(hist["val_acc"])


class Interrupt(Callback):
    def __init__(self, at: int) -> None:
        self.at = at

    def on_epoch_end(self, state, record):
        if record["epoch"] == self.at:
            raise KeyboardInterrupt


def model_with_dropout(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 1))


def test_resume_equals_uninterrupted(tmp_path):
    x, y = regression_data()
    kw = dict(epochs=6, scheduler="constant", deterministic=True, seed=3, patience=50)
    full = model_with_dropout()
    h_full = fit(
        full,
        mse_loss,
        (x[:200], y[:200]),
        (x[200:], y[200:]),
        cfg(out_dir=str(tmp_path / "a"), **kw),
    )

    part = model_with_dropout()
    with pytest.raises(KeyboardInterrupt):
        fit(
            part,
            mse_loss,
            (x[:200], y[:200]),
            (x[200:], y[200:]),
            cfg(out_dir=str(tmp_path / "b"), **kw),
            callbacks=[Interrupt(3)],
        )
    assert load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["epoch"] == 3
    resumed = model_with_dropout(
        seed=99
    )  # different init: everything must come from the checkpoint
    h_res = fit(
        resumed,
        mse_loss,
        (x[:200], y[:200]),
        (x[200:], y[200:]),
        cfg(out_dir=str(tmp_path / "b"), resume=True, **kw),
    )
    assert len(h_res) == 6
    assert h_res["train_loss"] == h_full["train_loss"]
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)


def test_nan_loss_names_epoch_and_step_and_keeps_checkpoint(tmp_path):
    x, y = regression_data()
    y = y * 1e3
    out = tmp_path / "run"
    calls = {"n": 0}

    def loss(o, t):
        calls["n"] += 1
        value = mse_loss(o, t)
        return value * float("nan") if calls["n"] == 20 else value

    with pytest.raises(TrainingDiverged, match=r"epoch 3, step 4.*learning rate.*normalis"):
        fit(
            mlp(8, 1),
            loss,
            (x[:256], y[:256]),
            None,
            # the loss counts its calls: no doctor, whose checks would call it too
            cfg(epochs=5, batch_size=32, out_dir=str(out), shuffle=False, doctor=False),
        )
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["epoch"] == 2  # the last good epoch


def test_outputs_written(tmp_path):
    x, y = regression_data()
    out = tmp_path / "run"
    fit(
        mlp(8, 1), mse_loss, (x[:200], y[:200]), (x[200:], y[200:]), cfg(epochs=3, out_dir=str(out))
    )
    for name in [
        "config.json",
        "history.csv",
        "history.json",
        "curves.png",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
    ]:
        assert (out / name).is_file(), name
    conf = json.loads((out / "config.json").read_text())
    assert conf["epochs"] == 3 and conf["optimizer"] == "torch_adam"
    hist = json.loads((out / "history.json").read_text())
    assert len(hist["records"]) == 3
    assert (out / "history.csv").read_text().splitlines()[0].startswith("epoch,train_loss,val_loss")
    assert not list(out.rglob("*.tmp"))


def test_checkpoint_round_trip_and_corrupt_file(tmp_path):
    x, y = regression_data()
    model = mlp(8, 1)
    fit(model, mse_loss, (x, y), None, cfg(epochs=2, out_dir=str(tmp_path)))
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    clone = mlp(8, 1, seed=5)
    clone.load_state_dict(ckpt["model"])
    torch.testing.assert_close(predict(clone, x), predict(model, x))
    bad = tmp_path / "bad.pt"
    bad.write_bytes((tmp_path / "checkpoints" / "last.pt").read_bytes()[:100])
    with pytest.raises(TrainlabError, match=r"bad.pt: corrupt checkpoint"):
        load_checkpoint(bad)
    with pytest.raises(TrainlabError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_numpy_memmap_and_iterable_inputs(tmp_path):
    x, y = regression_data()
    path = tmp_path / "x.npy"
    np.save(path, x.numpy())
    xm = np.load(path, mmap_mode="r")
    h1 = fit(mlp(8, 1), mse_loss, (xm, y.numpy()), None, cfg(epochs=3))
    h2 = fit(mlp(8, 1), mse_loss, (x, y), None, cfg(epochs=3))
    assert h1["train_loss"] == pytest.approx(h2["train_loss"], rel=1e-5)

    batches = [(x[i : i + 64], y[i : i + 64]) for i in range(0, 256, 64)]
    h3 = fit(mlp(8, 1), mse_loss, batches, batches, cfg(epochs=20))
    assert h3["train_loss"][-1] < 0.2 * h3["train_loss"][0]


def test_tuple_inputs_call_model_with_several_arguments():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(8, 1)

        def forward(self, a, b):
            return self.lin(a) + b

    x, y = regression_data()
    batches = [((x, torch.zeros(256, 1)), y)]
    hist = fit(Two(), mse_loss, batches, None, cfg(epochs=100, optimizer_kwargs={"lr": 0.1}))
    assert hist["train_loss"][-1] < 0.1 * hist["train_loss"][0]


def test_grad_clip_and_weight_decay_accepted():
    x, y = regression_data()
    hist = fit(
        mlp(8, 1),
        mse_loss,
        (x, y),
        None,
        cfg(
            epochs=3,
            grad_clip=0.5,
            weight_decay=1e-3,
            optimizer="sgd",
            optimizer_kwargs={"lr": 0.01, "momentum": 0.9},
        ),
    )
    assert all(np.isfinite(hist["train_loss"]))


def test_bad_config_values():
    from trainlab.errors import ConfigError

    with pytest.raises(ConfigError, match="mode"):
        TrainConfig(mode="up")
    with pytest.raises(ConfigError, match="unknown optimizer 'nope'"):
        fit(mlp(8, 1), mse_loss, regression_data(), None, cfg(optimizer="nope"))
