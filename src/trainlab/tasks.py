"""The task registry: each competition's name and the package that implements it.

The competitions live in their own packages (``trainlab.covid``, ``trainlab.phoneme``); this is the
one list of them. A saved model folder names its task in ``model.json``, and :func:`load_target`
rebuilds it through that package's ``load_for_diagnosis`` for ``trainlab diagnose`` and the
doctor. Packages are imported on first use, so loading one task does not load the other.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from trainlab._io import load_torch
from trainlab.diagnose.target import DiagnosisTarget
from trainlab.errors import DataError, TrainlabError
from trainlab.runs import find_model_dir, read_model_json


@dataclass(frozen=True)
class Task:
    """A competition: its name, its package and a one-line description."""

    name: str
    package: str
    help: str

    def module(self) -> ModuleType:
        """The task's package (imported now)."""
        return importlib.import_module(self.package)


#: name -> task, in the order the command line lists them.
TASKS: dict[str, Task] = {
    "covid": Task("covid", "trainlab.covid", "COVID-19 cases regression (ml2021spring-hw1)"),
    "phoneme": Task(
        "phoneme", "trainlab.phoneme", "framewise phoneme classification (ml2021spring-hw2)"
    ),
}


def list_tasks() -> list[str]:
    """The registered task names."""
    return list(TASKS)


def get_task(name: str, source: str | Path | None = None) -> Task:
    """The task called ``name``; an error naming ``source`` (e.g. a model.json) if unknown."""
    if name not in TASKS:
        where = f"{source}: " if source is not None else ""
        raise TrainlabError(f"{where}unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[name]


def load_target(
    model_out: str | Path, data: str | None = None, batch: int = 1024, seed: int = 0
) -> tuple[DiagnosisTarget, dict[str, Any]]:
    """Rebuild a saved model and one batch of its data through its task's loader.

    Args:
        model_out: the training output folder (or its ``model`` folder, or its ``model.json``).
        data: the data path; ``None`` uses the one the model was trained on.
        batch: the batch size to analyse.
        seed: which batch (the loaders draw it with this seed).

    Returns:
        ``(target, model.json contents)``.

    Raises:
        TrainlabError: no model there, an unknown task, missing or corrupt weights.
    """
    if batch < 1:
        raise TrainlabError(f"batch must be at least 1, got {batch}")
    model_dir = find_model_dir(model_out)
    meta = read_model_json(model_dir)
    task = get_task(meta["task"], model_dir / "model.json")
    weights = model_dir / "model.pt"
    if not weights.is_file():
        raise DataError(weights, "missing: the model folder has no weights")
    load_torch(weights, "checkpoint")
    target = task.module().load_for_diagnosis(model_dir, data, batch, seed)
    if not isinstance(target, DiagnosisTarget):
        raise TrainlabError(f"task {task.name!r}: load_for_diagnosis did not return a target")
    return target, meta
