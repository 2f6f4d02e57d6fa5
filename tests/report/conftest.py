"""Fixtures for the report's tests: a small MNIST-format folder, a tiny report config."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest


def write_idx(path: Path, arr: np.ndarray) -> None:
    """Write ``arr`` (uint8) as a gzip-compressed IDX file."""
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(gzip.compress(header + arr.astype(np.uint8).tobytes()))


@pytest.fixture(autouse=True)
def one_thread():
    """The report's models are tiny: one thread is faster, and much faster on a busy machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def mnist_folder(tmp_path: Path) -> Path:
    """An MNIST-format folder with 200 images: a bright square whose position is the label."""
    rng = np.random.default_rng(0)
    n = 200
    labels = np.arange(n) % 10
    images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
    for i, c in enumerate(labels):
        r, col = 2 + 2 * (c // 5) * 5, 2 + 5 * (c % 5)
        images[i, r : r + 6, col : col + 4] = 250
    folder = tmp_path / "mnist"
    folder.mkdir()
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels.astype(np.uint8))
    return folder
