"""Two-parameter loss surfaces for the optimizer sections, and trajectories on them.

The chapter draws optimizers as paths on a loss contour. These functions make the pictures from
measurements: :func:`trajectory` runs any registered optimizer (and schedule) on a surface with
PyTorch autograd, and :func:`draw_surface` draws the contours with the paths on top.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from trainlab.report import figures

__all__ = ["Surface", "double_well", "draw_surface", "elongated_bowl", "trajectory"]


@dataclass
class Surface:
    """A loss of two parameters ``w = (w1, w2)``, with its known minima, for drawing."""

    name: str
    formula: str
    fn: Callable[[Tensor, Tensor], Tensor]  # elementwise in w1, w2
    extent: tuple[float, float, float, float]  # w1 min, w1 max, w2 min, w2 max
    minima: dict[str, tuple[float, float]] = field(default_factory=dict)
    log_levels: bool = False

    def loss(self, w: Sequence[float]) -> float:
        return float(self.fn(torch.tensor(float(w[0])), torch.tensor(float(w[1]))))

    def nearest_minimum(self, w: Sequence[float]) -> str:
        """The name of the known minimum closest to ``w``."""
        return min(
            self.minima,
            key=lambda k: (self.minima[k][0] - w[0]) ** 2 + (self.minima[k][1] - w[1]) ** 2,
        )


def double_well(tilt: float = 0.3, curvature: float = 0.5) -> Surface:
    """``(w1² - 1)² + tilt·w1 + curvature·w2²``: a local minimum at w1 ≈ +0.96, a lower one at ≈ -1.04."""
    fn = lambda a, b: (a**2 - 1) ** 2 + tilt * a + curvature * b**2  # noqa: E731
    # minima of the quartic in w1: 4a^3 - 4a + tilt = 0 (outer roots)
    roots = sorted(r.real for r in np.roots([4.0, 0.0, -4.0, tilt]) if abs(r.imag) < 1e-12)
    return Surface(
        name="double well",
        formula=f"L(w) = (w1² − 1)² + {tilt:g}·w1 + {curvature:g}·w2²",
        fn=fn,
        extent=(-2.0, 2.4, -1.6, 1.8),
        minima={"global minimum": (roots[0], 0.0), "local minimum": (roots[-1], 0.0)},
    )


def elongated_bowl(a: float = 0.01, b: float = 10.0) -> Surface:
    """``(a·w1² + b·w2²)/2``: convex, but ``b/a`` times steeper across the valley than along it."""
    fn = lambda x, y: 0.5 * (a * x**2 + b * y**2)  # noqa: E731
    return Surface(
        name="elongated bowl",
        formula=f"L(w) = ({a:g}·w1² + {b:g}·w2²) / 2  (condition number {b / a:g})",
        fn=fn,
        extent=(-11.0, 3.0, -1.6, 1.6),
        minima={"minimum": (0.0, 0.0)},
        log_levels=True,
    )


def trajectory(
    surface: Surface,
    start: Sequence[float],
    optimizer: str,
    optimizer_kwargs: Mapping[str, Any],
    steps: int,
    scheduler: str = "constant",
    scheduler_kwargs: Mapping[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Run a registered optimizer on ``surface`` from ``start``.

    Args:
        surface: the loss.
        start: the initial ``(w1, w2)``.
        optimizer: a name from :func:`trainlab.optim.list_optimizers`, with its ``optimizer_kwargs``.
        steps: number of updates.
        scheduler: a name from :func:`trainlab.optim.list_schedulers` (stepped once per update).

    Returns:
        ``(path, losses)``: positions ``(steps + 1, 2)`` and losses ``(steps + 1,)``, float64. A
        path that overflows stops: its remaining rows are NaN and their losses infinite.
    """
    from trainlab.optim import create_optimizer, create_scheduler

    w = torch.tensor([float(start[0]), float(start[1])], dtype=torch.float64, requires_grad=True)
    opt = create_optimizer(optimizer, [w], **dict(optimizer_kwargs))
    sched = create_scheduler(scheduler, opt, steps, **dict(scheduler_kwargs or {}))
    path = np.full((steps + 1, 2), np.nan)
    losses = np.full(steps + 1, np.inf)
    for i in range(steps + 1):
        loss = surface.fn(w[0], w[1])
        point = w.detach().numpy().copy()
        value = float(loss.detach())
        if not (np.isfinite(value) and np.all(np.isfinite(point))):
            break  # diverged: the rest stays NaN (not drawn) with an infinite loss
        path[i], losses[i] = point, value
        if i == steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return path, losses


def draw_surface(
    ax: Any,
    surface: Surface,
    paths: Mapping[str, np.ndarray],
    title: str = "",
    styles: Mapping[str, Mapping[str, Any]] | None = None,
    every: int = 1,
    legend: str | None = "lower left",
) -> None:
    """Contours of ``surface`` with each named path drawn on top (markers every ``every`` steps)."""
    x0, x1, y0, y1 = surface.extent
    gx, gy = np.meshgrid(np.linspace(x0, x1, 300), np.linspace(y0, y1, 240))
    z = surface.fn(torch.from_numpy(gx), torch.from_numpy(gy)).numpy()
    if surface.log_levels:
        levels = np.geomspace(max(z.min(), 1e-4), z.max(), 18)
        ax.contour(gx, gy, z, levels=levels, colors="#9aa4b2", linewidths=0.7)
    else:  # levels at quantiles of the loss: detail near the minima, not only on the walls
        levels = np.unique(np.quantile(z, np.linspace(0, 1, 26)))
        ax.contourf(gx, gy, z, levels=levels, cmap="Blues_r", alpha=0.35)
        ax.contour(gx, gy, z, levels=levels, colors="#8a94a3", linewidths=0.5)
    for i, (label, path) in enumerate(paths.items()):
        style = {
            "color": figures.PALETTE[i % len(figures.PALETTE)],
            "lw": 1.5,
            "ms": 2.5,
            "marker": "o",
        }
        style.update((styles or {}).get(label, {}))
        ax.plot(path[::every, 0], path[::every, 1], label=label, **style)
        ax.plot(path[0, 0], path[0, 1], marker="s", color="black", ms=6)
    for name, (mx, my) in surface.minima.items():
        ax.plot(mx, my, marker="*", color="gold", mec="black", ms=13, zorder=5)
        ax.annotate(
            name, (mx, my), xytext=(0, -16), textcoords="offset points", ha="center", fontsize=8.5
        )
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("w1")
    ax.set_ylabel("w2")
    ax.grid(False)
    ax.set_title(title)
    if legend:
        figures.legend(ax, loc=legend, framealpha=0.85, frameon=True)
