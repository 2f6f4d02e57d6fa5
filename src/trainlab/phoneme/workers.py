"""Worker processes that train ensemble members side by side, the CPU cores shared among them.

Each worker is a fresh interpreter (``python -m trainlab.phoneme.workers <job>``), not a fork
or a ``multiprocessing`` spawn: it imports nothing of the caller's script, so a script without a
``__main__`` guard works, and no OpenMP pool is inherited half-initialised. A worker prepares the
data as the parent did, trains its member with :func:`trainlab.phoneme.fitting.fit_network` in its
own folder, and leaves the weights and history in ``result.pt`` there, which the parent reads
(``weights_only``) and removes. A worker whose parent has died ends at its next step, so an
orphan never writes into a run that a resumed command owns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from trainlab.config import from_dict, to_dict
from trainlab.errors import TrainlabError

if TYPE_CHECKING:
    from trainlab.phoneme.config import PhonemeConfig
    from trainlab.train import History

RESULT = "result.pt"
ERROR = "error.txt"


def run_workers(
    jobs: list[tuple[int, Path, bool]],
    cfg: PhonemeConfig,
    data_root: Path,
    resume: bool,
    threads: int,
) -> list[tuple[dict[str, Any], History]]:
    """Train the members ``jobs`` names (``(k, folder, quiet)``) at once, one process each.

    Returns:
        Each member's weights and history, in the order of ``jobs``.

    Raises:
        TrainlabError: a worker failed (its own message where it gave one).
    """
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    procs = []
    try:
        for k, folder, quiet in jobs:
            folder.mkdir(parents=True, exist_ok=True)
            for name in (RESULT, ERROR):
                (folder / name).unlink(missing_ok=True)
            job = {"data": str(data_root), "config": to_dict(cfg), "member": k,
                   "folder": str(folder), "quiet": quiet, "resume": resume, "threads": threads}  # fmt: skip
            cmd = [sys.executable, "-m", "trainlab.phoneme.workers", json.dumps(job)]
            procs.append(subprocess.Popen(cmd, env=env))
        codes = [p.wait() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [_result(k, folder, code) for (k, folder, _), code in zip(jobs, codes)]


def _result(k: int, folder: Path, code: int) -> tuple[dict[str, Any], History]:
    from trainlab.train import History

    if code != 0 or not (folder / RESULT).is_file():
        error = folder / ERROR
        why = error.read_text().strip() if error.is_file() else f"exit code {code}"
        error.unlink(missing_ok=True)
        raise TrainlabError(f"member {k + 1} ({folder}) failed: {why}")
    saved = torch.load(folder / RESULT, weights_only=True)
    (folder / RESULT).unlink()
    history = History()
    history.load_state_dict(saved["history"])
    return saved["weights"], history


class _OrphanGuard:
    """A callback that ends the process at the next step once its parent has died."""

    def __init__(self) -> None:
        self.parent = os.getppid()

    def on_step_end(self, state: object) -> None:
        if os.getppid() != self.parent:
            os._exit(1)


def _work(job: dict[str, Any]) -> None:
    from trainlab.phoneme.config import PhonemeConfig
    from trainlab.phoneme.files import load_timit
    from trainlab.phoneme.fitting import (
        fit_network,
        member_config,
        member_data,
        weights_and_history,
    )
    from trainlab.phoneme.split import prepare_data

    torch.set_num_threads(int(job["threads"]))
    cfg = from_dict(PhonemeConfig, job["config"])
    split = prepare_data(load_timit(job["data"]), cfg.val_ratio, cfg.holdout_ratio, cfg.seed)
    folder, k = Path(job["folder"]), int(job["member"])
    weights, history = weights_and_history(fit_network(
        member_config(cfg, k), member_data(cfg, split, k), folder, bool(job["quiet"]),
        bool(job["resume"]), [_OrphanGuard()],
    ))  # fmt: skip
    torch.save({"weights": weights, "history": history.state_dict()}, folder / RESULT)


def main(argv: list[str]) -> int:
    """The worker's entry point: ``argv[0]`` is the job as JSON."""
    job = json.loads(argv[0])
    try:
        _work(job)
    except TrainlabError as e:
        (Path(job["folder"]) / ERROR).write_text(str(e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
