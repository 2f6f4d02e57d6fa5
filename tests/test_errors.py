"""The error types: messages, and errors that survive a trip between processes."""

from __future__ import annotations

import pickle
from pathlib import Path

from trainlab.errors import DataError


def test_data_error_pickles_intact() -> None:
    e = pickle.loads(pickle.dumps(DataError(Path("a.wav"), "truncated")))
    assert isinstance(e, DataError) and str(e) == "a.wav: truncated"
    assert e.path == Path("a.wav") and e.problem == "truncated"
