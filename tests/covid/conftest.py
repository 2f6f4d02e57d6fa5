"""Fixtures shared by the COVID tests: small generated files in the exact Kaggle layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainlab.covid._synth import synthetic_covid


@pytest.fixture(params=["2021", "2022"])
def synth(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    """A folder with generated ``covid.train.csv``/``covid.test.csv`` in each layout, and its name."""
    synthetic_covid(tmp_path, layout=request.param, n_states=4, train_windows=12, test_windows=5)
    return tmp_path, request.param
