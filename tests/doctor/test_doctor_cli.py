"""``trainlab doctor`` in-process: files, summary, and one-line errors with exit code 1."""

from __future__ import annotations

import json
import sys
import types

import pytest
import torch
from torch import nn

from trainlab.cli import main
from trainlab.doctor.testbed import run_case


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return run_case("lr_too_low", tmp_path_factory.mktemp("doctor") / "run", tensorboard=False)


def test_writes_json_html_and_prints_the_summary(run_dir, capsys):
    assert main(["doctor", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"trainlab doctor: {run_dir} (finished")
    assert "1. [problem] lr_too_low:" in out and "try:" in out
    data = json.loads((run_dir / "doctor.json").read_text())
    first = data["findings"][0]
    assert set(first) >= {"cause", "severity", "evidence", "remedy"}
    assert first["cause"] == "lr_too_low" and first["severity"] == "problem"
    assert all("what" in e and "value" in e for e in first["evidence"])
    page = (run_dir / "doctor.html").read_text()
    assert "lr_too_low" in page and "data:image/png;base64," in page


def test_out_and_no_plot(run_dir, tmp_path, capsys):
    assert main(["doctor", str(run_dir), "--out", str(tmp_path), "--no-plot", "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert "data:image/png" not in (tmp_path / "doctor.html").read_text()


@pytest.mark.parametrize(
    "setup, args, message",
    [
        (None, ["absent"], "no such run folder"),
        ("empty", ["."], "no doctor.jsonl in this folder"),
        ("garbage", ["."], "line 1: not a JSON record"),
        (None, [], "give RUN_DIR"),
        (None, [".", "--model", "x"], "give RUN_DIR (a run's records) or --model OUT"),
    ],
)
def test_bad_inputs_are_one_line_and_exit_1(tmp_path, capsys, monkeypatch, setup, args, message):
    monkeypatch.chdir(tmp_path)
    if setup == "garbage":
        (tmp_path / "doctor.jsonl").write_text('garbage\n{"kind": "meta"}\n')
    assert main(["doctor", *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("trainlab: error: ") and message in err
    assert err.count("\n") == 1


def test_several_runs_in_subfolders_are_each_diagnosed(run_dir, tmp_path, capsys):
    import shutil

    top = tmp_path / "runs"
    for sub in ("a", "b/c"):
        (top / sub).mkdir(parents=True)
        shutil.copy(run_dir / "doctor.jsonl", top / sub / "doctor.jsonl")
    assert main(["doctor", str(top), "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert out.count("trainlab doctor: ") == 2 and f"{top / 'b' / 'c'} (finished" in out
    assert (top / "a" / "doctor.json").is_file() and (top / "b" / "c" / "doctor.html").is_file()
    assert main(["doctor", str(top), "--out", str(tmp_path / "rep"), "--quiet"]) == 0
    assert (tmp_path / "rep" / "b" / "c" / "doctor.json").is_file()


def test_a_damaged_run_among_several_writes_nothing(run_dir, tmp_path, capsys):
    import shutil

    top = tmp_path / "runs"
    for sub in ("a", "b"):
        (top / sub).mkdir(parents=True)
    shutil.copy(run_dir / "doctor.jsonl", top / "a" / "doctor.jsonl")
    (top / "b" / "doctor.jsonl").write_text('garbage\n{"kind": "meta"}\n')
    assert main(["doctor", str(top)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(top / "b" / "doctor.jsonl") in err
    assert not (top / "a" / "doctor.json").exists()
    (tmp_path / "file").write_text("x")
    assert main(["doctor", str(top / "a"), "--out", str(tmp_path / "file")]) == 1
    err = capsys.readouterr().err
    assert "exists and is not a folder" in err and err.count("\n") == 1


def _load_for_diagnosis(model_dir, data, batch, seed):
    from trainlab.diagnose import DiagnosisTarget

    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    net.load_state_dict(torch.load(model_dir / "model.pt", weights_only=True))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, generator=g)
    return DiagnosisTarget(net.eval(), nn.functional.mse_loss, x, x[:, :1], "fake 3-4-1")


def test_model_delegates_to_the_hessian_diagnosis(tmp_path, capsys, monkeypatch):
    from trainlab.tasks import TASKS, Task

    module = types.ModuleType("_doctor_faketask")
    module.load_for_diagnosis = _load_for_diagnosis  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "_doctor_faketask", module)
    monkeypatch.setitem(TASKS, "faketask", Task("faketask", "_doctor_faketask", "a test task"))
    out = tmp_path / "run"
    (out / "model").mkdir(parents=True)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    torch.save(net.state_dict(), out / "model" / "model.pt")
    (out / "model" / "model.json").write_text(json.dumps({"task": "faketask"}))
    assert main(["doctor", "--model", str(out), "--batch", "32", "--no-plot"]) == 0
    assert "fake 3-4-1" in capsys.readouterr().out
    assert json.loads((out / "diagnosis.json").read_text())["task"] == "faketask"
    assert main(["doctor", "--model", str(tmp_path / "no-model")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("trainlab: error: ") and err.count("\n") == 1
