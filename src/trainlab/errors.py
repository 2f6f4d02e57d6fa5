"""The one exception type that user-facing problems raise.

Library code raises :class:`TrainlabError` for anything the user can fix (a missing file, a bad
column, a NaN, a corrupt checkpoint). The command line prints its message on one line and exits
non-zero without a traceback; programming errors keep their tracebacks. Merely suspicious input is
a :class:`DataWarning` (a Python warning; the command line prints it on one line and goes on).
"""

from __future__ import annotations

from pathlib import Path


class TrainlabError(Exception):
    """A problem with the user's input or environment, explained in one message."""


class _AboutFile:
    """A message about one file: ``"PATH: problem"``; pickles intact (from a worker process)."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)  # type: ignore[call-arg]

    def __reduce__(self) -> tuple[type, tuple[Path | None, str]]:
        return (type(self), (self.path, self.problem))


class DataError(_AboutFile, TrainlabError):
    """A data file is missing, malformed or holds values that cannot be used."""


class DataWarning(_AboutFile, UserWarning):
    """A value that may be right but looks wrong (an outlier, a constant column): the run goes on,
    and the command line prints the message on one line."""


class ConfigError(TrainlabError):
    """A configuration file or value is invalid."""


class TrainingDiverged(TrainlabError):
    """The loss became NaN or infinite."""
