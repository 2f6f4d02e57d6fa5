"""The COVID report's figures: written as PNG files without touching matplotlib's global state."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from trainlab.covid.report import plot_predictions


def test_prediction_figure_leaves_matplotlib_state_alone(tmp_path: Path) -> None:
    import matplotlib

    had_pyplot = "matplotlib.pyplot" in sys.modules
    rc = matplotlib.rcParams.copy()  # unlike get_backend(), copying resolves no backend
    rng = np.random.default_rng(0)
    y = rng.normal(10, 2, size=50)
    oof = {"model": y + rng.normal(0, 0.5, 50), "ridge": y + rng.normal(0, 0.7, 50)}
    oof["ridge"][:5] = np.nan  # rows never validated are left out
    path = tmp_path / "predictions.png"
    plot_predictions(y, oof, path, "blocked")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.rcParams.copy() == rc  # the backend entry included
    if not had_pyplot:
        assert "matplotlib.pyplot" not in sys.modules
