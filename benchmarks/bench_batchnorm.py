"""Forward + backward time of trainlab's BatchNorm against PyTorch's, training mode, float32.

For each shape both layers run the same input and upstream gradient; the timed call is
``torch.autograd.grad(layer(x), (x, weight, bias), dy)`` (so nothing accumulates between
repeats). Runs alternate between the two implementations and the table reports medians and the
ratio ours / PyTorch's, measured in this run. The plain-autograd formula is timed as well, to show
what the custom backward buys.

Run: ``.venv/bin/python benchmarks/bench_batchnorm.py [--quick] [--threads N]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from trainlab.nn import BatchNorm
from trainlab.nn._batchnorm_fn import batch_norm_train_reference

SHAPES: list[tuple[int, ...]] = [(256, 64, 32, 32), (4096, 1024)]


def _timer(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _step(layer: nn.Module, x: Tensor, dy: Tensor) -> Callable[[], object]:
    params = [p for p in layer.parameters()]

    def run() -> object:
        return torch.autograd.grad(layer(x), [x, *params], dy)

    return run


def _plain(layer: nn.Module, x: Tensor, dy: Tensor) -> Callable[[], object]:
    weight, bias = layer.weight, layer.bias
    eps = 1e-5

    def run() -> object:
        y = batch_norm_train_reference(x, weight, bias, eps)
        return torch.autograd.grad(y, [x, weight, bias], dy)

    return run


def _paired(
    a: Callable[[], object], b: Callable[[], object], repeats: int, warmup: int
) -> tuple[float, float, float]:
    """Median ms of ``a`` and ``b``, and the median of the per-repeat ratios b / a."""
    for _ in range(warmup):
        a()
        b()
    ta: list[float] = []
    tb: list[float] = []
    for r in range(repeats):
        # Alternate the order so that neither side always runs on a warmer cache.
        if r % 2 == 0:
            ta.append(_timer(a))
            tb.append(_timer(b))
        else:
            tb.append(_timer(b))
            ta.append(_timer(a))
    # Ratios within each repeat cancel slow drifts in machine load; their median is reported.
    ratio = statistics.median(y / x for x, y in zip(ta, tb))
    return statistics.median(ta) * 1e3, statistics.median(tb) * 1e3, ratio


def bench_shape(shape: tuple[int, ...], repeats: int, warmup: int) -> dict[str, float]:
    """Times (ms) and ratios to PyTorch for trainlab's layer and for the plain formula."""
    torch.manual_seed(0)
    channels = shape[1]
    x = (torch.randn(shape) * 2 + 0.5).requires_grad_()
    dy = torch.randn(shape)
    ref: nn.Module = nn.BatchNorm2d(channels) if len(shape) == 4 else nn.BatchNorm1d(channels)
    ours: nn.Module = BatchNorm(channels, num_dims=4 if len(shape) == 4 else 2)
    t_ref, t_ours, r_ours = _paired(_step(ref, x, dy), _step(ours, x, dy), repeats, warmup)
    # The plain formula allocates many temporaries; timed in its own pairing so that its effect
    # on the allocator does not leak into the main comparison.
    _, t_plain, r_plain = _paired(_step(ref, x, dy), _plain(ours, x, dy), max(3, repeats // 3), 1)
    return {
        "torch": t_ref,
        "trainlab": t_ours,
        "trainlab_ratio": r_ours,
        "plain": t_plain,
        "plain_ratio": r_plain,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats, warmup = (5, 1) if args.quick else (21, 3)
    print(
        f"BatchNorm forward+backward, float32, training mode, {torch.get_num_threads()} threads, "
        f"median of {repeats}"
    )
    header = f"{'shape':>20} {'torch ms':>9} {'ours ms':>9} {'ours/torch':>10} {'plain ms':>9} {'plain/torch':>11}"
    print(header)
    print("-" * len(header))
    for shape in SHAPES:
        t = bench_shape(shape, repeats, warmup)
        print(
            f"{str(shape):>20} {t['torch']:9.2f} {t['trainlab']:9.2f} "
            f"{t['trainlab_ratio']:10.2f} {t['plain']:9.2f} {t['plain_ratio']:11.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
