"""Run folders: finding a saved model, checking output places, staging and publishing a run.

A trained run folder ``OUT`` keeps its model in ``OUT/model/`` with a ``model.json`` that names its
task; users may point at ``OUT``, at ``OUT/model`` or at the ``model.json`` itself
(:func:`find_model_dir`, the one resolver every ``predict``, ``evaluate`` and ``diagnose`` uses).

A run never writes into ``OUT`` directly: it is staged in ``.OUT.partial`` beside it
(:func:`begin_run`, which also resumes an interrupted run) and switched into place when complete,
sealed by a manifest of every file's hash (:func:`publish_run`). So ``OUT`` is always the old
complete run or the new one, and :func:`verify_run` refuses anything else. Output places are
checked before any work (:func:`check_output_dir`, :func:`check_output_file`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from trainlab._io import atomic_write_json
from trainlab.errors import DataError, TrainlabError

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
    if not path.exists():
        _recover(path)  # a publish killed between its renames
    if path.is_file() and path.name == MODEL_JSON:
        verify_run(path.parent)
        return path.parent
    for candidate in (path / "model", path):
        if (candidate / MODEL_JSON).is_file():
            verify_run(candidate)
            return candidate
    if not path.exists() and (staging_dir(path) / "config.json").is_file():
        raise DataError(path, "the run is incomplete (interrupted); resume it with --resume")
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


# --- Checking output locations before any work -------------------------------------------------


def _unwritable(path: Path) -> str | None:
    """Why a file or folder could not be created at ``path`` (``None`` if it could)."""
    probe = path.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file, not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return _cannot_create_in(probe)


def _cannot_create_in(folder: Path) -> str | None:
    """Create and remove a file in ``folder``: ``os.access`` says yes to root, and on some
    filesystems (``/proc``, a full disk) where no file can be made."""
    try:
        fd, name = tempfile.mkstemp(prefix=".trainlab-probe-", dir=folder)
    except OSError as e:
        return f"no file can be created in {folder}: {e.strerror or e}"
    os.close(fd)
    os.unlink(name)
    return None


def check_output_dir(path: str | Path, option: str = "--out") -> Path:
    """Refuse, before any work, an output folder that cannot be written.

    Args:
        path: the folder (it may not exist yet; its nearest existing parent must be writable).
        option: how the message names the setting.

    Raises:
        TrainlabError: the path is a file, or it (or its nearest existing parent) is not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise TrainlabError(f"{option} {path}: exists and is not a folder")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise TrainlabError(f"{option} {path}: the folder is not writable")
        problem = _cannot_create_in(path)
    else:
        problem = _unwritable(path)
    if problem:
        raise TrainlabError(f"{option} {path}: cannot create it ({problem})")
    return path


def check_output_file(path: str | Path, option: str = "--output") -> Path:
    """Refuse, before any work, an output file that cannot be written.

    Raises:
        TrainlabError: the path is a folder, a read-only file, or in a place that is not writable.
    """
    path = Path(path)
    if path.is_dir():
        raise TrainlabError(f"{option} {path}: is a folder; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise TrainlabError(f"{option} {path}: the file is not writable")
    problem = _unwritable(path)
    if problem:
        raise TrainlabError(f"{option} {path}: cannot write it ({problem})")
    return path


# --- Staging: a run folder is the old complete run, the new complete run, or refused -------------

MANIFEST = "manifest.json"


def staging_dir(out: str | Path) -> Path:
    """Where a run into ``out`` is written until it is complete: ``.OUT.partial`` beside it."""
    out = Path(out)
    return out.parent / f".{out.name}.partial"


def _old_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.old"


def begin_run(
    out: str | Path,
    settings: dict[str, Any],
    *,
    resume: bool = False,
    ignore: tuple[str, ...] = (),
    log: Any = print,
) -> Path:
    """Start (or continue) a run that will be published into ``out``; return its staging folder.

    A new run is written into :func:`staging_dir` and only replaces ``out`` in
    :func:`publish_run`, so a crash or a bad setting never touches the previous run's files. The
    resolved ``settings`` go to ``config.json`` in the staging folder.

    Args:
        out: the run folder the user asked for.
        settings: the run's resolved configuration (JSON-serialisable).
        resume: continue the interrupted run staged for ``out`` (its settings must be the same).
        ignore: top-level settings that may differ on resume (e.g. ``quiet``).
        log: where a discarded stale run is reported.

    Raises:
        TrainlabError: an unusable ``out``; ``resume`` with nothing to resume or other settings.
    """
    out = check_output_dir(out)
    _recover(out)
    stage = staging_dir(out)
    if resume:
        return _resume_stage(out, stage, settings, ignore)
    if stage.exists():
        log(f"discarding the incomplete run in {stage} (pass --resume to continue it)")
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    atomic_write_json(stage / "config.json", settings)
    return stage


def _resume_stage(
    out: Path, stage: Path, settings: dict[str, Any], ignore: tuple[str, ...]
) -> Path:
    if not (stage / "config.json").is_file():
        if (out / MANIFEST).is_file():
            raise TrainlabError(f"{out}: the run there is complete; nothing to resume")
        raise TrainlabError(f"{out}: no interrupted run to resume (nothing in {stage})")
    try:
        before = json.loads((stage / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(
            stage / "config.json", f"unreadable settings of the interrupted run: {e}"
        ) from None
    saved = json.loads(json.dumps(settings, default=str))
    differ = sorted(
        k for k in set(before) | set(saved) if k not in ignore and before.get(k) != saved.get(k)
    )
    if differ:
        raise TrainlabError(
            f"{out}: cannot resume: the interrupted run used other settings for "
            f"{', '.join(differ)} (see {stage / 'config.json'}); run without --resume to start over"
        )
    for p in stage.rglob(".*"):  # temporaries of writes the kill interrupted
        if p.is_file():
            p.unlink()
    return stage


def publish_run(stage: str | Path, out: str | Path) -> Path:
    """Seal the staged run with a manifest and switch it into place as ``out``.

    The manifest (every file's size and SHA-256) is written last; then ``out`` (if any) is moved
    aside, the staging folder renamed to ``out`` and the old run deleted. A crash between the two
    renames is repaired by the next :func:`begin_run` or :func:`verify_run`.
    """
    stage, out = Path(stage), Path(out)
    files = {
        str(p.relative_to(stage)): _file_record(p)
        for p in sorted(stage.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    atomic_write_json(stage / MANIFEST, {"files": files})
    old = _old_dir(out)
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        os.replace(out, old)
    os.replace(stage, out)
    shutil.rmtree(old, ignore_errors=True)
    return out


def _file_record(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def _recover(out: Path) -> None:
    """Finish or undo a :func:`publish_run` that was killed between its renames."""
    old, stage = _old_dir(out), staging_dir(out)
    if not out.exists() and old.exists():
        os.replace(stage if (stage / MANIFEST).is_file() else old, out)
    if out.exists() and old.exists():
        shutil.rmtree(old, ignore_errors=True)


def verify_run(path: str | Path) -> Path:
    """Check that a run folder is one complete run; return the folder.

    ``path`` may be the run folder or a folder inside it (``OUT/model``). A folder with a manifest
    must hold every file it lists, unchanged, and its ``model/`` folder nothing else (analyses such
    as ``diagnose`` may add files beside it); a folder that is only staged (an interrupted
    run) is refused. Folders without a manifest (built by hand through the library) are accepted.

    Raises:
        DataError: the run is incomplete, or its files are missing, changed or mixed with others.
    """
    path = Path(path)
    root = path.parent if (path.parent / MANIFEST).is_file() and path.name == "model" else path
    _recover(root)
    if not root.exists() and (staging_dir(root) / "config.json").is_file():
        raise DataError(root, "the run is incomplete (interrupted); resume it with --resume")
    manifest = root / MANIFEST
    if not manifest.is_file():
        return root
    try:
        listed = json.loads(manifest.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise DataError(manifest, "unreadable run manifest; train the run again") from None
    present = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} - {MANIFEST}
    # Later analyses (diagnose, doctor) add their own files beside a run; only the model folder,
    # which predict loads whole, must hold nothing but the run's own files.
    extra = sorted(
        p
        for p in present - set(listed)
        if Path(p).parts[0] == "model" and not Path(p).name.startswith(".")
    )
    missing = sorted(set(listed) - present)
    changed = sorted(f for f in set(listed) & present if _file_record(root / f) != listed[f])
    for what, names in (("missing", missing), ("changed since the run", changed),
                        ("not part of the run", extra)):  # fmt: skip
        if names:
            raise DataError(root, f"files {what}: {', '.join(names[:5])}; train the run again")
    return root
