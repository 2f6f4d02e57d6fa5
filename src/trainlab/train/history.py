"""The metrics of a training run, epoch by epoch, with CSV/JSON export and learning curves."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from trainlab._io import atomic_write_json, atomic_write_text, atomic_write_with


class History:
    """Per-epoch records (``epoch``, ``train_loss``, ``val_loss``, ``val_<metric>``, ``lr``, ``time_s``).

    Attributes:
        records: one dict per finished epoch.
        monitor: the key that decides the best epoch.
        mode: ``min`` or ``max``.
        best_epoch: the best epoch so far (1-based), or ``None``.
        best_value: its ``monitor`` value.
        stopped_early: whether early stopping ended the run.
    """

    def __init__(self, monitor: str = "val_loss", mode: str = "min") -> None:
        self.records: list[dict[str, float]] = []
        self.monitor = monitor
        self.mode = mode
        self.best_epoch: int | None = None
        self.best_value: float | None = None
        self.stopped_early = False

    def append(self, record: dict[str, float]) -> None:
        self.records.append(dict(record))

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: str) -> list[float]:
        """All values of ``key`` in epoch order (``nan`` where an epoch lacks it)."""
        return [r.get(key, math.nan) for r in self.records]

    def keys(self) -> list[str]:
        seen: dict[str, None] = {}
        for r in self.records:
            seen.update(dict.fromkeys(r))
        return list(seen)

    @property
    def last(self) -> dict[str, float]:
        return self.records[-1] if self.records else {}

    def state_dict(self) -> dict[str, Any]:
        return {
            "records": [dict(r) for r in self.records],
            "monitor": self.monitor,
            "mode": self.mode,
            "best_epoch": self.best_epoch,
            "best_value": self.best_value,
            "stopped_early": self.stopped_early,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.records = [dict(r) for r in state["records"]]
        self.monitor = state["monitor"]
        self.mode = state["mode"]
        self.best_epoch = state["best_epoch"]
        self.best_value = state["best_value"]
        self.stopped_early = state["stopped_early"]

    def to_json(self, path: str | Path) -> None:
        """Write the whole history (records and best epoch) as JSON, atomically."""
        atomic_write_json(path, self.state_dict())

    def to_csv(self, path: str | Path) -> None:
        """Write one row per epoch, atomically."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.keys(), lineterminator="\n")
        writer.writeheader()
        for r in self.records:
            writer.writerow(r)
        atomic_write_text(path, buf.getvalue())

    def plot(self, path: str | Path, title: str | None = None) -> None:
        """Learning curves: losses on the left, other validation metrics on the right, as a PNG."""
        plot_curves({"": self}, path, title=title)


def plot_curves(histories: dict[str, History], path: str | Path, title: str | None = None) -> None:
    """Overlay the learning curves of several runs (label -> history) in one PNG.

    Losses go on the left, other validation metrics on the right. Draws on a ``Figure`` with the
    Agg canvas, so matplotlib's backend and pyplot's state are left as they were.

    Args:
        histories: label -> history (label ``""`` for a single unlabelled run).
        path: the PNG to write (atomically).
        title: an optional figure title.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metric_keys: list[str] = []
    for h in histories.values():
        for k in h.keys():
            if k.startswith("val_") and k != "val_loss" and k not in metric_keys:
                metric_keys.append(k)
    ncols = 1 + (1 if metric_keys else 0)
    fig = Figure(figsize=(6 * ncols, 4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)
    _draw_losses(axes[0, 0], histories)
    if metric_keys:
        _draw_metrics(axes[0, 1], histories, metric_keys)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    atomic_write_with(path, lambda p: fig.savefig(p, dpi=110))


def _draw_losses(ax: Any, histories: dict[str, History]) -> None:
    for label, h in histories.items():
        prefix = f"{label} " if label else ""
        epochs = h["epoch"]
        (line,) = ax.plot(epochs, h["train_loss"], label=f"{prefix}train")
        if "val_loss" in h.keys():
            ax.plot(
                epochs, h["val_loss"], "--", color=line.get_color(), label=f"{prefix}validation"
            )
        if h.best_epoch is not None and h.monitor == "val_loss":
            ax.axvline(h.best_epoch, color=line.get_color(), alpha=0.3, lw=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    losses = [v for h in histories.values() for k in ("train_loss", "val_loss") for v in h[k]]
    finite = [v for v in losses if math.isfinite(v) and v > 0]
    if finite and max(finite) / min(finite) > 50:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _draw_metrics(ax: Any, histories: dict[str, History], keys: list[str]) -> None:
    for label, h in histories.items():
        for k in keys:
            if k in h.keys():
                ax.plot(h["epoch"], h[k], label=f"{label} {k}".strip())
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation metric")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
