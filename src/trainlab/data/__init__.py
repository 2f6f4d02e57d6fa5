"""Data the competitions share: MNIST IDX files and Kaggle downloads.

Each competition's own files live in its package (``trainlab.covid``, ``trainlab.phoneme``). Names
are imported on first use, so ``import trainlab.data`` loads nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "trainlab.data.mnist": ["available_splits", "find_idx_files", "load_mnist", "read_idx"],
    "trainlab.data.kaggle": ["Competition", "download", "find_credentials"],
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'trainlab.data' has no attribute {name!r}")
