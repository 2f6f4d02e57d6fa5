"""The doctor's records: one JSON object per line, appended and flushed, readable after a crash.

A monitored run writes ``RUN_DIR/doctor.jsonl``. Every line is one complete JSON object with a
``kind``:

=============  ==========================================================================
``meta``       the model's layers and dropout probabilities, the optimizer and its
               hyperparameters, the settings
``step``       loss (mean since the last record), lr, gradient norm overall and per layer,
               weight norms, update-to-weight ratios per layer (a light record between
               full ones holds the loss alone)
``probe``      per-layer activation mean/std, dead ReLU-family and saturated sigmoid/tanh
               shares on the fixed probe batch; the input features' scales
``curvature``  top Hessian eigenvalue against the optimizer's stability threshold, and the
               bottom eigenvalue when the gradient is small
``noise``      the gradient noise scale B_simple = tr(Σ)/|G|² (McCandlish et al. 2018)
``baseline``   the loss of the best constant output on the probe batch
``epoch``      an epoch's metrics (``train_loss``, ``val_loss``, ...)
``event``      ``diverged`` (a non-finite loss or gradient), ``exception``
``end``        the run closed normally
=============  ==========================================================================

Each line is written with one ``write`` and flushed at once, so when the process is killed
(SIGKILL, out of memory) everything up to the last completed line is on disk (in the operating
system's cache, which outlives the process); a divergence and the close are also fsynced, which
covers a power loss up to then. The reader accepts a
cut *last* line (the write a kill interrupted) and refuses damage anywhere else, naming the file
and line.

When ``tensorboard`` is importable, the main scalars also go to TensorBoard event files in
``RUN_DIR/tensorboard`` (``tensorboard --logdir RUN_DIR``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainlab.errors import DataError

RECORDS_FILE = "doctor.jsonl"
FORMAT_VERSION = 1
KINDS = ("meta", "step", "probe", "curvature", "noise", "baseline", "epoch", "event", "end")


def _clean(value: Any) -> Any:
    """JSON-safe values: non-finite floats become the strings ``"nan"``/``"inf"``/``"-inf"``."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def as_float(value: Any) -> float:
    """A record's number back as a float (``"nan"``/``"inf"`` strings and ``None`` as NaN/inf)."""
    if value is None:
        return math.nan
    if isinstance(value, str):
        return float(value)  # "nan", "inf", "-inf"
    return float(value)


class RecordWriter:
    """Append records to ``RUN_DIR/doctor.jsonl`` (and TensorBoard, when available).

    Args:
        out_dir: the run's folder (created if missing).
        append: continue an existing file (a resumed run) instead of starting a new one.
        tensorboard: write TensorBoard events too; ``None``: when ``tensorboard`` is importable.
    """

    def __init__(
        self, out_dir: str | Path, append: bool = False, tensorboard: bool | None = None
    ) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / RECORDS_FILE
        self._file: Any = open(self.path, "a" if append else "w", encoding="utf-8")  # noqa: SIM115
        self._tb: Any = _tensorboard_writer(self.out_dir / "tensorboard", tensorboard)

    @property
    def tensorboard(self) -> bool:
        return self._tb is not None

    def write(self, kind: str, record: dict[str, Any]) -> None:
        """Append one record of ``kind`` and flush it to the operating system."""
        if self._file is None:
            return
        line = json.dumps({"kind": kind, **_clean(record)}, separators=(",", ":"))
        self._file.write(line + "\n")
        self._file.flush()
        if self._tb is not None:
            _to_tensorboard(self._tb, kind, record)

    def sync(self) -> None:
        """Flush and fsync (at a divergence and at close: survives a power loss up to here)."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._file is not None:
            self.sync()
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _tensorboard_writer(logdir: Path, wanted: bool | None) -> Any:
    if wanted is False:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed
        if wanted:
            from trainlab.errors import TrainlabError

            raise TrainlabError(
                "tensorboard=True needs the tensorboard package (pip install tensorboard)"
            ) from None
        return None
    return SummaryWriter(str(logdir), flush_secs=30)


def _to_tensorboard(tb: Any, kind: str, r: dict[str, Any]) -> None:
    """The main scalars of a record (per-layer values only where a record has few layers)."""
    step = int(r.get("step", 0))

    def put(tag: str, value: Any) -> None:
        if isinstance(value, (int, float)) and math.isfinite(value):
            tb.add_scalar(tag, value, step)

    if kind == "step":
        for key in ("loss", "grad_norm", "lr", "update_ratio_max"):
            put(f"train/{key}", r.get(key))
    elif kind == "probe":
        for name, layer in r.get("layers", {}).items():
            for key in ("dead", "saturated"):
                if layer.get(key) is not None:
                    put(f"probe/{key}/{name}", layer[key])
    elif kind == "curvature":
        for key in ("lambda_max", "stability_ratio", "lambda_min", "grad_norm"):
            put(f"curvature/{key}", r.get(key))
    elif kind == "noise":
        put("noise/b_simple", r.get("b_simple"))
    elif kind == "epoch":
        for key, value in r.items():
            if "loss" in key or "acc" in key:
                put(f"epoch/{key}", value)


@dataclass
class Records:
    """A run's records, by kind, in file order.

    Attributes:
        path: the file read.
        meta: the (first) ``meta`` record; later ones (a resumed run) are in ``metas``.
        steps, probes, curvatures, noise, baselines, epochs, events: the records of each kind.
        ended: whether the run closed normally (an ``end`` record).
        truncated: whether the last line was cut (a killed process) and skipped.
    """

    path: Path
    meta: dict[str, Any]
    metas: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    probes: list[dict[str, Any]] = field(default_factory=list)
    curvatures: list[dict[str, Any]] = field(default_factory=list)
    noise: list[dict[str, Any]] = field(default_factory=list)
    baselines: list[dict[str, Any]] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    ended: bool = False
    truncated: bool = False
    end: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        """``finished``, ``diverged``, ``crashed`` (an exception), or ``running or killed``."""
        if any(e.get("event") == "diverged" for e in self.events):
            return "diverged"
        if any(e.get("event") == "exception" for e in self.events):
            return "crashed"
        return "finished" if self.ended else "running or killed"

    @property
    def last_step(self) -> int:
        """The last step anything was recorded at (the end record counts every step taken)."""
        found = [self.steps, self.probes, self.curvatures, self.epochs, self.events, self.noise]
        steps = [int(r.get("step", 0)) for kind in found for r in kind]
        if self.end is not None:
            steps.append(int(self.end.get("step", 0)))
        return max(steps, default=0)


def find_records(run_dir: str | Path) -> Path:
    """The records file of ``run_dir``: ``run_dir/doctor.jsonl``, the one file in its subfolders
    (``trainlab phoneme train`` keeps its training run in ``OUT/training``), or ``run_dir``
    itself when it is the file.

    Raises:
        DataError: no such folder, no records in it, or records of several runs in it.
    """
    found = find_all_records(run_dir)
    if len(found) > 1:
        listed = ", ".join(str(p.parent) for p in found[:4]) + (" ..." if len(found) > 4 else "")
        raise DataError(run_dir, f"records of several runs in its subfolders ({listed}): name one")
    return found[0]


def find_all_records(run_dir: str | Path) -> list[Path]:
    """Every records file of ``run_dir``: ``[run_dir/doctor.jsonl]`` when it has one, else those
    of its subfolders at any depth, in order (``covid train`` keeps one run per tier of its
    ensemble under ``OUT/doctor/``), or ``[run_dir]`` when it is the file.

    Raises:
        DataError: no such folder, or no records in it.
    """
    run_dir = Path(run_dir)
    if run_dir.is_file():
        return [run_dir]
    if not run_dir.is_dir():
        raise DataError(run_dir, "no such run folder")
    path = run_dir / RECORDS_FILE
    if path.is_file():
        return [path]
    nested = sorted(p for p in run_dir.rglob(RECORDS_FILE) if p.is_file())
    if nested:
        return nested
    raise DataError(
        run_dir,
        f"no {RECORDS_FILE} in this folder (was the run trained with trainlab's fit, the "
        "doctor's Monitor or its Lightning callback?)",
    )


def read_records(run_dir: str | Path) -> Records:
    """Read a run's records (finished, still running, or killed mid-line).

    Args:
        run_dir: the run folder holding ``doctor.jsonl``, or the file itself.

    Returns:
        :class:`Records`.

    Raises:
        DataError: missing folder or file, an empty file, a line that is not a JSON record
            (anywhere but the last line), or no ``meta`` record.
    """
    path = find_records(run_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(path, "not a doctor records file (not UTF-8 text)") from None
    lines = text.split("\n")
    complete = text.endswith("\n")
    if complete:
        lines = lines[:-1]
    parsed: list[dict[str, Any]] = []
    truncated = False
    for number, line in enumerate(lines, start=1):
        last = number == len(lines)
        if not line.strip():
            if last and not complete:
                continue
            raise DataError(path, f"line {number}: empty line in the records")
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            if last and not complete:  # the write a kill interrupted
                truncated = True
                continue
            raise DataError(path, f"line {number}: not a JSON record ({e.msg})") from None
        if not isinstance(record, dict) or record.get("kind") not in KINDS:
            if last and not complete and not isinstance(record, dict):
                truncated = True
                continue
            raise DataError(
                path, f"line {number}: not a doctor record (expected an object with a kind)"
            )
        parsed.append(record)
    if not parsed:
        raise DataError(path, "the records file is empty (the run stopped before its first step?)")
    metas = [r for r in parsed if r["kind"] == "meta"]
    if not metas:
        raise DataError(path, "no meta record: not written by trainlab's doctor")
    out = Records(path=path, meta=metas[0], metas=metas, truncated=truncated)
    by_kind = {
        "step": out.steps,
        "probe": out.probes,
        "curvature": out.curvatures,
        "noise": out.noise,
        "baseline": out.baselines,
        "epoch": out.epochs,
        "event": out.events,
    }
    for r in parsed:
        if r["kind"] in by_kind:
            by_kind[r["kind"]].append(r)
        elif r["kind"] == "end":
            out.ended, out.end = True, r
    return out
