"""Training step time of the phoneme default's network by the width of its convolutions, on the CPU.

The default ``crnn`` network (one member, its recurrence over pairs of frames) takes AdamW steps on
a batch of the default's shape (32 pieces of 100 frames, 3 context frames of 39 coefficients) with
convolutions of each width in ``--kernels``, on one thread; repetitions are interleaved so load
from other processes hits every width alike, and medians are reported as ratios to the first width
(the baseline, run in the same process).

    python benchmarks/bench_phoneme_conv_kernel.py [--kernels 5 3] [--repeats 3] [--steps 4]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from bench_phoneme_recurrence import FRAMES, PIECES, train_seconds  # a script beside this one
from trainlab.phoneme.config import resolve_config
from trainlab.phoneme.models import build_model


def step_seconds(kernel: int, steps: int) -> float:
    """Mean seconds of one training step of the default network with convolutions of ``kernel``
    frames (after one warm-up step)."""
    torch.manual_seed(0)
    net = build_model(resolve_config("crnn", None, members=1, conv_kernel=kernel)).train()
    return train_seconds(net, steps, warmup=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kernels", type=int, nargs="+", default=[5, 3])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4, help="timed steps per repetition")
    args = ap.parse_args()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    times: dict[int, list[float]] = {k: [] for k in args.kernels}
    for _ in range(args.repeats):
        for k in args.kernels:  # interleaved
            times[k].append(step_seconds(k, args.steps))
    torch.set_num_threads(threads)
    base = statistics.median(times[args.kernels[0]])
    print(f"crnn network, {PIECES} x {FRAMES} frames per step, 1 thread; median of "
          f"{args.repeats} x {args.steps} steps")  # fmt: skip
    print(f"| conv_kernel | s per step | vs {args.kernels[0]} |\n| --- | --- | --- |")
    for k, ts in times.items():
        s = statistics.median(ts)
        print(f"| {k} | {s:.3f} | {s / base:.2f}x |")


if __name__ == "__main__":
    main()
