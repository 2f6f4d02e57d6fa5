"""The real launcher: ``torchrun`` restarts after SIGKILL, a failing rank, two "nodes" on the
loopback address, and ``trainlab diagnose`` under ``torchrun``. Each test starts Python processes
that import torch, so they are marked slow."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workers  # noqa: E402
from launch import HERE, free_port, torchrun  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
        reason="torch.distributed with gloo is not available",
    ),
]


def _fit(tmp: Path, name: str, *extra: str, nproc: int = 2, launcher=("--standalone",)):  # noqa: ANN001, ANN202
    out = tmp / f"{name}.pt"
    proc = torchrun(
        ["workers.py", "fit", str(out), "--epochs", "4", "--run-dir", str(tmp / name), *extra],
        nproc=nproc, launcher=launcher,
    )  # fmt: skip
    return proc, out


def test_sigkill_restart_resumes_bit_identical(tmp_path: Path) -> None:
    """Rank 1 is killed at step 3 of epoch 3; the restarted group resumes from last.pt."""
    plain, plain_out = _fit(tmp_path, "plain", "--deterministic")
    assert plain.returncode == 0, plain.stderr[-3000:]
    killed, killed_out = _fit(
        tmp_path, "killed", "--deterministic", "--kill-epoch", "3",
        launcher=("--standalone", "--max-restarts", "1"),
    )  # fmt: skip
    assert killed.returncode == 0, killed.stderr[-3000:]
    assert "exitcode: -9" in killed.stderr  # the kill happened and torchrun restarted the group
    a, b = torch.load(plain_out), torch.load(killed_out)
    for key in a["state"]:
        assert torch.equal(a["state"][key], b["state"][key]), key
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]
    assert [r["epoch"] for r in b["history"]] == [1, 2, 3, 4]


def test_failing_rank_stops_the_run_and_shows_its_error_once(tmp_path: Path) -> None:
    proc, out = _fit(tmp_path, "fail", "--fail-epoch", "2")
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert text.count("trainlab.errors.DataError: broken.npy: row 7 holds NaN") == 1, text[-3000:]
    # Rank 0 says one line, unless gloo aborts it first (its transport thread may end a rank
    # whose peer closed the connection); torchrun then reports rank 0's SIGABRT.
    said = "rank 0 stopped: another rank failed" in text
    aborted = re.search(r"rank\s*: 0 \(local_rank: 0\)\s*exitcode\s*: -6\b", text)
    assert said or aborted, text[-3000:]
    assert not out.exists()


def test_two_nodes_on_loopback_equal_one_process(tmp_path: Path) -> None:
    """Two torchrun agents, one rank each, meeting through the c10d rendezvous on 127.0.0.1."""

    port = free_port()
    out = tmp_path / "nodes.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "t"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRAINLAB_DIST_TIMEOUT": "120"}
    nodes = [
        subprocess.Popen(
            [*cmd, "--node-rank", str(r), "workers.py", "fit", str(out), "--epochs", "2"],
            cwd=HERE,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for r in (0, 1)
    ]
    logs = [n.communicate(timeout=300)[0] for n in nodes]
    assert [n.returncode for n in nodes] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    single = tmp_path / "single.pt"
    workers.main(["fit", str(single), "--epochs", "2"])
    a, b = torch.load(out), torch.load(single)
    for key, want in b["state"].items():
        torch.testing.assert_close(a["state"][key], want, rtol=1e-10, atol=1e-12)


def test_diagnose_cli_under_torchrun_equals_one_process(tmp_path: Path) -> None:
    from trainlab.cli import main
    from trainlab.phoneme import resolve_config, train_phoneme
    from trainlab.phoneme._synth import write_synthetic_timit

    data = write_synthetic_timit(tmp_path / "d", 1200, 0, mean_length=40)
    cfg = resolve_config("mlp", None, hidden=[32, 16], epochs=1, batch_size=128)
    train_phoneme(data, tmp_path / "run", cfg, quiet=True)
    args = ["diagnose", "--model", str(tmp_path / "run"), "--batch", "301", "--no-plot",
            "--exact-max", "10", "--k", "3"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    proc = torchrun(["-m", "trainlab", *args, "--out", str(tmp_path / "two")], nproc=2,
                    cwd=Path.cwd())  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("verdict") <= 1 and proc.stdout.count("model: phoneme") == 1
    one = json.loads((tmp_path / "one" / "diagnosis.json").read_text())["diagnosis"]
    two = json.loads((tmp_path / "two" / "diagnosis.json").read_text())["diagnosis"]
    for key in ("loss", "grad_norm", "lambda_min", "lambda_max"):
        assert two[key] == pytest.approx(one[key], rel=1e-8), key
    assert two["verdict"] == one["verdict"]
