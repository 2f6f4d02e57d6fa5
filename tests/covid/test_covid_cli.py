"""``trainlab covid ...`` in-process: exit codes, files, one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from trainlab.cli import main
from trainlab.covid._synth import synthetic_covid

TINY_TOML = """
folds = 3
report = ["blocked", "random", "course"]
testlike_block = 6
testlike_gap = 3
testlike_sample = false
ensemble_seeds = 1
holdout_rows = 4
plot = false
[train]
epochs = 3
[fallback]
ensemble_seeds = 1
[fallback.train]
epochs = 3
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("covid_cli_data")
    synthetic_covid(path, n_states=4, train_windows=15, test_windows=5, seed=2)
    return path


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "tiny.toml"
    path.write_text(TINY_TOML)
    return path


@pytest.fixture(scope="module")
def trained(data_dir: Path, tiny_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("covid_cli_run")
    code = main(
        [
            "covid",
            "train",
            "--data",
            str(data_dir),
            "--out",
            str(out),
            "--config",
            str(tiny_config),
            "--seed",
            "3",
            "--quiet",
        ]
    )
    assert code == 0
    return out


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("trainlab: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_train_prints_the_table_and_writes_files(
    data_dir: Path, tiny_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert (
        main(
            [
                "covid",
                "train",
                "--data",
                str(data_dir),
                "--out",
                str(out),
                "--config",
                str(tiny_config),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "blocked fold 1/3" in text  # progress
    for word in (
        "blocked (3)",
        "random (3)",
        "course",
        "later days",
        "persistence",
        "ridge without history",
        "mean",
        "rows with history",
        "test-like validation",
        "RMSE",
        "ridge, day-over-day change",
    ):
        assert word in text
    for name in (
        "submission.csv",
        "metrics.json",
        "config.json",
        "model/model.json",
        "model/model.pt",
    ):
        assert (out / name).is_file()
    assert json.loads((out / "config.json").read_text())["train"]["epochs"] == 3


def test_quiet_and_seed(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = json.loads((trained / "config.json").read_text())
    assert config["seed"] == 3 and config["train"]["seed"] == 3
    meta = json.loads((trained / "model" / "model.json").read_text())
    # the final networks: one per tier, both seeded from the run's seed
    assert [(m["tier"], m["seed"]) for m in meta["members"]] == [
        ("history", 3),
        ("partial", 3),
        ("fallback", 3),
    ]


def test_predict_and_evaluate(
    trained: Path, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p.csv"
    code = main(
        [
            "covid",
            "predict",
            "--model",
            str(trained),
            "--input",
            str(data_dir / "covid.test.csv"),
            "--output",
            str(out),
        ]
    )
    assert code == 0
    assert pd.read_csv(out).equals(pd.read_csv(trained / "submission.csv"))
    # the generated test windows continue the training days: all 20 rows get history
    assert "(20 rows: 20 with history, 0 by the fallback networks" in capsys.readouterr().err
    assert (
        main(
            [
                "covid",
                "evaluate",
                "--model",
                str(trained),
                "--input",
                str(data_dir / "covid.train.csv"),
            ]
        )
        == 0
    )
    assert "model MSE" in capsys.readouterr().out


def test_bad_inputs_give_one_line_errors(
    trained: Path,
    data_dir: Path,
    tiny_config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = tmp_path / "nowhere"
    assert main(["covid", "train", "--data", str(missing), "--out", str(tmp_path / "o")]) == 1
    assert str(missing) in _one_line_error(capsys)

    half = tmp_path / "half"
    half.mkdir()
    shutil.copy(data_dir / "covid.train.csv", half)
    assert main(["covid", "train", "--data", str(half), "--out", str(tmp_path / "o")]) == 1
    assert "missing covid.test.csv" in _one_line_error(capsys)

    leaky = tmp_path / "leaky"
    leaky.mkdir()
    shutil.copy(data_dir / "covid.train.csv", leaky)
    shutil.copy(data_dir / "covid.train.csv", leaky / "covid.test.csv")
    assert (
        main(
            [
                "covid",
                "train",
                "--data",
                str(leaky),
                "--out",
                str(tmp_path / "o"),
                "--config",
                str(tiny_config),
            ]
        )
        == 1
    )
    err = _one_line_error(capsys)
    assert str(leaky / "covid.test.csv") in err and "must not hold the target" in err

    bad_cfg = tmp_path / "bad.toml"
    bad_cfg.write_text("widths = [3]\n")
    assert (
        main(
            [
                "covid",
                "train",
                "--data",
                str(data_dir),
                "--out",
                str(tmp_path / "o"),
                "--config",
                str(bad_cfg),
            ]
        )
        == 1
    )
    assert "unknown setting(s) widths" in _one_line_error(capsys)

    bad_input = tmp_path / "bad.csv"
    bad_input.write_text("id,cli\n0,1\n")
    assert (
        main(
            [
                "covid",
                "predict",
                "--model",
                str(trained),
                "--input",
                str(bad_input),
                "--output",
                str(tmp_path / "x.csv"),
            ]
        )
        == 1
    )
    assert str(bad_input) in _one_line_error(capsys)

    assert (
        main(
            [
                "covid",
                "predict",
                "--model",
                str(tmp_path),
                "--input",
                str(bad_input),
                "--output",
                str(tmp_path / "x.csv"),
            ]
        )
        == 1
    )
    assert "holds no model/model.json" in _one_line_error(capsys)

    assert main(["covid", "train", "--out", str(tmp_path / "o")]) == 2  # --data is required


def test_sample_preset_runs(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sample"
    assert (
        main(
            [
                "covid",
                "train",
                "--data",
                str(data_dir),
                "--out",
                str(out),
                "--preset",
                "sample",
                "--epochs",
                "3",
                "--quiet",
            ]
        )
        == 0
    )
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["widths"] == [64] and config["validation"] == "course"
    assert config["train"]["epochs"] == 3 and config["fallback"]["train"]["epochs"] == 3
    assert config["history"]["enabled"] is False
    assert len(json.loads((out / "model" / "model.json").read_text())["members"]) == 1
    assert "early-stopped on each validation fold" in capsys.readouterr().out
