"""Choose the compute device: ``auto`` picks CUDA, else Apple's MPS, else the CPU."""

from __future__ import annotations

import torch

from trainlab.errors import TrainlabError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"`` into a usable device.

    Raises:
        TrainlabError: when the named device is not available on this machine.
    """
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise TrainlabError(f"unknown device {name!r}; use auto, cpu, cuda or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainlabError(
            "device 'cuda' was asked for but no CUDA GPU is available; use --device auto"
        )
    if dev.type == "mps" and not (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    ):
        raise TrainlabError("device 'mps' was asked for but is not available; use --device auto")
    return dev
