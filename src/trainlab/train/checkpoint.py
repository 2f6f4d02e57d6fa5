"""Checkpoints that restore a run exactly: model, optimizer, schedule, RNG states, epoch, history.

Files are written atomically (temporary file + rename) and read with ``weights_only=True``, so a
checkpoint can never run code, and a crash never leaves a half-written one. :class:`Checkpoints`
is the callback that writes ``checkpoints/last.pt`` and ``best.pt`` during :func:`fit` and, with
``resume``, restores the run from ``last.pt`` before the first epoch; continuing an interrupted run
gives the same weights, bit for bit, as never stopping (on the CPU, in deterministic mode).

Under ``torchrun`` every rank runs the callback (so every rank resumes), rank 0 alone writes the
files, and ``last.pt`` holds each rank's random-generator states (ranks draw different amounts
when their shards differ in size), so a restarted group continues exactly where it stopped. The
output folder must be one that every rank can read (a shared filesystem across machines).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainlab._io import atomic_torch_save, load_torch
from trainlab.config import to_dict
from trainlab.distributed.group import DistContext
from trainlab.distributed.reduce import gather_objects
from trainlab.errors import DataError
from trainlab.train.callbacks import Callback, TrainState
from trainlab.train.config import TrainConfig
from trainlab.train.early_stopping import EarlyStopping


def save_checkpoint(obj: dict[str, Any], path: str | Path) -> None:
    """Write ``obj`` (tensors, numbers, strings, lists and dicts only) to ``path`` atomically."""
    atomic_torch_save(obj, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``).

    Args:
        path: the file.
        map_location: where its tensors go (they are read on the CPU, then moved).

    Returns:
        The checkpoint's dict.

    Raises:
        DataError: the file is missing, truncated, not a checkpoint, or holds code.
    """
    obj = load_torch(path, "checkpoint")
    if not isinstance(obj, dict):
        raise DataError(
            path, f"not a trainlab checkpoint (expected a dict, got {type(obj).__name__})"
        )
    if torch.device(map_location).type != "cpu":
        obj = _to_device(obj, torch.device(map_location))
    return obj


def checkpoint_dir(config: TrainConfig) -> Path | None:
    """Where :func:`fit` keeps ``last.pt`` and ``best.pt`` for ``config`` (``None``: no out_dir)."""
    return Path(config.out_dir) / "checkpoints" if config.out_dir else None


class Checkpoints(Callback):
    """Write ``last.pt`` (everything needed to resume) and ``best.pt`` (the best weights).

    ``best.pt`` is written whenever the epoch is the new best; ``last.pt`` every ``checkpoint_every``
    epochs, at the last epoch and when the run stops early. Place it after :class:`EarlyStopping`
    (it reads the best epoch that one records) and before callbacks that may raise, so an
    interruption inside them loses nothing.

    Args:
        directory: the ``checkpoints`` folder.
        stopper: the run's early stopping, whose state and best weights are saved and restored.
        generator: the data-shuffling generator, whose state is saved and restored.
        resume: restore from ``directory/last.pt`` at fit start when it exists.
        save: write checkpoints (``False``: only resume).
        dist: the process group under ``torchrun`` (rank 0 writes; every rank restores).
    """

    def __init__(
        self,
        directory: Path,
        stopper: EarlyStopping,
        generator: torch.Generator | None,
        resume: bool = False,
        save: bool = True,
        dist: DistContext | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.stopper = stopper
        self.generator = generator
        self.resume = resume
        self.save = save
        self.dist = dist

    @property
    def _writes(self) -> bool:
        return self.save and (self.dist is None or self.dist.is_main)

    def on_fit_start(self, state: TrainState) -> None:
        if self.resume and (self.directory / "last.pt").is_file():
            self.restore(state)

    def on_epoch_end(self, state: TrainState, record: dict[str, float]) -> None:
        if not self.save:
            return
        epoch, cfg = state.epoch, state.config
        if state.history.best_epoch == epoch and self._writes:
            save_checkpoint(
                {"model": state.model.state_dict(), "epoch": epoch}, self.directory / "best.pt"
            )
        if epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs or state.stop:
            run = self.run_state(state)  # a collective under torchrun: every rank takes part
            if self._writes:
                save_checkpoint(run, self.directory / "last.pt")

    def run_state(self, state: TrainState) -> dict[str, Any]:
        """Everything ``last.pt`` holds (under ``torchrun``: with every rank's RNG states)."""
        run = {
            "model": state.model.state_dict(),
            "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict(),
            "epoch": state.epoch,
            "step": state.step,
            "history": state.history.state_dict(),
            "early_stopping": self.stopper.state_dict(),
            "rng": rng_state(self.generator),
            "config": to_dict(state.config),
        }
        if self.dist is not None:
            run["rng_ranks"] = gather_objects(run["rng"])
        return run

    def restore(self, state: TrainState) -> None:
        """Put the run saved in ``last.pt`` (and the best weights of ``best.pt``) into ``state``."""
        ckpt = load_checkpoint(self.directory / "last.pt")
        state.model.load_state_dict(ckpt["model"])
        state.optimizer.load_state_dict(ckpt["optimizer"])
        state.scheduler.load_state_dict(ckpt["scheduler"])
        state.epoch = int(ckpt["epoch"])
        state.step = int(ckpt["step"])
        state.history.load_state_dict(ckpt["history"])
        best = None
        if (self.directory / "best.pt").is_file():
            best = load_checkpoint(self.directory / "best.pt", state.device)["model"]
        self.stopper.load_state_dict(ckpt["early_stopping"], best)
        if self.stopper.should_stop:
            state.stop = True
        rng = ckpt["rng"]
        if self.dist is not None and len(ckpt.get("rng_ranks", ())) == self.dist.world_size:
            rng = ckpt["rng_ranks"][self.dist.rank]
        set_rng_state(rng, self.generator)


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


def _to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj
