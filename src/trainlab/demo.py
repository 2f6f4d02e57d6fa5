"""A small end-to-end run: an MLP on scikit-learn's bundled 8x8 handwritten digits.

It needs no download and finishes in seconds, so it shows that an installation works.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from trainlab.errors import TrainlabError
from trainlab.runs import begin_run, publish_run
from trainlab.train import TrainConfig, accuracy, fit


def load_digits_split(seed: int = 0, val_fraction: float = 0.2) -> tuple[torch.Tensor, ...]:
    """Digits as float32 in [0, 1], split into stratified train/validation sets with ``seed``.

    Returns:
        ``x_train (N, 64), y_train (N,), x_val, y_val``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = torch.tensor(data.data / 16.0, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.int64)
    idx_tr, idx_va = train_test_split(
        torch.arange(len(y)).numpy(), test_size=val_fraction, random_state=seed, stratify=y.numpy()
    )
    return x[idx_tr], y[idx_tr], x[idx_va], y[idx_va]


def run_demo(
    epochs: int = 20,
    out_dir: str | None = None,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = False,
) -> dict[str, Any]:
    """Train a 64-128-10 ReLU network with Adam; return validation accuracy, epochs and seconds."""
    if epochs < 1:
        raise TrainlabError(f"--epochs must be at least 1, got {epochs}")
    stage = None
    if out_dir is not None:  # staged beside out_dir, published when complete
        stage = begin_run(out_dir, {"epochs": epochs, "seed": seed, "device": device})
    x_tr, y_tr, x_va, y_va = load_digits_split(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    config = TrainConfig(
        epochs=epochs,
        batch_size=64,
        optimizer="adam",
        optimizer_kwargs={"lr": 1e-3},
        seed=seed,
        device=device,
        monitor="val_acc",
        mode="max",
        out_dir=None if stage is None else str(stage),
        quiet=quiet,
    )
    t0 = time.perf_counter()
    history = fit(
        model,
        nn.functional.cross_entropy,
        (x_tr, y_tr),
        (x_va, y_va),
        config,
        metrics={"acc": accuracy},
    )
    if stage is not None and out_dir is not None:
        publish_run(stage, out_dir)
    return {
        "val_acc": history.best_value,
        "epochs": len(history),
        "seconds": time.perf_counter() - t0,
    }
