"""Fixtures of the phoneme tests: one torch thread, a small synthetic data folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainlab.phoneme._synth import write_synthetic_timit


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3000 training and 600 test rows in the competition's layout, utterances of ~50 frames."""
    return write_synthetic_timit(tmp_path_factory.mktemp("ph") / "d", 3000, 600, mean_length=50)
