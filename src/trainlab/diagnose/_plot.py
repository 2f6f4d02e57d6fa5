"""Figures for the diagnostics (matplotlib is imported here, lazily, and never through pyplot)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trainlab._io import atomic_write_with


def _figure(width: float = 6.0, height: float = 4.0) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=120)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path) -> None:
    fig.tight_layout()
    atomic_write_with(Path(path), lambda tmp: fig.savefig(tmp))


def save_density_plot(path: str | Path, grid: np.ndarray, density: np.ndarray, title: str) -> None:
    """A spectral density on a log axis, with λ = 0 marked."""
    fig = _figure()
    ax = fig.add_subplot()
    floor = max(float(density.max()) * 1e-8, 1e-300)
    ax.semilogy(grid, np.maximum(density, floor), color="C0")
    ax.axvline(0.0, color="0.5", lw=0.8, ls="--")
    ax.set_xlabel("eigenvalue λ")
    ax.set_ylabel("density")
    ax.set_title(title)
    _save(fig, path)


def save_eigenvalue_plot(path: str | Path, eigenvalues: np.ndarray, title: str) -> None:
    """A histogram of an exact spectrum (log counts), with λ = 0 marked."""
    fig = _figure()
    ax = fig.add_subplot()
    ax.hist(eigenvalues, bins=min(100, max(10, len(eigenvalues) // 5)), color="C0", log=True)
    ax.axvline(0.0, color="0.5", lw=0.8, ls="--")
    ax.set_xlabel("eigenvalue λ")
    ax.set_ylabel("count")
    ax.set_title(title)
    _save(fig, path)


def save_study_plot(
    path: str | Path,
    losses: Sequence[float],
    ratios: Sequence[float],
    verdicts: Sequence[str],
    title: str,
) -> None:
    """The lecture's scatter: minimum ratio against training loss, coloured by verdict."""
    fig = _figure()
    ax = fig.add_subplot()
    styles = {
        "saddle point": ("C3", "o"),
        "local minimum": ("C2", "^"),
        "degenerate": ("C0", "s"),
        "local maximum": ("C4", "v"),
        "not a critical point": ("0.6", "x"),
    }
    losses_a, ratios_a, verdicts_a = np.asarray(losses), np.asarray(ratios), np.asarray(verdicts)
    for verdict, (color, marker) in styles.items():
        sel = verdicts_a == verdict
        if sel.any():
            ax.scatter(
                losses_a[sel], ratios_a[sel], c=color, marker=marker, s=28,
                label=f"{verdict} ({int(sel.sum())})",
            )  # fmt: skip
    if losses_a.size and losses_a.min() > 0 and losses_a.max() / losses_a.min() > 20:
        ax.set_xscale("log")
    ax.set_xlabel("training loss")
    ax.set_ylabel("minimum ratio (share of positive eigenvalues)")
    ax.set_ylim(min(0.5, float(np.min(ratios_a, initial=1.0)) - 0.05), 1.02)
    ax.axhline(1.0, color="0.7", lw=0.8, ls=":")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, path)
