"""Distributed Lanczos: top-5 Hessian eigenvalues of the 1M-parameter phoneme MLP, 2 ranks vs 1.

The model and batch are those of ``benchmarks/bench_hessian.py`` (the phoneme ``sample`` MLP,
429-1024-512-128-39, lightly trained on ``--batch`` random frames; float32 products, float64
solver). With 2 ranks (``torchrun --nproc_per_node=2``, gloo, one thread each) every rank computes
the Hessian-vector products on its half of the batch and the products are all-reduced
(:class:`trainlab.diagnose.distributed.DistributedObjective`); ARPACK runs on every rank. The two
runs must agree (same eigenvalues to the solver's tolerance, same number of products); the
table gives the time of each, the speed-up and the per-product all-reduce time.

Run: ``.venv/bin/python benchmarks/bench_ddp_lanczos.py [--batch 2048] [--repeats 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _worker(args: argparse.Namespace) -> None:
    import torch.distributed as dist

    from bench_hessian import build
    from trainlab.diagnose import ModelObjective, extreme_eigenpairs
    from trainlab.diagnose.distributed import DistributedObjective, shard_target
    from trainlab.diagnose.target import DiagnosisTarget
    from trainlab.distributed import detect_env, setup

    torch.set_num_threads(1)
    env = detect_env()
    ctx = setup("cpu")
    whole, _ = build(args.batch, args.train_steps, 0)  # the same trained point on every rank
    obj = whole
    if ctx is not None:
        target = DiagnosisTarget(whole.model, whole.loss_fn, whole.inputs, whole.targets, "")
        part, rows = shard_target(target, ctx.rank, ctx.world_size)
        local = ModelObjective(part.model, part.loss_fn, part.inputs, part.targets)
        obj = DistributedObjective(local, rows)  # type: ignore[assignment]
    t0 = time.perf_counter()
    pairs = extreme_eigenpairs(obj, 5, "top", tol=args.tol, seed=0)
    seconds = time.perf_counter() - t0
    result = {"world": env.world_size, "seconds": seconds, "num_hvp": pairs.num_hvp,
              "eigenvalues": [float(v) for v in pairs.eigenvalues]}  # fmt: skip
    if ctx is not None:
        flat = torch.zeros(obj.num_params)
        times = []
        for _ in range(10):
            t = time.perf_counter()
            dist.all_reduce(flat)
            times.append(time.perf_counter() - t)
        result["allreduce_s"] = statistics.median(times)
        dist.destroy_process_group()
    if env.is_main:
        Path(args.out).write_text(json.dumps(result))


def _launch(world: int, args: argparse.Namespace, out: Path) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={world}", __file__, "--worker", "--batch", str(args.batch),
           "--train-steps", str(args.train_steps), "--tol", str(args.tol), "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=2048)
    p.add_argument("--train-steps", type=int, default=50)
    p.add_argument("--tol", type=float, default=1e-3)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return _worker(args)
    print(f"load before: {os.getloadavg()[0]:.2f}")
    runs: dict[int, list[dict]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for world in (1, 2):
                runs[world].append(_launch(world, args, Path(tmp) / f"{world}_{r}.json"))
    t1 = statistics.median(r["seconds"] for r in runs[1])
    t2 = statistics.median(r["seconds"] for r in runs[2])
    e1, e2 = runs[1][0]["eigenvalues"], runs[2][0]["eigenvalues"]
    diff = max(abs(a - b) / abs(a) for a, b in zip(e1, e2))
    print(f"phoneme sample MLP, batch {args.batch}, top-5 eigenvalues, tol {args.tol:g}")
    print(f"1 rank : {t1:6.2f} s, {runs[1][0]['num_hvp']} products")
    print(f"2 ranks: {t2:6.2f} s, {runs[2][0]['num_hvp']} products, speed-up {t1 / t2:.2f}x, "
          f"all-reduce {statistics.median(r['allreduce_s'] for r in runs[2]) * 1e3:.1f} ms/product")  # fmt: skip
    print(f"eigenvalues {', '.join(f'{v:.5g}' for v in e1)}; largest relative difference "
          f"between 1 and 2 ranks {diff:.1e}")  # fmt: skip
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
