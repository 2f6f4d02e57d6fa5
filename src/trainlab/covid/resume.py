"""Finished fits kept in the staging folder, so that a resumed ``covid train`` skips them.

A COVID run is many small fits (every fold of every validation, then the final members). Each
finished fit is saved, atomically, under ``<stage>/fits/`` as soon as it ends, keyed by where in
the run it happened (:func:`fit_scope`) and the member's name; a resumed run loads it instead of
training again. Every fit seeds all its random generators from its own seed when it starts, so a
fit that was interrupted is simply trained again from its start and ends exactly as it would have:
a killed run, resumed, ends bit-identical to an uninterrupted one (on the CPU).

Why whole fits and not epochs inside one: a fit is one full batch of ~1,600 rows, a few hundred
steps that take well under a second (a linear layer's 800 steps; the fallback's seeds trained
stacked, :mod:`trainlab.covid.fullbatch`), so a kill loses at most that second, while a
checkpoint per epoch would cost more than the fit itself; and a fit restarted from its seed
retraces its own steps exactly, so the granularity never changes the result. Settings and data
cannot differ on resume: the staged ``config.json`` holds both, and a resume with others is
refused (:func:`trainlab.runs.begin_run`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from trainlab._io import atomic_torch_save, load_torch
from trainlab.config import from_dict
from trainlab.covid.config import ModelConfig
from trainlab.covid.frame import Standardizer
from trainlab.covid.members import Member
from trainlab.covid.model import CovidMLP
from trainlab.errors import DataError
from trainlab.train import History

_CACHE: ContextVar[Path | None] = ContextVar("covid_fit_cache", default=None)
_SCOPE: ContextVar[str] = ContextVar("covid_fit_scope", default="")


@contextlib.contextmanager
def fit_cache(directory: Path | None) -> Iterator[None]:
    """Within the block, finished fits are saved to (and found in) ``directory``; None: off."""
    token = _CACHE.set(directory)
    try:
        yield
    finally:
        _CACHE.reset(token)


@contextlib.contextmanager
def fit_scope(name: str) -> Iterator[None]:
    """Within the block, fits are keyed under ``name`` too (``testlike/after``, ``final``)."""
    token = _SCOPE.set(f"{_SCOPE.get()}{name}/")
    try:
        yield
    finally:
        _SCOPE.reset(token)


def cached_fits(names: Sequence[str], train: Callable[[], list[Member]]) -> list[Member]:
    """The members ``names`` of the current scope: loaded if an earlier attempt finished them,
    else trained together by ``train()`` and saved."""
    directory = _CACHE.get()
    if directory is None:
        return train()
    paths = [
        directory / (re.sub(r"[^A-Za-z0-9_.-]+", "_", _SCOPE.get() + n) + ".pt") for n in names
    ]
    if all(p.is_file() for p in paths):
        return [_load(p) for p in paths]
    members = train()
    for path, member in zip(paths, members):
        atomic_torch_save(_state(member), path)
    return members


def _state(member: Member) -> dict[str, Any]:
    from trainlab.config import to_dict

    return {
        "weights": member.model.state_dict(),
        "meta": member.meta(),
        "architecture": to_dict(member.architecture),
        "history": None if member.history is None else member.history.state_dict(),
    }


def _load(path: Path) -> Member:
    state = load_torch(path, "saved fit")
    try:
        meta, arch = state["meta"], from_dict(ModelConfig, state["architecture"], source=str(path))
        model = CovidMLP(
            len(meta["features"]), arch.widths, arch.activation, arch.batch_norm, arch.dropout,
            arch.linear_skip,
        )  # fmt: skip
        model.load_state_dict(state["weights"])
        history = None
        if state["history"] is not None:
            history = History()
            history.load_state_dict(state["history"])
        model.eval()
        return Member(
            meta["name"], meta["fold"], int(meta["seed"]), model, list(meta["features"]),
            Standardizer.from_state_dict(meta["normalizer"]), meta["target"],
            float(meta["target_mean"]), float(meta["target_std"]), arch, history,
        )  # fmt: skip
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise DataError(
            path, f"corrupt saved fit ({type(e).__name__}); start the run again"
        ) from None
