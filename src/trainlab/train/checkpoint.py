"""Checkpoints that restore a run exactly: model, optimizer, schedule, RNG states, epoch, history.

Files are written atomically (temporary file + rename) and read with ``weights_only=True``, so a
checkpoint can never run code, and a crash never leaves a half-written one.
"""

from __future__ import annotations

import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainlab._io import atomic_torch_save
from trainlab.errors import TrainlabError


def save_checkpoint(obj: dict[str, Any], path: str | Path) -> None:
    """Write ``obj`` (tensors, numbers, strings, lists and dicts only) to ``path`` atomically."""
    atomic_torch_save(obj, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``).

    Raises:
        TrainlabError: the file is missing, truncated, not a checkpoint, or holds code.
    """
    path = Path(path)
    if not path.is_file():
        raise TrainlabError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except (
        RuntimeError,
        EOFError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        ValueError,
        OSError,
    ) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TrainlabError(
            f"{path}: not a readable checkpoint (corrupt or truncated?): {first}"
        ) from None
    if not isinstance(obj, dict):
        raise TrainlabError(
            f"{path}: not a trainlab checkpoint (expected a dict, got {type(obj).__name__})"
        )
    return obj


def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every RNG a run draws from, as weights-only-safe values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": _python_state_to_safe(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    random.setstate(_python_state_from_safe(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])


def _python_state_to_safe(st: tuple[Any, ...]) -> dict[str, Any]:
    version, internal, gauss = st
    return {
        "version": version,
        "internal": torch.tensor(internal, dtype=torch.int64),
        "gauss": gauss,
    }


def _python_state_from_safe(d: dict[str, Any]) -> tuple[Any, ...]:
    return (d["version"], tuple(int(v) for v in d["internal"].tolist()), d["gauss"])
