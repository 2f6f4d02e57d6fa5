"""Where this process stands in a distributed run, read from the variables ``torchrun`` sets.

``torchrun`` (``python -m torch.distributed.run``) starts one process per rank and gives each
``RANK`` (its place among all processes), ``WORLD_SIZE`` (how many there are) and ``LOCAL_RANK``
(its place on this machine, which picks its GPU), plus ``MASTER_ADDR``/``MASTER_PORT`` for the
rendezvous. A process without them, or with ``WORLD_SIZE=1``, is an ordinary single-process run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from trainlab.errors import ConfigError

_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistEnv:
    """A process's place in the run: ``rank`` of ``world_size``, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        """Whether more than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that prints and writes files."""
        return self.rank == 0


def restarted() -> bool:
    """Whether ``torchrun --max-restarts`` restarted this group after a failure (a run should
    then resume from its checkpoint)."""
    return os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") not in ("", "0")


def detect_env(environ: Mapping[str, str] | None = None) -> DistEnv:
    """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (missing ones: a single process).

    Args:
        environ: the variables to read (default ``os.environ``).

    Returns:
        The :class:`DistEnv`.

    Raises:
        ConfigError: a variable is not a non-negative integer, or ``RANK >= WORLD_SIZE``.
    """
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return DistEnv()
    values = {}
    for name in _VARS:
        raw = env.get(name, "0" if name != "WORLD_SIZE" else "1")
        try:
            values[name] = int(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r}: expected a non-negative integer") from None
        if values[name] < 0:
            raise ConfigError(f"{name}={raw!r}: expected a non-negative integer")
    rank, world, local = values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"]
    if world < 1 or rank >= world:
        raise ConfigError(f"RANK={rank} must be below WORLD_SIZE={world}")
    return DistEnv(rank, world, local)
