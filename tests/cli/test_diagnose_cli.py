"""``trainlab diagnose`` in-process: a fake task's saved model, the covid task's, and bad folders."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from trainlab.cli import main
from trainlab.diagnose import DiagnosisTarget
from trainlab.errors import DataError, TrainlabError
from trainlab.tasks import TASKS, Task, load_target


def _fake_net(hidden: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(3, hidden),
        nn.BatchNorm1d(hidden),
        nn.Tanh(),
        nn.Dropout(0.2),
        nn.Linear(hidden, 1),
    )


def _load_for_diagnosis(
    model_dir: Path, data: str | None, batch: int, seed: int
) -> DiagnosisTarget:
    """What a task module provides: the saved model, its loss and one batch of its data."""
    meta = json.loads((model_dir / "model.json").read_text())
    net = _fake_net(meta["hidden"])
    net.load_state_dict(torch.load(model_dir / "model.pt", weights_only=True))
    table = np.loadtxt(data or meta["data"], delimiter=",", dtype=np.float32)
    rows = np.random.default_rng(seed).permutation(len(table))[:batch]
    x, y = torch.from_numpy(table[rows, :3]), torch.from_numpy(table[rows, 3:])
    return DiagnosisTarget(net.eval(), nn.functional.mse_loss, x, y, f"fake 3-{meta['hidden']}-1")


@pytest.fixture
def fake_task(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("_faketask")
    module.load_for_diagnosis = _load_for_diagnosis  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "_faketask", module)
    monkeypatch.setitem(TASKS, "faketask", Task("faketask", "_faketask", "a test task"))
    return module


@pytest.fixture
def saved(tmp_path: Path, fake_task: types.ModuleType) -> Path:
    """A training output folder of the fake task: OUT/model/{model.pt, model.json} and its data."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 3)).astype(np.float32)
    y = np.tanh(x @ np.array([[1.0], [-0.5], [0.3]], dtype=np.float32)) + 0.1
    data = tmp_path / "data.csv"
    np.savetxt(data, np.hstack([x, y]), delimiter=",")
    net = _fake_net(5)
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(30):  # a little training, so the running statistics are not the defaults
        opt.zero_grad()
        nn.functional.mse_loss(net(xt), yt).backward()
        opt.step()
    out = tmp_path / "run"
    (out / "model").mkdir(parents=True)
    torch.save(net.state_dict(), out / "model" / "model.pt")
    meta = {"task": "faketask", "hidden": 5, "data": str(data)}
    (out / "model" / "model.json").write_text(json.dumps(meta))
    return out


def test_diagnose_small_model_exact(saved: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", "--model", str(saved), "--batch", "64"]) == 0
    out = capsys.readouterr().out
    assert "fake 3-5-1" in out and "verdict:" in out and "exact spectrum" in out
    d = json.loads((saved / "diagnosis.json").read_text())
    assert d["task"] == "faketask"
    assert d["diagnosis"]["method"] == "exact"
    assert d["diagnosis"]["num_params"] == 3 * 5 + 5 + 5 + 5 + 5 + 1
    assert d["diagnosis"]["verdict"] in {
        "not a critical point", "local minimum", "saddle point", "local maximum", "degenerate"
    }  # fmt: skip
    assert d["escape"] is None
    assert d["source"]["batch"] == 64
    cfg = json.loads((saved / "diagnose_config.json").read_text())
    assert cfg["mode"] == "eval" and cfg["k"] == 5
    assert (saved / "spectrum.png").stat().st_size > 1000


def test_diagnose_options(saved: Path, tmp_path: Path) -> None:
    before = torch.load(saved / "model" / "model.pt", weights_only=True)
    dest = tmp_path / "elsewhere"
    argv = ["diagnose", "--model", str(saved / "model"), "--escape", "--mode", "train",
            "--params", "4", "--out", str(dest), "--no-plot", "--k", "2", "--seed", "3"]  # fmt: skip
    assert main(argv) == 0
    d = json.loads((dest / "diagnosis.json").read_text())
    assert d["parameters"] == ["4.weight", "4.bias"]
    assert d["config"]["mode"] == "train"
    assert d["diagnosis"]["num_params"] == 6
    assert len(d["diagnosis"]["eigenvalues_bottom"]) == 2
    esc = d["escape"]
    assert esc is not None and {"loss_before", "loss_after", "predicted_loss_after"} <= set(esc)
    assert not (dest / "spectrum.png").exists()
    assert not (saved / "diagnosis.json").exists()
    after = torch.load(saved / "model" / "model.pt", weights_only=True)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_diagnose_large_model_path(saved: Path) -> None:
    assert main(["diagnose", "--model", str(saved), "--exact-max", "10", "--k", "2"]) == 0
    d = json.loads((saved / "diagnosis.json").read_text())["diagnosis"]
    assert d["method"] == "lanczos"
    assert d["min_ratio_source"] == "SLQ estimate"
    assert len(d["density"]["grid"]) == 200
    assert (saved / "spectrum.png").exists()


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    return err


def test_missing_and_corrupt_folders(
    tmp_path: Path, saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _error(["diagnose", "--model", str(tmp_path / "nope")], capsys)
    assert "nope" in err and "does not exist" in err
    (tmp_path / "empty").mkdir()
    assert "no model/model.json" in _error(["diagnose", "--model", str(tmp_path / "empty")], capsys)

    meta = saved / "model" / "model.json"
    meta.write_text("{not json")
    assert "corrupt model description" in _error(["diagnose", "--model", str(saved)], capsys)
    meta.write_text(json.dumps({"hidden": 5}))
    assert "no 'task' entry" in _error(["diagnose", "--model", str(saved)], capsys)
    meta.write_text(json.dumps({"task": "nosuchtask"}))
    err = _error(["diagnose", "--model", str(saved)], capsys)
    assert "unknown task 'nosuchtask'" in err and "known tasks:" in err
    meta.write_text(json.dumps({"task": "../os"}))
    assert "invalid task name" in _error(["diagnose", "--model", str(saved)], capsys)

    meta.write_text(json.dumps({"task": "faketask", "hidden": 5}))
    (saved / "model" / "model.pt").write_bytes(b"\x00garbage")
    assert "corrupt checkpoint" in _error(["diagnose", "--model", str(saved)], capsys)
    (saved / "model" / "model.pt").unlink()
    assert "model.pt: missing" in _error(["diagnose", "--model", str(saved)], capsys)


def test_bad_options(saved: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(["diagnose", "--model", str(saved), "--params", "conv"], capsys)
    assert "no trainable parameter matches 'conv'" in err
    assert "--k" in _error(["diagnose", "--model", str(saved), "--k", "0"], capsys)
    assert main(["diagnose", "--model", str(saved), "--mode", "test"]) == 2  # argparse choices


def test_load_target_library(saved: Path) -> None:
    target, meta = load_target(saved, None, 16, 0)
    assert meta["task"] == "faketask" and target.inputs.shape == (16, 3)
    with pytest.raises(DataError):
        load_target(saved / "missing")
    with pytest.raises(TrainlabError, match="batch"):
        load_target(saved, None, 0, 0)


@pytest.mark.slow
def test_diagnose_a_covid_model_trained_by_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trainlab.covid._synth import synthetic_covid

    synthetic_covid(tmp_path / "data", n_states=4, train_windows=20, test_windows=5)
    out = tmp_path / "covid"
    argv = ["covid", "train", "--data", str(tmp_path / "data"), "--out", str(out),
            "--preset", "sample", "--epochs", "2", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["diagnose", "--model", str(out), "--batch", "32", "--escape", "--k", "3"]) == 0
    text = capsys.readouterr().out
    assert "covid" in text and "verdict:" in text
    d = json.loads((out / "diagnosis.json").read_text())
    assert d["task"] == "covid"
    assert d["diagnosis"]["num_params"] > 1000
    assert d["diagnosis"]["method"] == "lanczos"  # above the exact-spectrum limit
    if d["diagnosis"]["lambda_min"] < 0:  # negative curvature: stepping along it lowers the loss
        assert d["escape"]["loss_after"] < d["escape"]["loss_before"]


@pytest.mark.slow
def test_diagnose_a_phoneme_model_in_training_mode(tmp_path: Path) -> None:
    from trainlab.phoneme._synth import write_synthetic_timit

    write_synthetic_timit(tmp_path / "data", 1500, 300)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"hidden": [16, 16], "epochs": 1}))  # BatchNorm and dropout
    out = tmp_path / "phoneme"
    argv = ["phoneme", "train", "--data", str(tmp_path / "data"), "--out", str(out),
            "--model", "mlp", "--config", str(config), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    weights = next(out.rglob("model.pt"))
    before = torch.load(weights, weights_only=True)
    argv = ["diagnose", "--model", str(out), "--batch", "128", "--k", "2", "--mode", "train",
            "--escape", "--no-plot"]  # fmt: skip
    assert main(argv) == 0
    d = json.loads((out / "diagnosis.json").read_text())
    assert d["task"] == "phoneme" and d["config"]["mode"] == "train"
    assert d["escape"]["small_step"]["step"] > 0
    after = torch.load(weights, weights_only=True)
    assert all(torch.equal(before[k], after[k]) for k in before)  # running statistics included
