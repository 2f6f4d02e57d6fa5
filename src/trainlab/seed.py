"""Reproducibility: one call seeds Python, NumPy and PyTorch (and optionally makes kernels deterministic)."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = False) -> torch.Generator:
    """Seed every random number generator a run uses.

    Args:
        seed: the seed.
        deterministic: also ask PyTorch for deterministic kernels (slower on GPU).

    Returns:
        A ``torch.Generator`` seeded with ``seed``, for shuffling data independently of model init.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    g = torch.Generator()
    g.manual_seed(seed)
    return g
