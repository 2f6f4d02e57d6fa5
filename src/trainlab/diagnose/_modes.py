"""How a model is run during an analysis: evaluation or training mode, with nothing left changed.

A Hessian analysis calls the model hundreds of times. Each call must see the same function of
the parameters and must leave the model as it found it:

* ``mode="eval"`` (the default) puts every module in evaluation mode: BatchNorm uses its running
  statistics, dropout is off. The loss is then a plain deterministic function of the weights.
* ``mode="train"`` analyses the training-mode loss on the fixed batch: BatchNorm normalises with
  the batch statistics and dropout is on. Buffers (BatchNorm's running statistics and
  ``num_batches_tracked``) are swapped for copies during each call, so the analysis never changes
  them; the random number generator is re-seeded with the same seed before each call (and restored
  after), so every call draws the same dropout masks and the function stays deterministic.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch

Mode = Literal["eval", "train"]
MODES: tuple[str, ...] = ("eval", "train")


def check_mode(mode: str) -> Mode:
    """Return ``mode`` if it is ``"eval"`` or ``"train"``; raise ``ValueError`` otherwise."""
    if mode not in MODES:
        raise ValueError(f"mode must be 'eval' or 'train', got {mode!r}")
    return mode  # type: ignore[return-value]


@contextmanager
def module_mode(model: torch.nn.Module, mode: Mode, seed: int) -> Iterator[None]:
    """Run the body with ``model`` in ``mode``; restore every module's ``training`` flag after.

    In training mode the CPU (and current CUDA device's) random state is forked and seeded with
    ``seed``, so dropout draws the same masks on every call.
    """
    flags = [(m, m.training) for m in model.modules()]
    model.train(mode == "train")
    try:
        if mode == "train":
            devices = [torch.cuda.current_device()] if torch.cuda.is_initialized() else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                yield
        else:
            yield
    finally:
        for m, training in flags:
            m.training = training


def buffer_copies(model: torch.nn.Module, mode: Mode) -> dict[str, torch.Tensor]:
    """Buffers to hand to ``functional_call``: fresh copies in training mode, the originals else.

    In training mode BatchNorm updates its running statistics in place; giving it copies keeps the
    model's own buffers untouched however often the analysis calls the model.
    """
    if mode == "eval":
        return {}
    return {name: b.clone() for name, b in model.named_buffers()}
