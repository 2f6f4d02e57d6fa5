"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

# The suite trains many tiny models: one thread avoids oversubscribing small machines, where
# several threads make small matrix products many times slower, and keeps runs repeatable.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def one_thread():
    """Every test starts with one thread, whatever the test before it set (a command's
    ``--threads``, a run's ``threads``), and leaves the count as it found it."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


@pytest.fixture
def shared_data() -> Path:
    """The read-only real data folder beside the project; skips the test where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


def shared_subdir(name: str) -> Path:
    """``../shared/data/<name>``, or skip the calling test with the reason."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real data folder {name!r} not found at {path}")
    return path
