"""Dropout on the CPU: trainlab's one-random-word-per-four-elements mask against ``torch.nn.Dropout``.

Two measurements, each on one thread, repetitions interleaved so load from other processes hits
both alike, medians reported as ratios to PyTorch's (the baseline, run in the same process):

* the layer alone, forward and backward, on the largest tensor the phoneme default drops
  (32 pieces x 100 frames x 576 features, p = 0.2);
* one AdamW training step of the phoneme default's network (one member), with every dropout
  layer trainlab's, then every one PyTorch's.

    python benchmarks/bench_dropout.py [--repeats 5] [--steps 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from bench_phoneme_recurrence import FRAMES, PIECES, train_seconds  # a script beside this one
from trainlab.nn.dropout import Dropout
from trainlab.phoneme.config import resolve_config
from trainlab.phoneme.models import build_model


def layer_seconds(layer: nn.Module, steps: int) -> float:
    """Mean seconds of a forward and backward pass of ``layer`` on the largest dropped tensor."""
    x = torch.randn(PIECES, FRAMES, 576, requires_grad=True)
    layer(x).sum().backward()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        layer(x).sum().backward()
    return (time.perf_counter() - start) / steps


def network(torch_dropout: bool) -> nn.Module:
    """The default's network (one member), its dropout layers PyTorch's if ``torch_dropout``."""
    torch.manual_seed(0)
    net = build_model(resolve_config("crnn", None, members=1)).train()
    for module in list(net.modules()):
        for name, child in list(module.named_children()):
            if torch_dropout and isinstance(child, Dropout):
                setattr(module, name, nn.Dropout(child.p))
    return net


def interleaved(runs: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Median seconds of each run over ``repeats`` interleaved repetitions."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            times[name].append(run())
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per repetition")
    args = ap.parse_args()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    layer = interleaved(
        {
            "torch": lambda: layer_seconds(nn.Dropout(0.2).train(), 5 * args.steps),
            "trainlab": lambda: layer_seconds(Dropout(0.2).train(), 5 * args.steps),
        },
        args.repeats,
    )
    nets = {"torch": network(True), "trainlab": network(False)}
    step = interleaved(
        {
            name: (lambda n=net: train_seconds(n, args.steps, warmup=1))
            for name, net in nets.items()
        },
        args.repeats,
    )
    torch.set_num_threads(threads)
    print(f"1 thread; medians of {args.repeats} repetitions")
    print(
        "| measurement | torch.nn.Dropout s | trainlab Dropout s | ratio |\n| --- | --- | --- | --- |"
    )
    for what, t in (
        (f"layer forward + backward, {PIECES} x {FRAMES} x 576, p = 0.2", layer),
        (f"default network's training step, {PIECES} x {FRAMES} frames", step),
    ):
        print(
            f"| {what} | {t['torch']:.4f} | {t['trainlab']:.4f} | {t['trainlab'] / t['torch']:.2f}x |"
        )


if __name__ == "__main__":
    main()
