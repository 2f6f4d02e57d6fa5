"""The ``trainlab`` command line: parse, build configs, call library functions.

Each subcommand lives in its own module under ``trainlab.cli`` and exposes ``HELP`` (one line),
``add_arguments(parser)`` and either ``run(args) -> int`` or, for a command with actions
(``trainlab covid train``), one function per action set as the action parser's ``_run``. User errors (:class:`TrainlabError`) print one
line and exit 1; bad arguments print one line and exit 2; nothing prints a traceback. Data that is
merely suspicious (:class:`~trainlab.errors.DataWarning`) prints one ``trainlab: warning:`` line and
the command goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

from trainlab import __version__
from trainlab.errors import DataWarning, TrainlabError

# name -> module; order is the order shown by --help
COMMANDS = {
    "report": "trainlab.cli.report",
    "covid": "trainlab.cli.covid",
    "phoneme": "trainlab.cli.phoneme",
    "diagnose": "trainlab.cli.diagnose",
    "doctor": "trainlab.cli.doctor",
    "data": "trainlab.cli.data",
    "demo": "trainlab.cli.demo",
}


class ArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: ``trainlab covid train: error: ...``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="trainlab",
        description="A PyTorch workbench for the question: my network stopped improving - why, "
        "and what do I do?",
    )
    parser.add_argument("--version", action="version", version=f"trainlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for name, modname in COMMANDS.items():
        mod = importlib.import_module(modname)
        p = sub.add_parser(name, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(p)
        if hasattr(mod, "run"):  # commands with actions set their own ``_run`` per action
            p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a bad argument (code 2)
        return int(e.code or 0)
    run = getattr(args, "_run", None)
    if run is None:
        parser.print_help()
        return 2
    try:
        with _warnings_as_lines():
            return int(run(args) or 0)
    except TrainlabError as e:
        print(f"trainlab: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into a reader that stopped (``| head``): no message
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as e:  # a full disk, a permission changed mid-run: name the path, no traceback
        where = e.filename if e.filename is not None else "output"
        print(f"trainlab: error: {where}: {e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("trainlab: interrupted", file=sys.stderr)
        return 130


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Within the block, every :class:`DataWarning` prints as one line on stderr (each once)."""
    shown = warnings.showwarning

    def show(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
        if issubclass(category, DataWarning):
            print(f"trainlab: warning: {message}", file=sys.stderr)
        else:
            shown(message, category, *args, **kwargs)

    with warnings.catch_warnings():
        warnings.simplefilter("default", DataWarning)
        warnings.showwarning = show
        yield


def entry_point() -> NoReturn:
    """The console script."""
    sys.exit(main())
