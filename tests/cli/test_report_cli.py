"""``trainlab report`` called in-process: the whole quick report, and its errors."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

from trainlab.cli import main


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.src: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.src.append(dict(attrs)["src"])


# What the quick report on the digits finds (seed 0, CPU): True agrees with the chapter, None is
# mixed. With the quick budgets 3 of the 4 overfitting remedies help (dropout, L2, early stopping;
# fewer parameters does not), the batch-size table holds except "same time per update" (a CPU, not
# a GPU), and warm-up lowers the validation loss for 1 of the 4 optimizers.
QUICK_VERDICTS = {
    "overfitting": None,
    "init": True,
    "critical": True,
    "batch_size": None,
    "momentum": True,
    "adaptive": None,
    "batchnorm": True,
    "doctor": True,
}


@pytest.mark.slow
def test_quick_report_end_to_end(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", "--quick", "--out", str(out), "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert f"report: {out / 'index.html'}" in captured.out
    for n in range(1, 9):  # progress per section, with timing
        assert f"[{n}/8] {n}. " in captured.err
    assert captured.err.count("    done in ") == 8

    results = json.loads((out / "results.json").read_text())
    assert [s["number"] for s in results["sections"]] == [1, 2, 3, 4, 5, 6, 7, 8]
    for s in results["sections"]:
        assert s["status"] == "ok", (s["number"], s["error"])
        assert s["verdict"]["text"].endswith(".")
        assert s["tables"] and s["figures"] and s["numbers"] and s["config"] and s["rerun"]
    verdicts = {s["key"]: s["verdict"]["agrees"] for s in results["sections"]}
    assert verdicts == QUICK_VERDICTS
    numbers = {s["key"]: s["numbers"] for s in results["sections"]}
    # the mixed verdicts, row by row
    assert numbers["overfitting"]["overfitting_observed"] is True
    assert sum(numbers["overfitting"]["remedy_lowers_val_loss"].values()) == 3
    assert numbers["batch_size"]["agrees"] == {
        "time for one update": False,  # a CPU thread works through a batch one example at a time
        "time for one epoch": True,
        "gradient": True,
        "optimisation": True,
        "generalisation": True,
    }
    assert numbers["adaptive"]["adaptive_beats_sgd_on_surface"] is True
    assert numbers["adaptive"]["adaptive_beats_sgd_on_data"] is True
    assert sum(numbers["adaptive"]["warmup_lowers_val_loss"].values()) == 1
    config = json.loads((out / "config.json").read_text())
    assert config["report"]["quick"] is True and len(config["sections"]) == 8

    page = (out / "index.html").read_text()
    images = _Images()
    images.feed(page)
    assert len(images.src) >= 7
    for src in images.src:  # relative, beside index.html, real PNGs
        assert "/" not in src and (out / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for s in results["sections"]:
        assert f'id="s{s["number"]}"' in page


def test_bad_section_numbers_exit_2(capsys):
    assert main(["report", "--sections", "1,9"]) == 2
    err = capsys.readouterr().err
    assert "section numbers are 1 to 8" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data", "cifar10"], "unknown data 'cifar10'"),
        (["--data", "mnist:{tmp}/absent"], "MNIST folder not found"),
        (["--config", "{tmp}/none.toml"], "config file not found"),
    ],
)
def test_user_errors_one_line_exit_1(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["report", "--sections", "5", "--out", str(tmp_path / "r"), *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("trainlab: error:") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_mnist_folder_and_config_file(tmp_path, capsys, mnist_folder_cli):
    settings = tmp_path / "settings.toml"
    settings.write_text(
        "[report]\nseed = 3\n[sections.momentum]\nsteps = 40\nepochs = 1\nsweep = [0.0, 0.9]\n"
    )
    out = tmp_path / "r"
    argv = [
        "report",
        "--data",
        f"mnist:{mnist_folder_cli}",
        "--sections",
        "5",
        "--quick",
        "--quiet",
        "--config",
        str(settings),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    assert capsys.readouterr().err == ""
    results = json.loads((out / "results.json").read_text())
    assert results["seed"] == 3 and results["data"]["n_train"] == 80
    assert results["sections"][0]["config"]["steps"] == 40


@pytest.fixture
def mnist_folder_cli(tmp_path):
    """A 100-image MNIST-format folder (random pixels; enough for the plumbing)."""
    import gzip
    import struct

    import numpy as np

    rng = np.random.default_rng(0)
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name, arr in (
        ("t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (100, 28, 28))),
        ("t10k-labels-idx1-ubyte.gz", np.arange(100) % 10),
    ):
        arr = arr.astype(np.uint8)
        head = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
        (folder / name).write_bytes(gzip.compress(head + arr.tobytes()))
    return folder
