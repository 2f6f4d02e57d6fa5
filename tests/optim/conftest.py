"""Fixtures for this folder's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    # These tests run many small ops; with other jobs on the machine, intra-op threads that wait
    # for a core make each op ~20x slower. One thread keeps them fast and deterministic.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
