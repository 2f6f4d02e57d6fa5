"""What the doctor's monitor costs: training time with its default settings against without.

Two trainings, each through trainlab's ``fit`` with the same seed, data and steps, once with the
doctor's callback (default settings: the time budget, probes, curvature checks, noise-scale
windows, the checks at close, TensorBoard events when ``tensorboard`` is installed) and once
without; runs alternate so that load from other processes hits both alike, and the ratio of the
medians is printed (the target is at most 1.05):

* the phoneme ``mlp`` preset's network (429-1024x4-39, BatchNorm, GELU, dropout; AdamW 2e-3,
  batch 512, label smoothing 0.1) on synthetic frames of the competition's shape;
* the report's digits MLP (64-256-256-256-10, Adam 1e-3, batch 64, the adaptive section's) on
  scikit-learn's bundled digits, 40 epochs.

The monitor's own clock (``monitor_seconds`` in the records' end line: every second spent inside
its calls, the checks at close included) is printed beside the ratio as a cross-check; on a
machine shared with other work the ratio swings with their load, the own-clock share does not.

    python benchmarks/bench_doctor_overhead.py [--repeats 3] [--phoneme-steps 200] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainlab.doctor import DoctorCallback
from trainlab.train import TrainConfig, fit


def _phoneme(steps: int) -> tuple[Callable[[], nn.Module], Any, Any, TrainConfig]:
    from trainlab.phoneme.models import FrameMLP

    g = torch.Generator().manual_seed(0)
    rows = 512 * steps
    x, y = torch.randn(rows, 429, generator=g), torch.randint(0, 39, (rows,), generator=g)

    def build() -> nn.Module:
        torch.manual_seed(0)
        return FrameMLP(429, [1024] * 4, 39, "gelu", batch_norm=True, dropout=0.3,
                        input_dropout=0.1)  # fmt: skip

    cfg = TrainConfig(
        epochs=1, batch_size=512, optimizer="adamw", optimizer_kwargs={"lr": 2e-3},
        weight_decay=1e-2, scheduler="cosine", quiet=True, device="cpu", restore_best=False,
    )  # fmt: skip
    loss = nn.CrossEntropyLoss(label_smoothing=0.1)
    return build, loss, (x, y), cfg


def _digits(epochs: int) -> tuple[Callable[[], nn.Module], Any, Any, TrainConfig]:
    from trainlab.nn.mlp import mlp
    from trainlab.report.data import load_report_data

    (x, y), _ = load_report_data("digits").flat()

    def build() -> nn.Module:
        torch.manual_seed(0)
        return mlp(x.shape[1], [256, 256, 256], 10)

    cfg = TrainConfig(
        epochs=epochs, batch_size=64, optimizer="adam", optimizer_kwargs={"lr": 1e-3},
        quiet=True, device="cpu", restore_best=False,
    )  # fmt: skip
    return build, nn.functional.cross_entropy, (x, y), cfg


def _time(build: Callable[[], nn.Module], loss: Any, data: Any, cfg: TrainConfig,
          out: Path | None) -> tuple[float, float | None]:  # fmt: skip
    """Seconds of one fit (with the doctor writing into ``out`` when given) and the monitor's
    own seconds."""
    model = build()
    callbacks = [DoctorCallback(out)] if out is not None else []
    t0 = time.perf_counter()
    fit(model, loss, data, None, cfg, callbacks=callbacks)
    seconds = time.perf_counter() - t0
    if out is None:
        return seconds, None
    end = json.loads((out / "doctor.jsonl").read_text().splitlines()[-1])
    return seconds, float(end["monitor_seconds"])


def bench(name: str, setup: tuple[Any, ...], repeats: int) -> float:
    build, loss, data, cfg = setup
    with tempfile.TemporaryDirectory() as tmp:
        _time(build, loss, data, cfg, Path(tmp) / "warmup")  # imports, first-call costs
        _time(build, loss, data, cfg, None)
        plain, watched, own = [], [], []
        for r in range(repeats):
            order = [False, True] if r % 2 == 0 else [True, False]
            for with_doctor in order:
                out = Path(tmp) / f"run{r}" if with_doctor else None
                seconds, mon = _time(build, loss, data, cfg, out)
                (watched if with_doctor else plain).append(seconds)
                if mon is not None:
                    own.append(mon)
    ratio = statistics.median(watched) / statistics.median(plain)
    share = statistics.median(own) / statistics.median(watched)
    print(
        f"{name:<34} without {statistics.median(plain):7.2f} s   with "
        f"{statistics.median(watched):7.2f} s   ratio {ratio:.3f}   (monitor's own clock: "
        f"{statistics.median(own):.3f} s, {share:.1%} of the watched run)",
        flush=True,
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each arm (default 3)")
    parser.add_argument("--phoneme-steps", type=int, default=200,
                        help="training steps of the phoneme run (default 200)")  # fmt: skip
    parser.add_argument("--digits-epochs", type=int, default=40, help="epochs of the digits run")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--quick", action="store_true", help="small runs, one repeat")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.phoneme_steps, args.digits_epochs = 1, 8, 5
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"doctor overhead, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          "ratio = with / without the monitor (target ≤ 1.05)")  # fmt: skip
    bench(f"phoneme mlp preset, {args.phoneme_steps} steps", _phoneme(args.phoneme_steps),
          args.repeats)  # fmt: skip
    torch.set_num_threads(1)  # the report trains its small models on one thread
    bench(f"digits MLP, {args.digits_epochs} epochs", _digits(args.digits_epochs), args.repeats)


if __name__ == "__main__":
    main()
