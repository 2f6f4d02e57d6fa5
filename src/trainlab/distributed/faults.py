"""What a distributed run does when a rank fails: stop every rank, show the error once.

A rank that raises (a bad file, a NaN, a bug) destroys the process group on its way out, so the
other ranks, waiting in a collective, get a communication error at once instead of waiting for the
timeout; ``torchrun`` then stops the whole group. The failing rank's error is the one shown; the
others raise :class:`PeerFailed`, one line saying that another rank failed. gloo may instead abort
a waiting rank from its transport thread when the connection closes (``SIGABRT``, before Python
sees an error); ``torchrun``'s summary then names that rank's signal.
"""

from __future__ import annotations

import atexit
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist

from trainlab.distributed.group import DistContext, setup
from trainlab.errors import TrainlabError

_MARKERS = (
    "connection closed",
    "connection reset",
    "broken pipe",
    "timed out",
)


class PeerFailed(TrainlabError):
    """Another rank failed; this rank stopped with it (the other rank's error says why)."""


def is_communication_error(error: BaseException) -> bool:
    """Whether ``error`` came from a collective breaking (a peer died or left), not from here."""
    if isinstance(error, getattr(dist, "DistError", ())):
        return True
    if type(error) is RuntimeError:
        text = str(error).lower()
        return any(m in text for m in _MARKERS)
    return False


@contextmanager
def training_session(device: str | torch.device = "auto") -> Iterator[DistContext | None]:
    """Join the process group for the body (``None`` in a single process); fail as a group.

    On an error the group is destroyed (peers stop at once); a communication error becomes
    :class:`PeerFailed`. A group created here is destroyed at interpreter exit, so code after
    the body (evaluation, a diagnosis) may still use it.

    Args:
        device: the device setting (see :func:`~trainlab.distributed.group.setup`).
    """
    ctx = setup(device)
    if ctx is not None and ctx.owned:
        atexit.register(ctx.close)
    try:
        yield ctx
    except BaseException as error:
        if ctx is None:
            raise
        peer = is_communication_error(error)
        _abandon(ctx)
        if peer:
            cause = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
            raise PeerFailed(
                f"rank {ctx.rank} stopped: another rank failed, its error is shown by that rank "
                f"({cause})"
            ) from None
        raise


def _abandon(ctx: DistContext) -> None:
    # Closing this rank's connections is what wakes the peers blocked in a collective.
    try:
        if dist.is_initialized():
            dist.destroy_process_group()
    except Exception:  # the group may already be broken; exiting is what matters
        pass
    ctx.owned = False
