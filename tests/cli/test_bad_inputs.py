"""Bad inputs to the shared commands (report, diagnose, data, demo): one line, exit 1, no traceback.

Every case is generated here from nothing; each asserts the exit code, a single message line that
names the file or setting at fault, no traceback, and that files already in the output folder are
left exactly as they were.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from trainlab.cli import main

Case = Callable[[Path], tuple[list[str], str]]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _afile(tmp: Path) -> Path:
    (tmp / "afile").write_text("not a folder")
    return tmp / "afile"


def _write(tmp: Path, name: str, text: str | bytes) -> Path:
    p = tmp / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


def _model(tmp: Path, meta: object, weights: bytes | None = b"\x00garbage") -> Path:
    (tmp / "run" / "model").mkdir(parents=True)
    (tmp / "run" / "model" / "model.json").write_text(
        meta if isinstance(meta, str) else json.dumps(meta)
    )
    if weights is not None:
        (tmp / "run" / "model" / "model.pt").write_bytes(weights)
    return tmp / "run"


CASES: dict[str, Case] = {
    "report --out is a file": lambda t: (["report", "--out", str(_afile(t))], "afile"),
    "report --out under a file": lambda t: (["report", "--out", str(_afile(t) / "r")], "afile"),
    "report mnist folder missing": lambda t: (["report", "--data", f"mnist:{t / 'none'}"], "none"),
    "report mnist files corrupt": lambda t: (
        ["report", "--data", f"mnist:{_write(t, 'mn/t10k-images-idx3-ubyte', b'junk').parent}"],
        "mn",
    ),
    "report config not TOML": lambda t: (
        ["report", "--config", str(_write(t, "c.toml", "[report\n"))],
        "c.toml",
    ),
    "report config wrong type": lambda t: (
        ["report", "--config", str(_write(t, "c.toml", '[report]\nseed = "x"\n'))],
        "seed",
    ),
    "report config unknown key": lambda t: (
        ["report", "--config", str(_write(t, "c.toml", "[report]\nnope = 1\n"))],
        "nope",
    ),
    "report config missing": lambda t: (["report", "--config", str(t / "gone.toml")], "gone.toml"),
    "report threads negative": lambda t: (["report", "--threads", "-1"], "threads"),
    "diagnose model folder missing": lambda t: (["diagnose", "--model", str(t / "nope")], "nope"),
    "diagnose model is a file": lambda t: (["diagnose", "--model", str(_afile(t))], "afile"),
    "diagnose model.json not JSON": lambda t: (
        ["diagnose", "--model", str(_model(t, "{not json"))],
        "model.json",
    ),
    "diagnose model.json no task": lambda t: (
        ["diagnose", "--model", str(_model(t, {"hidden": 3}))],
        "model.json",
    ),
    "diagnose model.json task wrong type": lambda t: (
        ["diagnose", "--model", str(_model(t, {"task": 3}))],
        "model.json",
    ),
    "diagnose unknown task": lambda t: (
        ["diagnose", "--model", str(_model(t, {"task": "nosuch"}))],
        "model.json",
    ),
    "diagnose weights missing": lambda t: (
        ["diagnose", "--model", str(_model(t, {"task": "covid"}, None))],
        "model.pt",
    ),
    "diagnose weights corrupt": lambda t: (
        ["diagnose", "--model", str(_model(t, {"task": "covid"}))],
        "model.pt",
    ),
    "diagnose batch zero": lambda t: (
        ["diagnose", "--model", str(_model(t, {"task": "covid"})), "--batch", "0"],
        "batch",
    ),
    "diagnose k zero": lambda t: (["diagnose", "--model", str(t), "--k", "0"], "--k"),
    "data download dest is a file": lambda t: (
        ["data", "download", "covid", "--dest", str(_afile(t))],
        "afile",
    ),
    "demo out is a file": lambda t: (["demo", "--out", str(_afile(t)), "--quiet"], "afile"),
    "demo epochs zero": lambda t: (["demo", "--epochs", "0", "--quiet"], "--epochs"),
    "demo unknown device": lambda t: (["demo", "--device", "tpu9", "--quiet"], "tpu9"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_exit_1(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle"))
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    argv, named = CASES[name](tmp_path)
    if "--quiet" not in argv and argv[0] == "report":
        argv = [*argv, "--quiet", "--quick"]
    before = _snapshot(tmp_path)
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    assert len(err.splitlines()) == 1 and err.startswith("trainlab: error:"), err
    assert named in err and "Traceback" not in err
    assert _snapshot(tmp_path) == before  # nothing written, nothing changed


def test_an_os_error_mid_run_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import trainlab.cli.demo as demo_cli

    def full_disk(_args: object) -> int:
        raise OSError(28, os.strerror(28), str(tmp_path / "out" / "history.csv"))

    monkeypatch.setattr(demo_cli, "run", full_disk)
    assert main(["demo"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"trainlab: error: {tmp_path / 'out' / 'history.csv'}: No space left on device"
