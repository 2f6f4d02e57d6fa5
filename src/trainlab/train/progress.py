"""Progress output of a training run: a tqdm bar on a terminal, plain lines elsewhere, or nothing."""

from __future__ import annotations

import math
import sys
from typing import Any

from trainlab.train.callbacks import Callback, TrainState

_NOT_SHOWN = ("epoch", "time_s", "lr")


class Progress(Callback):
    """Show each epoch's metrics.

    On a terminal, one tqdm bar over the epochs with the latest metrics beside it; elsewhere (logs,
    notebooks' captured output) a line every ``log_every`` epochs (``0``: about twenty lines per
    run), always including the first and the last; nothing when ``quiet``.

    Args:
        quiet: print nothing.
        log_every: the line interval when no bar is shown.
    """

    def __init__(self, quiet: bool = False, log_every: int = 0) -> None:
        self.quiet = quiet
        self.log_every = log_every
        self.every = 1
        self.epochs = 0
        self.bar: Any = None

    def on_fit_start(self, state: TrainState) -> None:
        self.epochs = state.config.epochs
        self.every = self.log_every or max(1, math.ceil(self.epochs / 20))
        if not self.quiet and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.epochs, initial=state.epoch, unit="epoch", dynamic_ncols=True
            )

    def on_epoch_end(self, state: TrainState, record: dict[str, float]) -> None:
        if self.quiet:
            return
        shown = {k: v for k, v in record.items() if k not in _NOT_SHOWN}
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()}, refresh=False)
            self.bar.update(1)
            return
        epoch = int(record["epoch"])
        if epoch % self.every == 0 or epoch == self.epochs or epoch == 1:
            parts = "  ".join(f"{k} {v:.4g}" for k, v in shown.items())
            print(f"epoch {epoch}/{self.epochs}  {parts}  ({record['time_s']:.2f} s)", flush=True)

    def on_fit_end(self, state: TrainState) -> None:
        self.close()

    def on_exception(self, state: TrainState, error: BaseException) -> None:
        self.close()

    def close(self) -> None:
        """Close the bar (if any)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
