"""``phoneme train --resume``: real subprocesses SIGKILLed at several points, resumed, compared.

Each case runs ``trainlab phoneme train`` in a child process that kills itself with SIGKILL at a
chosen moment (an optimisation step of the first or second epoch, just before a file of the run
or a checkpoint is renamed into place, or between the two renames that publish the run), or is
killed from outside once its first checkpoint exists. The command is then run again with
``--resume``; the published run must equal an uninterrupted one bit for bit (weights, the
best-epoch checkpoint, the HMM tables, the metrics except timings, the history except timings and
the submission) and hold no temporary file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from trainlab.phoneme._synth import write_synthetic_timit
from trainlab.runs import staging_dir, verify_run

pytestmark = pytest.mark.slow

# The child: arms a SIGKILL of itself at the point named by its first two arguments, then runs
# the command line given after them.
DRIVER = r"""
import os, signal, sys
import torch.optim.optimizer as optimizer

what, where = sys.argv[1], sys.argv[2]
argv = sys.argv[3:]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if what == "step":
    steps = [0]
    def after_step(opt, args, kwargs):
        steps[0] += 1
        if steps[0] == int(where):
            die()
    optimizer.register_optimizer_step_post_hook(after_step)
elif what == "replace":
    name, nth = where.rsplit(":", 1)
    real, seen = os.replace, [0]
    def replace(src, dst, *a, **k):
        if os.path.basename(os.fspath(dst)) == name:
            seen[0] += 1
            if seen[0] == int(nth):
                die()
        return real(src, dst, *a, **k)
    os.replace = replace

from trainlab.cli import main
sys.exit(main(argv))
"""

MLP = {"model": "mlp", "hidden": [32], "dropout": 0.2, "epochs": 3, "batch_size": 128,
       "lr": 3e-3}  # fmt: skip
RNN = {"model": "rnn", "rnn_hidden": 16, "rnn_layers": 1, "rnn_proj": 16, "rnn_frames": 3,
       "dropout": 0.2, "epochs": 3, "utterances_per_batch": 8, "lr": 1e-2}  # fmt: skip
# an ensemble of two, each validating on its own fold: its members in turn in one process
# (threads 1) or in two worker processes
ENSEMBLE = {"model": "tcn", "rnn_proj": 16, "conv_layers": 2, "conv_dilations": [1, 2],
            "dropout": 0.2, "epochs": 3, "utterances_per_batch": 8, "lr": 1e-2, "members": 2,
            "member_folds": True}  # fmt: skip
CONFIGS = {"mlp": MLP, "rnn": RNN, "turns": {**ENSEMBLE, "threads": 1},
           "workers": {**ENSEMBLE, "threads": 2}}  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_timit(tmp_path_factory.mktemp("ph") / "d", 1500, 200, mean_length=40)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, data: Path) -> dict[str, Path]:
    """The driver, the two configs and an uninterrupted run of each."""
    root = tmp_path_factory.mktemp("resume")
    (root / "driver.py").write_text(DRIVER)
    found = {"root": root, "driver": root / "driver.py"}
    for name, cfg in CONFIGS.items():
        (root / f"{name}.json").write_text(json.dumps(cfg))
        found[name] = root / f"{name}.json"
        ref = root / f"ref_{name}"
        done = _run(found, "none", "0", _train_args(data, ref, found[name]))
        assert done.returncode == 0, done.stderr
        found[f"ref_{name}"] = ref
    return found


def _train_args(data: Path, out: Path, config: Path, *extra: str) -> list[str]:
    return ["phoneme", "train", "--data", str(data), "--out", str(out), "--config", str(config),
            "--device", "cpu", "--quiet", *extra]  # fmt: skip


def _run(setup: dict[str, Path], what: str, where: str, argv: list[str]):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    cmd = [sys.executable, str(setup["driver"]), what, where, *argv]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def _assert_same_run(out: Path, ref: Path) -> None:
    """The published run equals the uninterrupted one, timings aside; no temporary is left."""
    verify_run(out)
    assert not staging_dir(out).exists()
    assert not [p for p in out.parent.glob(f".{out.name}*")]
    assert not [p for p in out.rglob(".*")], "temporary files left in the run folder"
    best = sorted(p.relative_to(ref) for p in ref.glob("training/**/checkpoints/best.pt"))
    assert best and best == sorted(p.relative_to(out) for p in out.glob("training/**/best.pt"))
    for name in ("model/model.pt", *best):
        a = torch.load(out / name, weights_only=True)
        b = torch.load(ref / name, weights_only=True)
        a, b = a.get("model", a), b.get("model", b)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}: {k} differs"
    for name in ("model/transitions.npy", "model/prior.npy", "submission.csv", "model/model.json"):
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name
    m_out = json.loads((out / "metrics.json").read_text())
    m_ref = json.loads((ref / "metrics.json").read_text())
    m_out.pop("seconds"), m_ref.pop("seconds")
    assert m_out == m_ref
    assert _history(out) == _history(ref)


def _history(run: Path) -> list[list[str]]:
    lines = [line.split(",") for line in (run / "history.csv").read_text().splitlines()]
    keep = [i for i, h in enumerate(lines[0]) if h != "time_s"]
    return [[row[i] for i in keep] for row in lines]


def _checkpoint_epoch(out: Path, member: str = "") -> int | None:
    last = staging_dir(out) / "training" / member / "checkpoints" / "last.pt"
    return int(torch.load(last, weights_only=True)["epoch"]) if last.is_file() else None


@pytest.mark.parametrize(
    ("model", "what", "where", "epoch_saved"),
    [
        ("mlp", "step", "2", None),  # early in the first epoch: no checkpoint yet
        ("mlp", "step", "14", 1),  # mid-way through the second epoch
        ("mlp", "replace", "last.pt:2", 1),  # writing the second epoch's checkpoint
        ("mlp", "replace", "model.pt:1", 3),  # the final writes: the model
        ("mlp", "replace", "submission.csv:1", 3),  # the final writes: the submission
        ("rnn", "step", "6", 1),  # the sequence model, mid-way through the second epoch
    ],
)
def test_killed_run_resumes_to_the_uninterrupted_one(
    setup: dict[str, Path], data: Path, model: str, what: str, where: str, epoch_saved: int | None
):
    out = setup["root"] / f"{model}_{what}_{where.replace(':', '_')}"
    args = _train_args(data, out, setup[model])
    killed = _run(setup, what, where, args)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not out.exists()  # nothing published
    assert _checkpoint_epoch(out) == epoch_saved
    plain = _run(setup, "none", "0", ["phoneme", "predict", "--model", str(out), "--input",
                                      str(data / "test_11.npy"), "--output", str(out) + ".csv"])  # fmt: skip
    assert (
        plain.returncode == 1 and "incomplete" in plain.stderr and "Traceback" not in plain.stderr
    )
    resumed = _run(setup, "none", "0", [*args, "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_run(out, setup[f"ref_{model}"])


def test_killed_between_the_publishing_renames_keeps_one_whole_run(
    setup: dict[str, Path], data: Path
):
    out = setup["root"] / "publish"
    first = _run(setup, "none", "0", _train_args(data, out, setup["rnn"]))  # an older run there
    assert first.returncode == 0, first.stderr
    args = _train_args(data, out, setup["mlp"])
    killed = _run(setup, "replace", f"{out.name}:1", args)  # out moved aside, stage not yet in
    assert killed.returncode == -signal.SIGKILL
    assert not out.exists()
    # the next command finishes the switch: the new run is complete, so there is nothing to resume
    again = _run(setup, "none", "0", [*args, "--resume"])
    assert again.returncode == 1 and "nothing to resume" in again.stderr, again.stderr
    _assert_same_run(out, setup["ref_mlp"])


def _kill_when(setup: dict[str, Path], args: list[str], file: Path) -> None:
    """Run the command and SIGKILL it from outside as soon as ``file`` exists."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [sys.executable, str(setup["driver"]), "none", "0", *args], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not file.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL


def test_killed_from_outside_after_the_first_checkpoint(setup: dict[str, Path], data: Path):
    out = setup["root"] / "outside"
    args = _train_args(data, out, setup["mlp"])
    _kill_when(setup, args, staging_dir(out) / "training" / "checkpoints" / "last.pt")
    resumed = _run(setup, "none", "0", [*args, "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_run(out, setup["ref_mlp"])


def test_ensemble_killed_in_its_second_member_resumes_to_the_uninterrupted_one(
    setup: dict[str, Path], data: Path
):
    # the members in turn are alike the members in worker processes
    for name in ("model/model.pt", "submission.csv"):
        ref_turns, ref_workers = setup["ref_turns"] / name, setup["ref_workers"] / name
        assert ref_turns.read_bytes() == ref_workers.read_bytes(), name
    out = setup["root"] / "ensemble"
    args = _train_args(data, out, setup["turns"])
    per_epoch = _steps_per_epoch(setup["ref_turns"])
    killed = _run(setup, "step", str(3 * per_epoch + per_epoch + 2), args)  # member 2, epoch 2
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _checkpoint_epoch(out, "member1") == 3 and _checkpoint_epoch(out, "member2") == 1
    resumed = _run(setup, "none", "0", [*args, "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_run(out, setup["ref_turns"])


def test_ensemble_in_workers_killed_from_outside_resumes(setup: dict[str, Path], data: Path):
    """The parent killed outright: its workers end at their next step, the resume finishes."""
    out = setup["root"] / "workers"
    args = _train_args(data, out, setup["workers"])
    _kill_when(setup, args, staging_dir(out) / "training" / "member2" / "checkpoints" / "last.pt")
    time.sleep(2)  # the orphaned workers notice at their next step
    resumed = _run(setup, "none", "0", [*args, "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_run(out, setup["ref_workers"])


def _steps_per_epoch(run: Path) -> int:
    last = torch.load(run / "training" / "member1" / "checkpoints" / "last.pt", weights_only=True)
    return int(last["step"]) // int(last["epoch"])


def test_resume_refuses_other_settings_and_a_missing_run(setup: dict[str, Path], data: Path):
    out = setup["root"] / "other"
    args = _train_args(data, out, setup["mlp"])
    assert _run(setup, "step", "3", args).returncode == -signal.SIGKILL
    other = _run(setup, "none", "0", [*args, "--resume", "--seed", "7", "--epochs", "4"])
    assert other.returncode == 1 and "Traceback" not in other.stderr
    line = other.stderr.strip()
    assert "\n" not in line and "epochs, seed" in line and str(out) in line
    assert _checkpoint_epoch(out) is None and (staging_dir(out) / "config.json").is_file()
    nothing = _run(setup, "none", "0", _train_args(data, out.with_name("none"), setup["mlp"],
                                                   "--resume"))  # fmt: skip
    assert nothing.returncode == 1 and "no interrupted run" in nothing.stderr
