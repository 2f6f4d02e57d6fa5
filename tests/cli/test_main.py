"""The command line, called in-process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from trainlab import __version__
from trainlab.cli import COMMANDS, main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"trainlab {__version__}"


def test_help_lists_every_subcommand(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    import importlib

    for name, mod in COMMANDS.items():
        assert f"    {name} " in out
        assert importlib.import_module(mod).HELP[:30] in " ".join(out.split())


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: trainlab" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [["frobnicate"], ["demo", "--epochs", "many"], ["demo", "--no-such-flag"]],
)
def test_bad_arguments_one_line_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "error:" in err and "Traceback" not in err


def test_user_error_exit_1_no_traceback(capsys):
    assert main(["demo", "--epochs", "0", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("trainlab: error: --epochs must be at least 1")
    assert "Traceback" not in err


def test_demo_runs_and_writes_outputs(tmp_path, capsys):
    assert (
        main(["demo", "--epochs", "5", "--out", str(tmp_path), "--device", "cpu", "--quiet"]) == 0
    )
    out = capsys.readouterr().out
    acc = float(out.split("validation accuracy ")[1].split()[0])
    assert acc > 0.85
    assert (tmp_path / "config.json").is_file() and (tmp_path / "curves.png").is_file()


def test_python_dash_m():
    proc = subprocess.run(
        [sys.executable, "-m", "trainlab", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and __version__ in proc.stdout
