"""Training throughput of the course's sample model: trainlab's Trainer against the course's design.

The course (ml2021spring-hw2 sample code) wraps the frames in a per-frame ``Dataset`` and feeds a
``DataLoader(batch_size=64, shuffle=True)``, which collates 64 single rows per step. trainlab's
Trainer gathers a batch with one index operation. Both train the same 429-1024-512-128-39 sigmoid
MLP with ``torch.optim.Adam(lr=1e-4)`` on random data of the real row shape; repetitions are
interleaved so load from other processes hits both alike, and medians are reported.

Also measured in the same run: a tight loop (index gather + forward/backward/step, no Trainer), to
show the Trainer's own per-step overhead, and the matrix-multiply rate, for the FLOP roof:
a training step costs about 6 x parameters FLOPs per frame (2 forward, 4 backward).

    python benchmarks/bench_phoneme_throughput.py [--rows 65536] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from trainlab.phoneme.models import FrameMLP
from trainlab.train import TrainConfig, fit


class CourseDataset(Dataset):
    """The sample code's TIMITDataset: one frame per ``__getitem__``."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.data = torch.from_numpy(x).float()
        self.label = torch.LongTensor(y.astype(np.int64))

    def __getitem__(self, idx: int):  # type: ignore[no-untyped-def]
        return self.data[idx], self.label[idx]

    def __len__(self) -> int:
        return len(self.data)


def course_epoch(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, batch: int) -> float:
    """The sample code's training loop for one epoch; returns seconds."""
    loader = DataLoader(CourseDataset(x, y), batch_size=batch, shuffle=True)
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    t0 = time.perf_counter()
    train_acc = train_loss = 0.0
    for inputs, labels in loader:
        optimizer.zero_grad()
        outputs = model(inputs)
        batch_loss = criterion(outputs, labels)
        _, train_pred = torch.max(outputs, 1)
        batch_loss.backward()
        optimizer.step()
        train_acc += (train_pred.cpu() == labels.cpu()).sum().item()
        train_loss += batch_loss.item()
    return time.perf_counter() - t0


def trainer_epoch(
    model: torch.nn.Module, x: np.ndarray, y: np.ndarray, batch: int, **opt: object
) -> float:
    """One epoch through ``trainlab.train.fit`` with the same optimizer; returns seconds."""
    cfg = TrainConfig(
        epochs=1,
        batch_size=batch,
        optimizer="torch_adam",
        optimizer_kwargs={"lr": 1e-4, **opt},
        device="cpu",
        quiet=True,
    )
    t0 = time.perf_counter()
    fit(model, torch.nn.CrossEntropyLoss(), (x, y), config=cfg)
    return time.perf_counter() - t0


def tight_epoch(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, batch: int) -> float:
    """The Trainer's work without the Trainer: gather, forward, loss, backward, step."""
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    t0 = time.perf_counter()
    order = torch.randperm(len(xt))
    for lo in range(0, len(xt), batch):
        idx = order[lo : lo + batch]
        loss = criterion(model(xt.index_select(0, idx)), yt.index_select(0, idx))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - t0


def matmul_rate(n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of an n x n x n float32 matrix product (median of ``repeats``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=65536, help="frames per epoch (429 features each)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for every variant")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.rows, 429), dtype=np.float32)
    y = rng.integers(0, 39, size=args.rows).astype(np.int64)
    params = sum(p.numel() for p in FrameMLP().parameters())
    flop_per_frame = 6 * params
    print(f"sample model: {params:,} parameters, {flop_per_frame / 1e6:.2f} MFLOP per frame "
          f"(6 x parameters); {args.rows:,} random frames of 429 features; "
          f"{args.threads} thread(s); median of {args.repeats}")  # fmt: skip

    variants = {
        "course (Dataset + DataLoader)": course_epoch,
        "trainlab Trainer": trainer_epoch,
        "tight loop (no Trainer)": tight_epoch,
        "trainlab Trainer, fused Adam": lambda m, a, b, n: trainer_epoch(m, a, b, n, fused=True),
    }
    rates = []
    for batch in (64, 512):
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(args.repeats):
            rates.append(matmul_rate())
            for name, fn in variants.items():  # interleaved: load from others hits all alike
                torch.manual_seed(0)
                times[name].append(fn(FrameMLP(), x, y, batch))
            rates.append(matmul_rate())
        roof = statistics.median(rates)
        base = args.rows / statistics.median(times["course (Dataset + DataLoader)"])
        print(f"\nbatch {batch}  (matmul rate {roof / 1e9:.1f} GFLOP/s, roof "
              f"{roof / flop_per_frame:,.0f} frames/s)")  # fmt: skip
        for name, ts in times.items():
            fps = args.rows / statistics.median(ts)
            print(f"  {name:32s} {fps:9,.0f} frames/s  {fps / base:5.2f}x course  "
                  f"{fps * flop_per_frame / roof:6.1%} of roof")  # fmt: skip


if __name__ == "__main__":
    main()
