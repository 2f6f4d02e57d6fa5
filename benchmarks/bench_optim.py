"""Optimizer step time of trainlab's optimizers against their torch.optim counterparts.

A ~1.07M-parameter MLP (784-1024-256-10) gets one fixed set of gradients; each timed sample is
``steps`` consecutive ``optimizer.step()`` calls. Samples alternate between the two optimizers of a
pair and the table reports medians and the ratio trainlab / torch, measured in this run. PyTorch's
default on CPU is its per-tensor loop (``foreach=None``); its ``foreach=True`` path is shown too.

Run: ``.venv/bin/python benchmarks/bench_optim.py [--quick] [--threads N]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import trainlab.optim as optim

# (label, trainlab factory, torch factory, kwargs shared by both)
PAIRS: list[tuple[str, Callable[..., Any], Callable[..., Any], dict[str, Any]]] = [
    ("momentum  vs SGD(momentum)", optim.Momentum, torch.optim.SGD, {"lr": 0.01, "momentum": 0.9}),
    ("adagrad   vs Adagrad", optim.Adagrad, torch.optim.Adagrad, {"lr": 0.01}),
    ("adagrad_lecture vs Adagrad", optim.AdagradLecture, torch.optim.Adagrad, {"lr": 0.01}),
    ("rmsprop   vs RMSprop", optim.RMSprop, torch.optim.RMSprop, {"lr": 0.01}),
    (
        "rmsprop centered+mom",
        optim.RMSprop,
        torch.optim.RMSprop,
        {"lr": 0.01, "centered": True, "momentum": 0.9},
    ),
    ("rmsprop_lecture vs RMSprop", optim.RMSpropLecture, torch.optim.RMSprop, {"lr": 0.01}),
    ("adam      vs Adam", optim.Adam, torch.optim.Adam, {"lr": 1e-3}),
    (
        "adam wd+amsgrad",
        optim.Adam,
        torch.optim.Adam,
        {"lr": 1e-3, "weight_decay": 1e-4, "amsgrad": True},
    ),
    ("adam_lecture vs Adam", optim.AdamLecture, torch.optim.Adam, {"lr": 1e-3}),
]


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 256), nn.ReLU(), nn.Linear(256, 10)
    )
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-2
    return model


def _timed(opt: torch.optim.Optimizer, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        opt.step()
    return (time.perf_counter() - start) / steps


def bench_pair(
    ours_cls: Callable[..., Any],
    torch_cls: Callable[..., Any],
    kwargs: dict[str, Any],
    repeats: int,
    steps: int,
) -> dict[str, float]:
    """Median seconds per step for trainlab, torch (default) and torch (foreach=True), and the
    median per-repeat ratios of trainlab's to each."""
    opts = {
        "ours": ours_cls(_mlp().parameters(), **kwargs),
        "torch": torch_cls(_mlp().parameters(), **kwargs),
        "torch_foreach": torch_cls(_mlp().parameters(), foreach=True, **kwargs),
    }
    for opt in opts.values():  # warm-up, and creates the state tensors
        _timed(opt, 3)
    times: dict[str, list[float]] = {k: [] for k in opts}
    for r in range(repeats):
        order = list(opts) if r % 2 == 0 else list(reversed(opts))
        for name in order:
            times[name].append(_timed(opts[name], steps))
    out = {k: statistics.median(v) for k, v in times.items()}
    # Ratios within each repeat cancel slow drifts in machine load; their median is reported.
    for base in ("torch", "torch_foreach"):
        out[f"ratio_{base}"] = statistics.median(a / b for a, b in zip(times["ours"], times[base]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats, steps = (5, 5) if args.quick else (15, 10)
    n_params = sum(p.numel() for p in _mlp().parameters())
    print(
        f"optimizer.step() on a {n_params / 1e6:.2f}M-parameter MLP, float32, "
        f"{torch.get_num_threads()} threads, median of {repeats} x {steps} steps (ratios: median of per-repeat ratios)"
    )
    header = (
        f"{'pair':<28} {'ours ms':>8} {'torch ms':>9} {'ours/torch':>10} "
        f"{'foreach ms':>10} {'ours/foreach':>12}"
    )
    print(header)
    print("-" * len(header))
    for label, ours_cls, torch_cls, kwargs in PAIRS:
        t = bench_pair(ours_cls, torch_cls, kwargs, repeats, steps)
        print(
            f"{label:<28} {t['ours'] * 1e3:8.3f} {t['torch'] * 1e3:9.3f} "
            f"{t['ratio_torch']:10.2f} {t['torch_foreach'] * 1e3:10.3f} "
            f"{t['ratio_torch_foreach']:12.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
