"""Matplotlib helpers shared by the report's sections: one look for every figure.

matplotlib is imported inside the functions (with the non-interactive Agg backend), so importing
the report costs nothing where no figure is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["PALETTE", "legend_below", "plot_curves", "subplots"]

# Colour-blind-safe (Okabe-Ito), in the order series are drawn.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]


def subplots(
    ncols: int = 1, nrows: int = 1, width: float = 5.2, height: float = 3.6, **kw: Any
) -> Any:
    """``plt.subplots`` with the report's style; panels ``width`` x ``height`` inches each."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from cycler import cycler

    plt.rcParams.update(
        {
            "font.size": 10,
            "axes.titlesize": 11,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "legend.frameon": False,
            "legend.fontsize": 8.5,
            "axes.prop_cycle": cycler(color=PALETTE),
        }
    )
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kw)


def plot_curves(
    ax: Any,
    curves: Mapping[str, Any],
    *,
    title: str = "",
    xlabel: str = "epoch",
    ylabel: str = "loss",
    log_y: bool = False,
    styles: Mapping[str, Mapping[str, Any]] | None = None,
    x_start: int = 1,
) -> None:
    """Draw one line per named series (x = 1, 2, ... unless the series is a (x, y) pair)."""
    for i, (label, ys) in enumerate(curves.items()):
        style = dict(color=PALETTE[i % len(PALETTE)], lw=1.6)
        style.update((styles or {}).get(label, {}))
        if isinstance(ys, tuple) and len(ys) == 2:
            xs, ys = ys
        else:
            xs = list(range(x_start, x_start + len(ys)))
        ax.plot(list(xs), list(ys), label=label, **style)
    if log_y:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()


def legend_below(
    fig: Any,
    handles: Sequence[Any] | None = None,
    labels: Sequence[str] | None = None,
    ncol: int = 5,
    source: Any = None,
) -> None:
    """One legend for the whole figure, centred below the panels.

    Args:
        fig: the figure.
        handles, labels: the entries (default: those of ``source``, an axes).
        ncol: entries per row.
    """
    if handles is None:
        handles, labels = source.get_legend_handles_labels()
    rows = -(-len(handles) // ncol)
    fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False, fontsize=9)
    # save_figure reserves this share of the height for the legend
    fig._legend_share = min(0.35, (0.06 + 0.055 * rows) * 3.6 / fig.get_figheight())
