"""Rank-0-only output: one process prints and writes files, the others stay quiet."""

from __future__ import annotations

from typing import Any

from trainlab.distributed.env import detect_env


def is_main_process() -> bool:
    """Whether this process is rank 0 (always true outside ``torchrun``)."""
    return detect_env().is_main


def print_main(*args: Any, **kwargs: Any) -> None:
    """``print`` on rank 0 only."""
    if is_main_process():
        print(*args, **kwargs)
