"""The doctor's records of a COVID run: every network of the final ensemble is watched.

``covid train`` trains its final networks with the doctor's :class:`~trainlab.doctor.Monitor`
attached and keeps the records in the run folder, one folder per tier
(``OUT/doctor/history``, ``OUT/doctor/partial``, ``OUT/doctor/fallback``: the seeds of a tier are
trained together as one stacked network, :mod:`trainlab.covid.stacked`, so one run each), and
``trainlab doctor OUT`` reads them all. The cross-validation's fits are not watched: hundreds of
sub-second fits of the same networks on fewer rows would say the same at a higher cost. A
network solved in closed form (``linear_solver = "exact"``) takes no steps and has nothing to
watch. The monitor never changes the training it watches, so a run with and without records
ends with the same weights.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path

_DIR: ContextVar[Path | None] = ContextVar("covid_doctor_records", default=None)

#: The run folder's subfolder holding the records.
RECORDS_DIR = "doctor"


@contextlib.contextmanager
def doctor_records(directory: Path | None) -> Iterator[None]:
    """Within the block, the networks trained by gradient steps write their records under
    ``directory`` (None: not watched)."""
    token = _DIR.set(directory)
    try:
        yield
    finally:
        _DIR.reset(token)


def records_folder(names: Sequence[str], index: int | None = None) -> Path | None:
    """A fresh records folder for the networks ``names`` (``all/history/seed1``, ...) of one
    tier: ``<directory>/<tier>`` when they train together (``index`` None) or when there is one,
    ``<directory>/<tier>/<seed>`` for network ``index`` trained on its own; None outside
    :func:`doctor_records`. Whatever an interrupted earlier attempt left there is removed, so a
    folder never holds two runs."""
    directory = _DIR.get()
    if directory is None or not names:
        return None
    parts = names[0].split("/")
    group = parts[-2] if len(parts) >= 2 else parts[0]
    if index is not None and len(names) > 1:
        group = f"{group}/{names[index].split('/')[-1]}"
    folder = directory / re.sub(r"[^A-Za-z0-9_/.-]+", "_", group)
    if folder.exists():
        shutil.rmtree(folder)
    return folder
