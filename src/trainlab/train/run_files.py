"""The files a training run leaves in its output folder: resolved config, history and curves.

``config.json`` is written when training starts, so even a run that crashes says how it was
configured; ``history.csv``, ``history.json`` and ``curves.png`` when it ends. Every file is written
atomically. (Checkpoints are :class:`trainlab.train.checkpoint.Checkpoints`' business.)
"""

from __future__ import annotations

from pathlib import Path

from trainlab.config import save_config
from trainlab.train.callbacks import Callback, TrainState


class RunFiles(Callback):
    """Write ``config.json`` at fit start; ``history.csv``/``.json`` and ``curves.png`` at fit end.

    Args:
        out_dir: the run's folder (created if missing).
        plot: also draw the learning curves.
    """

    def __init__(self, out_dir: str | Path, plot: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.plot = plot

    def on_fit_start(self, state: TrainState) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        save_config(state.config, self.out_dir / "config.json")

    def on_fit_end(self, state: TrainState) -> None:
        history = state.history
        history.to_csv(self.out_dir / "history.csv")
        history.to_json(self.out_dir / "history.json")
        if self.plot and len(history) > 0:
            history.plot(self.out_dir / "curves.png")
