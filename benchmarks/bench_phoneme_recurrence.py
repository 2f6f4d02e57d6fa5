"""Training step time of the phoneme default's network by recurrence, stride and precision, on the CPU.

The default ``crnn`` network (input projection, two residual convolutions, a 2-layer bidirectional
recurrence of 192 units per direction over pairs of frames, a classifier) takes one AdamW step on a
batch of the default's shape (32 pieces of 100 frames, 3 context frames of 39 coefficients), with
each variant and thread count; repetitions are interleaved so load from other processes hits every
variant alike, and medians are reported as ratios to the GRU over every frame on one thread (the
baseline, run in the same process). Variants: ``gru`` and ``lstm`` read every frame, ``lstm/2``
reads pairs of frames (``rnn_stride = 2``, the default). PyTorch runs the LSTM through oneDNN's
fused kernels on the CPU, which the GRU lacks. ``+bf16`` is under bf16 autocast (the default's
``amp``), which takes effect only on a CPU that computes in bf16 natively (AVX512-BF16 or AMX; the
output says whether this one does): elsewhere it is float32 again. Then the way an ensemble's
members train: two networks at once, one thread each, in processes of their own (``pair``), each
process's step time against the same baseline.

    python benchmarks/bench_phoneme_recurrence.py [--repeats 5] [--steps 6]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import torch

from trainlab.phoneme.config import resolve_config
from trainlab.phoneme.models import build_model
from trainlab.train._forward import autocast, cpu_has_bf16

PIECES, FRAMES, FEATURES, CLASSES = 32, 100, 3 * 39, 39


def step_seconds(cell: str, threads: int, steps: int) -> float:
    """Mean seconds of one training step of the default network in the variant ``cell``
    (``CELL[/STRIDE][+bf16]``), after 2 warm-ups."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    base, _, bf16 = cell.partition("+")
    cell, _, stride = base.partition("/")
    cfg = resolve_config("crnn", None, members=1, rnn_cell=cell, rnn_stride=int(stride or 1))
    return train_seconds(build_model(cfg).train(), steps, bool(bf16))


def train_seconds(net: torch.nn.Module, steps: int, bf16: bool = False, warmup: int = 2) -> float:
    """Mean seconds of one AdamW step of the sequence network ``net`` on a random batch of the
    default's shape, after ``warmup`` untimed steps."""
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.randn(PIECES, FRAMES, FEATURES)
    y = torch.randint(0, CLASSES, (PIECES * FRAMES,))
    lengths = torch.full((PIECES,), FRAMES)
    for i in range(steps + warmup):
        if i == warmup:
            t0 = time.perf_counter()
        with autocast(torch.device("cpu"), bf16):
            out = net(x, lengths).float()
        loss = torch.nn.functional.cross_entropy(out.reshape(-1, CLASSES), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


def pair_seconds(cell: str, steps: int) -> float:
    """Mean step seconds of two networks training at once in processes of their own, 1 thread each."""
    cmd = [sys.executable, __file__, "--worker", cell, "--steps", str(steps)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    return statistics.mean(float(p.communicate()[0]) for p in procs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=6, help="timed steps per repetition")
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # one network of a pair: prints seconds
    args = ap.parse_args()
    if args.worker:
        print(step_seconds(args.worker, 1, args.steps))
        return
    variants = [
        (cell, threads)
        for threads in (1, 2, "pair")
        for cell in ("gru", "lstm", "lstm/2", "lstm+bf16", "lstm/2+bf16")
    ]
    times: dict[tuple[str, int | str], list[float]] = {v: [] for v in variants}
    for _ in range(args.repeats):
        for cell, threads in variants:  # interleaved
            t = (
                pair_seconds(cell, args.steps)
                if threads == "pair"
                else step_seconds(cell, int(threads), args.steps)
            )
            times[(cell, threads)].append(t)
    base = statistics.median(times[("gru", 1)])
    print(f"crnn network, {PIECES} x {FRAMES} frames per step; median of {args.repeats} x "
          f"{args.steps} steps; native bf16 on this CPU: {cpu_has_bf16()}")  # fmt: skip
    print("| variant | threads | s per step | vs GRU, 1 thread |\n| --- | --- | --- | --- |")
    for (cell, threads), ts in times.items():
        s = statistics.median(ts)
        print(f"| {cell} | {threads} | {s:.3f} | {s / base:.2f}x |")


if __name__ == "__main__":
    main()
