"""Finding a saved model: the one resolver every ``predict``, ``evaluate`` and ``diagnose`` uses.

A trained run folder ``OUT`` keeps its model in ``OUT/model/`` with a ``model.json`` that names its
task. Users may point at ``OUT``, at ``OUT/model`` or at the ``model.json`` itself.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from trainlab.errors import DataError

MODEL_JSON = "model.json"
_TASK_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def find_model_dir(path: str | Path, task: str | None = None) -> Path:
    """The folder holding ``model.json``: ``path/model``, ``path`` or the file's folder.

    Args:
        path: a run folder, its ``model`` folder or its ``model.json``.
        task: the task expected, used in the message only.

    Raises:
        DataError: no model description there.
    """
    path = Path(path)
    if path.is_file() and path.name == MODEL_JSON:
        return path.parent
    for candidate in (path / "model", path):
        if (candidate / MODEL_JSON).is_file():
            return candidate
    what = "does not exist" if not path.exists() else f"holds no model/{MODEL_JSON} or {MODEL_JSON}"
    how = (
        f"`trainlab {task} train`" if task else "`trainlab covid train` or `trainlab phoneme train`"
    )
    raise DataError(path, f"{what}; point at the output folder of {how}")


def read_model_json(model_dir: str | Path, task: str | None = None) -> dict[str, Any]:
    """The model description in ``model_dir``, checked to be a JSON object naming a task.

    Args:
        model_dir: the folder :func:`find_model_dir` returned.
        task: if given, the task the description must name.

    Raises:
        DataError: unreadable JSON, no or an invalid ``task``, or another task than ``task``.
    """
    path = Path(model_dir) / MODEL_JSON
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise DataError(path, f"cannot read the model description ({e.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(path, f"corrupt model description (not valid JSON: {e})") from None
    if not isinstance(meta, dict) or "task" not in meta:
        raise DataError(path, "the model description has no 'task' entry")
    name = meta["task"]
    if not isinstance(name, str) or not _TASK_NAME.fullmatch(name):
        raise DataError(path, f"invalid task name {name!r}")
    if task is not None and name != task:
        raise DataError(path, f"a model of task {name!r}, not {task!r}")
    return meta
