"""The process group of a ``torchrun`` run: created from the environment, backend from the device.

:func:`setup` reads :func:`~trainlab.distributed.env.detect_env`; in a single process it returns
``None`` and nothing changes. Under ``torchrun`` it initialises PyTorch's default process group
(``gloo`` for the CPU, ``nccl`` for CUDA, each rank on GPU ``LOCAL_RANK``) unless one exists
already, and returns a :class:`DistContext` that knows the rank, the device and whether it owns
the group (then :meth:`DistContext.close` destroys it). Collectives time out after
``TRAINLAB_DIST_TIMEOUT`` seconds (default 300), so a rank that dies without closing its
connections cannot hang the others forever.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from trainlab.device import resolve_device
from trainlab.distributed.env import DistEnv, detect_env
from trainlab.errors import ConfigError

DEFAULT_TIMEOUT_S = 300.0


def backend_for(device: torch.device) -> str:
    """``nccl`` for CUDA devices, ``gloo`` for everything else."""
    return "nccl" if device.type == "cuda" else "gloo"


def collective_timeout() -> datetime.timedelta:
    """The collectives' timeout: ``TRAINLAB_DIST_TIMEOUT`` seconds, default 300."""
    raw = os.environ.get("TRAINLAB_DIST_TIMEOUT", str(DEFAULT_TIMEOUT_S))
    try:
        seconds = float(raw)
    except ValueError:
        raise ConfigError(f"TRAINLAB_DIST_TIMEOUT={raw!r}: expected seconds") from None
    if not seconds > 0:
        raise ConfigError(f"TRAINLAB_DIST_TIMEOUT={raw!r}: must be positive")
    return datetime.timedelta(seconds=seconds)


@dataclass
class DistContext:
    """A running process group as trainlab uses it.

    Attributes:
        env: rank, world size, local rank.
        device: this rank's device (``cuda:LOCAL_RANK`` under CUDA).
        owned: whether :func:`setup` created the group (and :meth:`close` destroys it).
    """

    env: DistEnv
    device: torch.device
    owned: bool = False

    @property
    def rank(self) -> int:
        return self.env.rank

    @property
    def world_size(self) -> int:
        return self.env.world_size

    @property
    def is_main(self) -> bool:
        return self.env.rank == 0

    def close(self) -> None:
        """Destroy the process group if this context created it (idempotent)."""
        if self.owned and dist.is_initialized():
            dist.destroy_process_group()
        self.owned = False


def setup(device: str | torch.device = "auto") -> DistContext | None:
    """Join the run's process group when ``torchrun`` started this process.

    Args:
        device: the device setting (``auto``, ``cpu``, ``cuda``...); under CUDA each rank takes
            ``cuda:LOCAL_RANK``.

    Returns:
        A :class:`DistContext`, or ``None`` for a single process (``WORLD_SIZE`` unset or 1).
    """
    env = detect_env()
    if not env.distributed:
        return None
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(dev)
    if dist.is_initialized():
        if dist.get_world_size() != env.world_size:
            raise ConfigError(
                f"a process group of {dist.get_world_size()} ranks exists, but WORLD_SIZE is "
                f"{env.world_size}"
            )
        return DistContext(env, dev, owned=False)
    timeout = collective_timeout()
    dist.init_process_group(
        backend_for(dev), rank=env.rank, world_size=env.world_size, timeout=timeout,
        store=_restart_store(env, timeout),
    )  # fmt: skip
    return DistContext(env, dev, owned=True)


def _restart_store(env: DistEnv, timeout: datetime.timedelta) -> dist.Store | None:
    """torchrun's store, with keys of this restart attempt only (``None``: not under torchrun).

    After ``--max-restarts`` restarts a failed group, the agent's store still holds the keys of
    the previous attempt's workers; without a per-attempt prefix the new workers would read the
    dead workers' addresses and fail to connect.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    tcp = dist.TCPStore(
        os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), env.world_size,
        is_master=False, timeout=timeout,
    )  # fmt: skip
    return dist.PrefixStore(f"/trainlab/attempt_{attempt}", tcp)


def current() -> DistContext | None:
    """The context of an existing default process group (``None`` when there is none)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    env = DistEnv(dist.get_rank(), dist.get_world_size(), detect_env().local_rank)
    backend = dist.get_backend()
    device = torch.device("cuda", env.local_rank) if backend == "nccl" else torch.device("cpu")
    return DistContext(env, device, owned=False)
