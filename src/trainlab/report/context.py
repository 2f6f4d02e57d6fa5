"""What a section gets to work with: the data, the settings, a place for figures, a logger.

Sections never touch paths or seeds themselves: :class:`SectionContext` builds the Trainer's
config with the report's seed and device and forwards progress lines to the runner (what a
section's measurement uses), and names and saves figures (``<number>-<key>-<name>.png`` beside
``index.html``, what its rendering uses).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainlab.report.config import ReportConfig
from trainlab.report.data import ImageData
from trainlab.report.result import Figure

__all__ = ["SectionContext", "readable"]

FIG_DPI = 130


def readable(path: Path) -> None:
    """Give a finished output the usual permissions (atomic writes create files as 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


@dataclass
class SectionContext:
    """The report's data and settings as one section sees them."""

    config: ReportConfig
    out_dir: Path
    number: int
    key: str
    data: ImageData
    log_fn: Callable[[str], None]

    @property
    def quick(self) -> bool:
        return self.config.quick

    @property
    def seed(self) -> int:
        return self.config.seed

    def log(self, message: str) -> None:
        """One progress line (indented under the section's heading)."""
        self.log_fn(f"    {message}")

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        """Log ``what`` with its duration when the block ends."""
        t0 = time.perf_counter()
        yield
        self.log(f"{what} ({time.perf_counter() - t0:.1f} s)")

    def train_config(self, **overrides: Any) -> Any:
        """A :class:`trainlab.train.TrainConfig` with the report's seed and device, writing nothing."""
        from trainlab.train import TrainConfig

        kw: dict[str, Any] = {
            "seed": self.seed,
            "device": self.config.device,
            "quiet": True,
            "out_dir": None,
            "checkpoint": False,
        }
        kw.update(overrides)
        return TrainConfig(**kw)

    def figure_file(self, name: str) -> str:
        """The file name of this section's figure ``name``: ``<number>-<key>-<name>.png``."""
        return f"{self.number}-{self.key.replace('_', '-')}-{name}.png"

    def save_figure(self, fig: Any, name: str, caption: str, width: int = 860) -> Figure:
        """Save a figure from :func:`trainlab.report.figures.subplots` beside ``index.html``.

        Args:
            fig: the matplotlib figure.
            name: its short name (the file is :meth:`figure_file`).
            caption: the caption shown under it.
            width: display width in CSS pixels.

        Returns:
            The :class:`Figure` entry to put in the section's result.
        """
        from trainlab.report.figures import save_figure

        file = self.figure_file(name)
        save_figure(fig, self.out_dir / file, dpi=FIG_DPI)
        readable(self.out_dir / file)
        return Figure(file=file, caption=caption, width=width)
