"""Fixtures for the doctor's tests: one thread, a run folder factory."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def one_thread():
    """The test bed's models are tiny: one thread is faster, and much faster on a busy machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
