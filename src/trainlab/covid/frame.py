"""What a COVID model reads from a frame: feature sets, z-scoring on the training rows, row subsets.

The task: predict ``tested_positive`` (the percentage of tests that were positive) on the last day
of a window from the survey answers of all the window's days and the state. A feature set names
the input columns a network sees (:func:`select_features`); a :class:`Standardizer` holds the
statistics of the training fold and applies them unchanged to every other row; :func:`subset`
cuts a frame down to some of its rows (a fold, the held-out days).

Everything here is plain NumPy/pandas; the networks live in :mod:`trainlab.covid.model`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from trainlab.covid.files import TARGET_FEATURE, CovidFrame, day_column
from trainlab.errors import ConfigError

# Feature-set names accepted by select_features; "select:K" is parsed separately.
FEATURE_SETS = ("all", "no_states", "survey14", "select:K")
_SURVEY = ("cli", "ili", "hh_cmnty_cli", "nohh_cmnty_cli")


def select_features(
    name: str, frame: CovidFrame, train_rows: np.ndarray | None = None
) -> list[str]:
    """The input columns of feature set ``name``.

    Args:
        name: ``all`` (states and every day feature), ``no_states`` (day features only),
            ``survey14`` (cli, ili, hh_cmnty_cli, nohh_cmnty_cli of every day plus the earlier
            days' tested_positive), ``select:K`` (the K day features with the largest absolute
            correlation with the target on ``train_rows``), or ``cols:a,b,c`` (explicit names).
        frame: a training frame (``select:K`` needs its target).
        train_rows: the rows a univariate score may look at (the training fold); default all.

    Returns:
        Column names in file order.
    """
    layout = frame.layout
    inputs = layout.input_columns()
    days = [c for c in inputs if c not in set(layout.states)]
    if name == "all":
        return inputs
    if name == "no_states":
        return days
    if name == "survey14":
        keep = {
            day_column(f, d)
            for f in (*_SURVEY, TARGET_FEATURE)
            for d in range(1, layout.n_days + 1)
        }
        return [c for c in days if c in keep]
    if name.startswith("cols:"):
        cols = [c.strip() for c in name[5:].split(",") if c.strip()]
        unknown = [c for c in cols if c not in set(inputs)]
        if unknown or not cols:
            raise ConfigError(
                f"features {name!r}: unknown column(s) {', '.join(unknown) or '(none)'}"
            )
        return [c for c in inputs if c in set(cols)]
    if name.startswith("select:"):
        return _top_correlated(name, frame, days, train_rows)
    raise ConfigError(
        f"unknown feature set {name!r}; choose one of: {', '.join(FEATURE_SETS)}, cols:a,b,..."
    )


def _top_correlated(
    name: str, frame: CovidFrame, days: list[str], train_rows: np.ndarray | None
) -> list[str]:
    """``select:K``: the K day columns most correlated with the target on ``train_rows``."""
    try:
        k = int(name[7:])
    except ValueError:
        k = 0
    if k < 1:
        raise ConfigError(f"features {name!r}: K must be a positive integer, e.g. select:16")
    if frame.y is None:
        raise ConfigError(f"features {name!r} needs a training file with the target")
    rows = np.arange(len(frame)) if train_rows is None else np.asarray(train_rows)
    score = _abs_correlation(frame.X[days].to_numpy()[rows], frame.y[rows])
    top = set(np.argsort(-score, kind="stable")[: min(k, len(days))].tolist())
    return [c for i, c in enumerate(days) if i in top]


def _abs_correlation(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(F,) |Pearson correlation| of each column of ``X`` (N, F) with ``y`` (N,); 0 if constant."""
    xc = X - X.mean(axis=0)
    yc = y - y.mean()
    denom = np.sqrt((xc**2).sum(axis=0) * (yc**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc[:, None]).sum(axis=0) / denom
    return np.nan_to_num(np.abs(r))


@dataclass
class Standardizer:
    """Z-scoring with statistics of the training fold only, applied unchanged elsewhere.

    Columns listed in ``skip`` (the state one-hots by default in the task) keep their values.
    """

    columns: list[str]
    mean: np.ndarray  # (F,)
    std: np.ndarray  # (F,)

    @classmethod
    def fit(cls, X: pd.DataFrame, skip: tuple[str, ...] = ()) -> Standardizer:
        """Statistics of ``X``'s columns (population std; constant columns get std 1)."""
        values = X.to_numpy(dtype=np.float64)
        mean = values.mean(axis=0)
        std = values.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        keep = np.array([c in set(skip) for c in X.columns], dtype=bool)
        mean[keep] = 0.0
        std[keep] = 1.0
        return cls(list(X.columns), mean, std)

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """(N, F) float32 array of ``X[columns]`` scaled with the stored statistics."""
        values = X[self.columns].to_numpy(dtype=np.float64)
        return ((values - self.mean) / self.std).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        """JSON-able statistics (column names, means, standard deviations)."""
        return {"columns": list(self.columns), "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_state_dict(cls, d: dict[str, Any]) -> Standardizer:
        """Rebuild from :meth:`state_dict` output."""
        return cls(list(d["columns"]), np.asarray(d["mean"], float), np.asarray(d["std"], float))


def subset(frame: CovidFrame, rows: np.ndarray, with_target: bool = True) -> CovidFrame:
    """Rows of ``frame`` as a frame of their own.

    Args:
        frame: a training or test frame.
        rows: row indices, in the order the new frame lists them.
        with_target: keep the target; False gives the test layout (no target).

    Returns:
        A frame whose inputs are renumbered from 0.
    """
    return dataclasses.replace(
        frame,
        ids=frame.ids[rows],
        X=frame.X.iloc[rows].reset_index(drop=True),
        y=None if frame.y is None or not with_target else frame.y[rows],
    )
