"""Atomic file writes: a crash or a full disk never leaves a half-written output behind.

Every output is written to a temporary file in the same folder, flushed, fsynced and renamed over
the target, so readers see either the old file or the complete new one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_open(
    path: str | Path, mode: str = "w", encoding: str | None = "utf-8"
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success rename it to ``path``.

    Args:
        path: the final file.
        mode: ``"w"`` for text or ``"wb"`` for bytes.
        encoding: text encoding (ignored for bytes).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _umask_mode() -> int:
    """Permissions a plainly created file would get (mkstemp makes 0600 files)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(
        path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    )


def atomic_write_with(path: str | Path, writer: Callable[[Path], None]) -> None:
    """Let ``writer(tmp_path)`` write a file (e.g. ``np.save``, ``fig.savefig``), then rename it.

    The temporary name keeps the target's suffix so libraries that choose a format from it work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        writer(Path(tmp))
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically."""
    import torch

    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


def load_torch(path: str | Path, what: str = "weights file") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with every failure as one DataError.

    A missing, truncated, foreign or code-carrying file raises :class:`DataError` naming ``path``;
    nothing is ever unpickled beyond tensors and plain containers.

    Args:
        path: the file.
        what: how the message names the file (``"checkpoint"``, ``"weights file"``).
    """
    import pickle
    import struct
    import zipfile

    import torch

    from trainlab.errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"{what} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):
            raise DataError(
                path, f"refused {what}: it holds code or objects other than tensors and plain data"
            ) from None
        raise DataError(path, f"corrupt {what} (truncated or not a torch file)") from None
    # A damaged pickle stream makes the weights-only unpickler fail in many ways (an empty or text
    # file: IndexError; a cut struct: struct.error; a bad memo reference: KeyError).
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, AttributeError,
            TypeError, IndexError, KeyError, struct.error) as e:  # fmt: skip
        lines = str(e).strip().splitlines()  # empty for a bare EOFError
        first = (lines[0].split(". ")[0][:120] if lines else "") or type(e).__name__
        raise DataError(path, f"corrupt {what} (truncated or not a torch file: {first})") from None


def _json_default(o: Any) -> Any:
    """Make numpy scalars/arrays, tensors and paths JSON-serialisable."""
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"cannot serialise {type(o).__name__} to JSON")
