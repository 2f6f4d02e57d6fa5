"""Launchers for the distributed tests: forked gloo ranks in-process, or ``torchrun`` itself.

:func:`run_ranks` forks ``world_size`` processes that join a process group through the same
``RANK``/``WORLD_SIZE``/``MASTER_PORT`` variables ``torchrun`` sets (on a free port), so library
code takes its distributed path unchanged, in about a second. :func:`torchrun` runs the real
launcher on :mod:`workers`, for the command line, restarts and several "nodes".
"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import subprocess
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch._dynamo  # noqa: F401  - imported once here, not again in every forked rank
from torch.nn.parallel import DistributedDataParallel  # noqa: F401  - likewise

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rank_main(
    fn: Callable[..., Any], rank: int, world: int, port: int, out: str, args: Any
) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), TRAINLAB_DIST_TIMEOUT="120",
    )  # fmt: skip
    os.environ.pop("TORCHELASTIC_USE_AGENT_STORE", None)
    torch.set_num_threads(1)
    try:
        result = fn(*args)
        torch.save({"result": result}, out)
    except BaseException:
        torch.save({"error": traceback.format_exc()}, out)
        raise
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def run_ranks(
    fn: Callable[..., Any], tmp: Path, world_size: int = 2, args: Sequence[Any] = (),
    timeout: float = 180.0,
) -> list[Any]:  # fmt: skip
    """Run ``fn(*args)`` on ``world_size`` forked ranks; return each rank's result in rank order.

    Raises:
        AssertionError: a rank failed (its traceback in the message) or the run timed out.
    """
    ctx = mp.get_context("fork")
    port = free_port()
    outs = [str(tmp / f"rank{r}.pt") for r in range(world_size)]
    procs = [
        ctx.Process(target=_rank_main, args=(fn, r, world_size, port, outs[r], tuple(args)))
        for r in range(world_size)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.kill()
    assert not alive, f"ranks still running after {timeout} s"
    results = []
    for r, path in enumerate(outs):
        assert Path(path).is_file(), f"rank {r} left no result (exit code {procs[r].exitcode})"
        got = torch.load(path, weights_only=False)
        assert "error" not in got, f"rank {r} failed:\n{got['error']}"
        results.append(got["result"])
    return results


def torchrun(
    args: Sequence[str], nproc: int = 2, launcher: Sequence[str] = ("--standalone",),
    timeout: float = 300.0, cwd: Path = HERE,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """``python -m torch.distributed.run [launcher] --nproc_per_node=N args`` with 1 thread/rank."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRAINLAB_DIST_TIMEOUT": "120"}
    cmd = [sys.executable, "-m", "torch.distributed.run", *launcher, f"--nproc_per_node={nproc}"]
    return subprocess.run(
        [*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
