"""Data-parallel training throughput: the phoneme ``mlp`` preset on 2 ranks against 1 rank.

The network is the ``mlp`` preset (429-1024x4-39, BatchNorm, GELU, dropout, AdamW, batch 512),
trained by :func:`trainlab.train.fit` on random frames. Both runs use the same global batch of 512
rows per step and one thread per rank; the 2-rank run is ``torchrun --nproc_per_node=2`` (DDP over
gloo, each rank 256 rows, BatchNorm synchronised). Each configuration runs ``--repeats`` times,
interleaved, and the throughput is taken from the last epoch of each run (the first warms up).

Where the time goes on 2 ranks, measured inside the same runs:

* ``compute``: one rank's forward, backward and optimizer step on its 256 rows without DDP
  (plain module, local BatchNorm), per step;
* ``all-reduce``: one ``all_reduce`` of a buffer the size of all gradients, per step;
* ``imbalance``: the slowest rank's compute time over the fastest's.

Run: ``.venv/bin/python benchmarks/bench_ddp_throughput.py [--steps 40] [--repeats 2]``
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
from torch import nn


def _worker(args: argparse.Namespace) -> None:
    import torch.distributed as dist

    from trainlab.distributed import detect_env, gather_objects
    from trainlab.phoneme import build_model, preset
    from trainlab.train import TrainConfig, fit

    torch.set_num_threads(1)
    env = detect_env()
    cfg = preset("mlp")
    g = torch.Generator().manual_seed(0)
    n = cfg.batch_size * args.steps
    x, y = torch.randn(n, 429, generator=g), torch.randint(0, 39, (n,), generator=g)
    torch.manual_seed(0)
    net = build_model(cfg)
    tc = TrainConfig(
        epochs=2, batch_size=cfg.batch_size, optimizer="adamw",
        optimizer_kwargs={"lr": cfg.lr}, weight_decay=cfg.weight_decay, device="cpu", quiet=True,
    )  # fmt: skip
    history = fit(net, nn.functional.cross_entropy, (x, y), None, tc)
    result = {
        "world": env.world_size,
        "epoch_s": history.records[-1]["time_s"],
        "steps": args.steps,
    }
    if env.distributed:
        result.update(_breakdown(net, x, y, cfg.batch_size // env.world_size, args.steps))
        parts = gather_objects(result)
        result["compute_s"] = [p["compute_s"] for p in parts]
        dist.destroy_process_group()
    if env.is_main:
        Path(args.out).write_text(json.dumps(result))


def _breakdown(net: nn.Module, x: torch.Tensor, y: torch.Tensor, rows: int, steps: int) -> dict:
    """Per-step compute on this rank's rows (no DDP) and one gradient-sized all-reduce."""
    import torch.distributed as dist

    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    net.train()
    t0 = time.perf_counter()
    for s in range(steps // 2):
        xb, yb = x[s * rows : (s + 1) * rows], y[s * rows : (s + 1) * rows]
        opt.zero_grad()
        nn.functional.cross_entropy(net(xb), yb).backward()
        opt.step()
    compute = (time.perf_counter() - t0) / (steps // 2)
    flat = torch.zeros(sum(p.numel() for p in net.parameters()))
    dist.barrier()
    times = []
    for _ in range(10):
        t = time.perf_counter()
        dist.all_reduce(flat)
        times.append(time.perf_counter() - t)
    return {"compute_s": compute, "allreduce_s": statistics.median(times)}


def _launch(world: int, steps: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={world}", __file__, "--worker", "--steps", str(steps), "--out",
           str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=40, help="steps per epoch (default 40)")
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
                runs[world].append(_launch(world, args.steps, Path(tmp) / f"{world}_{r}.json"))
    one = statistics.median(r["epoch_s"] for r in runs[1]) / args.steps
    two = statistics.median(r["epoch_s"] for r in runs[2]) / args.steps
    comp = [statistics.median(r["compute_s"][k] for r in runs[2]) for k in range(2)]
    ar = statistics.median(r["allreduce_s"] for r in runs[2])
    print(f"mlp preset, global batch 512, {args.steps} steps/epoch, 1 thread per rank")
    print(f"1 rank : {one * 1e3:7.1f} ms/step  {512 / one:8.0f} rows/s")
    print(f"2 ranks: {two * 1e3:7.1f} ms/step  {512 / two:8.0f} rows/s  speed-up {one / two:.2f}x")
    print(f"2 ranks, per step: compute {max(comp) * 1e3:.1f} ms (imbalance "
          f"{max(comp) / min(comp):.2f}), gradient all-reduce {ar * 1e3:.1f} ms, rest "
          f"{(two - max(comp) - ar) * 1e3:.1f} ms (BatchNorm sync, DDP bookkeeping, waiting)")  # fmt: skip
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
