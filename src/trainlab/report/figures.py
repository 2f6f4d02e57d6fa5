"""Matplotlib helpers shared by the report's sections: one look for every figure.

Figures are drawn on a :class:`matplotlib.figure.Figure` with its own Agg canvas, never through
pyplot, and the report's style is applied to each figure's axes rather than to
``matplotlib.rcParams``: rendering the report leaves the backend and every rc setting as it found
them. matplotlib is imported inside the functions, so importing the report costs nothing where no
figure is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "PALETTE",
    "legend",
    "legend_below",
    "plot_curves",
    "save_figure",
    "style_axes",
    "subplots",
]

# Colour-blind-safe (Okabe-Ito), in the order series are drawn.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]

FONT_SIZE = 10.0
TITLE_SIZE = 11.0
LEGEND_SIZE = 8.5
GRID_ALPHA = 0.3


def style_axes(ax: Any) -> None:
    """The report's look on one axes: no top/right spines, a light grid, the palette."""
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, alpha=GRID_ALPHA)
    ax.set_prop_cycle(color=PALETTE)
    ax.tick_params(labelsize=FONT_SIZE)
    ax.xaxis.label.set_fontsize(FONT_SIZE)
    ax.yaxis.label.set_fontsize(FONT_SIZE)


def subplots(
    ncols: int = 1, nrows: int = 1, width: float = 5.2, height: float = 3.6
) -> tuple[Any, Any]:
    """A figure of ``nrows`` x ``ncols`` styled panels, ``width`` x ``height`` inches each.

    Returns:
        ``(figure, axes)`` with ``axes`` a 2-D array indexed ``[row, column]``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        style_axes(ax)
    return fig, axes


def legend(ax: Any, **kwargs: Any) -> Any:
    """``ax.legend`` in the report's style (no frame, small type) unless ``kwargs`` say otherwise."""
    return ax.legend(**{"frameon": False, "fontsize": LEGEND_SIZE, **kwargs})


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
    legend(ax)


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
        source: the axes whose entries are used when ``handles`` is not given.
    """
    if handles is None:
        handles, labels = source.get_legend_handles_labels()
    rows = -(-len(handles) // ncol)
    fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False, fontsize=9)
    # save_figure reserves this share of the height for the legend
    fig._legend_share = min(0.35, (0.06 + 0.055 * rows) * 3.6 / fig.get_figheight())


def save_figure(fig: Any, path: Path, dpi: int) -> None:
    """Lay out ``fig`` (leaving room for a :func:`legend_below`) and write it as a PNG at ``path``."""
    from trainlab._io import atomic_write_with

    for ax in fig.axes:  # set_title resets the size from rcParams: restyle at the end
        ax.title.set_fontsize(TITLE_SIZE)
    share = getattr(fig, "_legend_share", 0.0)
    fig.tight_layout(rect=(0, share, 1, 1))
    atomic_write_with(path, lambda p: fig.savefig(p, dpi=dpi))
