"""Bad inputs and faults for ``trainlab covid``, generated from small synthetic files.

Each case runs the command line in a fresh process-like call and asserts exit code 1, one line on
stderr naming the file, no traceback, and that the files already in the output folder are
unchanged; a killed run, resumed, ends as the uninterrupted one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from trainlab.cli import main
from trainlab.covid._synth import synthetic_covid

TINY = """
folds = 3
ensemble_seeds = 1
holdout_rows = 4
testlike_block = 6
testlike_gap = 3
plot = false
[train]
epochs = 3
[fallback]
ensemble_seeds = 1
[fallback.train]
epochs = 3
"""


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad")
    synthetic_covid(root / "data", n_states=4, train_windows=15, test_windows=5, seed=4)
    (root / "tiny.toml").write_text(TINY)
    out = root / "run"
    args = ["covid", "train", "--data", str(root / "data"), "--out", str(out)]
    assert main([*args, "--config", str(root / "tiny.toml"), "--quiet"]) == 0
    return root


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _edit_cell(path: Path, row: int, col: int, value: str) -> None:
    lines = path.read_text().splitlines()
    cells = lines[row].split(",")
    cells[col] = value
    lines[row] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


def _data_copy(base: Path, tmp: Path, edit: Callable[[Path], None]) -> Path:
    data = tmp / "data"
    data.mkdir()
    for name in ("covid.train.csv", "covid.test.csv"):
        (data / name).write_bytes((base / "data" / name).read_bytes())
    edit(data)
    return data


TRAIN_CASES: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "negative percentage": (
        lambda d: _edit_cell(d / "covid.train.csv", 3, 45, "-2.5"),
        "covid.train.csv",
        "row 3",
    ),
    "1e308 target": (
        lambda d: _edit_cell(d / "covid.train.csv", 2, -1, "1e308"),
        "covid.train.csv",
        "tested_positive_d3",
    ),
    "nan cell": (
        lambda d: _edit_cell(d / "covid.test.csv", 1, 44, "nan"),
        "covid.test.csv",
        "non-finite",
    ),
    "text cell": (
        lambda d: _edit_cell(d / "covid.train.csv", 5, 50, "abc"),
        "covid.train.csv",
        "non-numeric",
    ),
    "missing test file": (
        lambda d: (d / "covid.test.csv").unlink(),
        "covid.test.csv",
        "missing",
    ),
    "empty train file": (
        lambda d: (d / "covid.train.csv").write_text(""),
        "covid.train.csv",
        "empty",
    ),
    "missing day-1 column": (
        lambda d: _drop_column(d / "covid.train.csv", 41),
        "covid.train.csv",
        "cli_d1",
    ),
}


def _drop_column(path: Path, col: int) -> None:
    lines = path.read_text().splitlines()
    out = []
    for line in lines:
        cells = line.split(",")
        del cells[col]
        out.append(",".join(cells))
    path.write_text("\n".join(out) + "\n")


def _fails_cleanly(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> None:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    assert "Traceback" not in err and "\n" not in err and err.startswith("trainlab: error: ")
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.mark.parametrize("case", sorted(TRAIN_CASES))
def test_bad_training_data_is_refused_and_the_old_run_kept(
    case: str, base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit, file_name, needle = TRAIN_CASES[case]
    data = _data_copy(base, tmp_path, edit)
    before = _snapshot(base / "run")
    argv = ["covid", "train", "--data", str(data), "--out", str(base / "run")]
    _fails_cleanly(capsys, [*argv, "--config", str(base / "tiny.toml")], file_name, needle)
    assert _snapshot(base / "run") == before


def test_unusable_output_places(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("keep")
    data = str(base / "data")
    _fails_cleanly(capsys, ["covid", "train", "--data", data, "--out", str(a_file)], str(a_file))
    assert a_file.read_text() == "keep"
    held = base / "data" / "covid.test.csv"
    _fails_cleanly(
        capsys,
        ["covid", "predict", "--model", str(base / "run"), "--input", str(held), "--output",
         str(tmp_path)],
        str(tmp_path), "is a folder",
    )  # fmt: skip


def _model_json_case(base: Path, tmp: Path, change: Callable[[dict], None]) -> Path:
    run = tmp / "run"
    run.mkdir()
    for p in (base / "run").rglob("*"):
        if p.is_file():
            dest = run / p.relative_to(base / "run")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(p.read_bytes())
    (run / "manifest.json").unlink()  # a hand-edited folder, not a sealed run
    meta = json.loads((run / "model" / "model.json").read_text())
    change(meta)
    (run / "model" / "model.json").write_text(json.dumps(meta))
    return run


MODEL_CASES: dict[str, Callable[[dict], None]] = {
    "missing members": lambda m: m.pop("members"),
    "seed of the wrong type": lambda m: m["members"][0].update(seed="x"),
    "features not a list": lambda m: m["members"][0].update(features=3),
    "normalizer of the wrong shape": lambda m: m["members"][0]["normalizer"].update(mean=[1.0]),
    "history of the wrong type": lambda m: m.update(history={"lags": "eight", "weeks": 7}),
}


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_tampered_model_descriptions(
    case: str, base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _model_json_case(base, tmp_path, MODEL_CASES[case])
    out = tmp_path / "pred.csv"
    held = str(base / "data" / "covid.test.csv")
    argv = ["covid", "predict", "--model", str(run), "--input", held, "--output", str(out)]
    _fails_cleanly(capsys, argv, "model.json")
    assert not out.exists()


def test_a_mixed_run_folder_is_refused(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    os.system(f"cp -r {base / 'run'} {run}")
    (run / "model" / "member_9.pt").write_bytes(b"from another run")
    held = str(base / "data" / "covid.test.csv")
    for argv in (
        ["covid", "predict", "--model", str(run), "--input", held, "--output", str(tmp_path / "p")],
        [
            "covid",
            "evaluate",
            "--model",
            str(run),
            "--input",
            str(base / "data" / "covid.train.csv"),
        ],
    ):
        _fails_cleanly(capsys, argv, str(run), "not part of the run")


@pytest.mark.slow
def test_a_killed_run_resumed_ends_as_the_uninterrupted_one(base: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(TINY.replace("epochs = 3", "epochs = 60"))
    data = str(base / "data")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def command(out: Path, *extra: str) -> list[str]:
        return [sys.executable, "-m", "trainlab", "covid", "train", "--data", data, "--out",
                str(out), "--config", str(cfg), "--quiet", *extra]  # fmt: skip

    ref = tmp_path / "ref"
    subprocess.run(command(ref), check=True, env=env, capture_output=True)
    for k, after_fits in enumerate((1, 6, 14)):
        out = tmp_path / f"killed{k}"
        proc = subprocess.Popen(command(out), env=env, stdout=subprocess.DEVNULL)
        fits = out.parent / f".{out.name}.partial" / "fits"
        while proc.poll() is None and (
            not fits.is_dir() or len(list(fits.glob("*.pt"))) < after_fits
        ):
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not out.exists():
            subprocess.run(command(out, "--resume"), check=True, env=env, capture_output=True)
        for name in ("submission.csv", "model/model.pt", "model/model.json"):
            assert (out / name).read_bytes() == (ref / name).read_bytes(), (k, name)
        strip = lambda p: _no_times(json.loads(p.read_text()))  # noqa: E731
        assert strip(out / "metrics.json") == strip(ref / "metrics.json")


def _no_times(value: object) -> object:
    if isinstance(value, dict):
        return {k: _no_times(v) for k, v in value.items() if k not in ("seconds", "data")}
    if isinstance(value, list):
        return [_no_times(v) for v in value]
    return value


class _Killed(BaseException):
    """Stands for SIGKILL inside the process: nothing after it runs, no handler sees it."""


@pytest.mark.parametrize("step", ["manifest", "move old aside", "switch in", "delete old"])
def test_a_run_killed_while_publishing_leaves_one_complete_run(
    step: str, base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed at each step of switching the finished run into place, the folder is the old
    complete run or the new one (predict gives one of their submissions, never a mix), and
    ``--resume`` ends with the new run (or says it is already complete)."""
    import trainlab.covid.run as run_module
    import trainlab.runs as runs

    out = tmp_path / "run"
    os.system(f"cp -r {base / 'run'} {out}")
    old_sub = (out / "submission.csv").read_bytes()
    argv = ["covid", "train", "--data", str(base / "data"), "--out", str(out), "--quiet",
            "--config", str(base / "tiny.toml"), "--seed", "7"]  # fmt: skip
    calls = {"publishing": 0, "replace": 0}
    real_replace, real_rmtree, real_json = os.replace, runs.shutil.rmtree, runs.atomic_write_json
    real_publish = run_module.publish_run

    def publish(stage: Path, target: Path) -> Path:
        calls["publishing"] = 1
        return real_publish(stage, target)

    def replace(src: object, dst: object) -> None:
        calls["replace"] += calls["publishing"]
        if calls["publishing"] and (step, calls["replace"]) in (
            ("move old aside", 2),  # 1: the manifest's own atomic rename
            ("switch in", 3),
        ):
            raise _Killed
        real_replace(src, dst)  # type: ignore[arg-type]

    def rmtree(path: object, ignore_errors: bool = False) -> None:
        if step == "delete old" and calls["replace"] == 3:
            raise _Killed
        real_rmtree(path, ignore_errors=ignore_errors)  # type: ignore[arg-type]

    def manifest(path: Path, data: object) -> None:
        if step == "manifest" and path.name == runs.MANIFEST:
            raise _Killed
        real_json(path, data)

    with monkeypatch.context() as m:
        m.setattr(runs.os, "replace", replace)
        m.setattr(runs.shutil, "rmtree", rmtree)
        m.setattr(runs, "atomic_write_json", manifest)
        m.setattr(run_module, "publish_run", publish)
        with pytest.raises(_Killed):
            main(argv)
    pred = tmp_path / "pred.csv"
    held = str(base / "data" / "covid.test.csv")
    code = main(["covid", "predict", "--model", str(out), "--input", held, "--output", str(pred)])
    assert code == 0  # the old run, or the new one, complete
    switched = (out / "submission.csv").read_bytes() != old_sub  # the new run already in place
    assert main([*argv, "--resume"]) == (1 if switched else 0)  # 1: "complete; nothing to resume"
    new_sub = (out / "submission.csv").read_bytes()
    assert new_sub != old_sub
    assert pred.read_bytes() in (old_sub, new_sub)
    assert not list(tmp_path.glob(".run*")), "staging or old folders left behind"


def test_too_few_windows_for_blocked_folds_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    synthetic_covid(tmp_path / "data", n_states=3, train_windows=4, test_windows=2, seed=1)
    argv = ["covid", "train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run")]
    _fails_cleanly(capsys, argv, "covid.train.csv", "windows per state")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("outlier, message", [(True, "suspicious value 100 in column"),
                                             (False, "holds 7 in every row")])  # fmt: skip
def test_suspicious_values_warn_on_one_line_and_the_command_goes_on(
    outlier: bool,
    message: str,
    base: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A possible but unlikely value (an outlier of its column, a constant column) is a warning
    naming the file, row and column; the prediction is still written."""

    def change(d: Path) -> None:
        path = d / "covid.test.csv"
        if outlier:  # 100% in the column of the narrowest spread
            rows = [line.split(",") for line in path.read_text().splitlines()[1:]]
            iqr = [float(np.subtract(*np.percentile([float(r[c]) for r in rows], [75, 25])))
                   for c in range(len(rows[0]))]  # fmt: skip
            col = min(range(45, len(iqr)), key=lambda c: iqr[c])
            _edit_cell(path, 4, col, "100")
            return
        lines = path.read_text().splitlines()
        for r in range(1, len(lines)):
            _edit_cell(path, r, 45, "7")

    data = _data_copy(base, tmp_path, change)
    out = tmp_path / "pred.csv"
    argv = ["covid", "predict", "--model", str(base / "run"), "--input",
            str(data / "covid.test.csv"), "--output", str(out)]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("trainlab: warning: ")]
    assert len(lines) == 1 and message in lines[0], err
    assert str(data / "covid.test.csv") in lines[0]
    if outlier:
        assert "row 4 (line 5)" in lines[0]
    assert "Traceback" not in err and out.is_file()
