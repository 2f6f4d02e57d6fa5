"""The report's figure helpers: the report's look on each figure, nothing changed globally."""

from __future__ import annotations

import numpy as np

from trainlab.report.figures import (
    LEGEND_SIZE,
    PALETTE,
    TITLE_SIZE,
    legend_below,
    plot_curves,
    save_figure,
    subplots,
)
from trainlab.report.surfaces import double_well, draw_surface


def test_figures_are_styled_per_axes_and_leave_matplotlib_alone(tmp_path, matplotlib_untouched):
    fig, axes = subplots(2, width=4.0, height=3.0)
    assert axes.shape == (1, 2) and tuple(fig.get_size_inches()) == (8.0, 3.0)
    plot_curves(
        axes[0, 0], {"a": [3.0, 2.0, 1.0], "b": ([1, 2], [2.0, 1.5])}, title="T", log_y=True
    )
    draw_surface(axes[0, 1], double_well(), {"path": np.array([[2.0, 1.5], [1.0, 0.5]])})
    legend_below(fig, source=axes[0, 0])
    save_figure(fig, tmp_path / "f.png", dpi=60)
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    ax = axes[0, 0]
    assert not ax.spines["top"].get_visible() and not ax.spines["right"].get_visible()
    assert ax.title.get_fontsize() == TITLE_SIZE and ax.get_yscale() == "log"
    assert [line.get_color() for line in ax.get_lines()] == PALETTE[:2]
    assert not ax.get_legend().get_frame_on()
    assert ax.get_legend().get_texts()[0].get_fontsize() == LEGEND_SIZE
    assert any(line.get_visible() for line in ax.get_xgridlines())
    # the surface panel keeps its own framed legend and no grid
    surface_legend = axes[0, 1].get_legend()
    assert (
        surface_legend.get_frame_on()
        and surface_legend.get_texts()[0].get_fontsize() == LEGEND_SIZE
    )
    assert not any(line.get_visible() for line in axes[0, 1].get_xgridlines())
    assert 0 < fig._legend_share <= 0.35


def test_the_default_colour_cycle_is_the_palette(matplotlib_untouched):
    _, axes = subplots()
    lines = [axes[0, 0].plot([0, 1])[0] for _ in range(3)]
    assert [line.get_color() for line in lines] == PALETTE[:3]
