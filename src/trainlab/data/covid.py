"""COVID-19 survey data (Kaggle ml2021spring-hw1, and the 2022 layout): reading, features, scaling.

The task: predict ``tested_positive`` (the percentage of tests that were positive) on the last day
of a window from the survey answers of all the window's days and the state. Rows are sliding
windows over each state's days, so neighbouring rows of a state share days; :func:`time_order`
recovers each state's sequence of windows, which the blocked cross-validation in
:mod:`trainlab.data._covid_folds` needs to keep validation days apart from training days.

Everything here is plain NumPy/pandas; the models live in :mod:`trainlab.tasks.covid`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainlab.data._covid_folds import FOLD_SCHEMES, Fold, make_folds
from trainlab.data._covid_history import (
    HistorySpec,
    SeriesTails,
    Timeline,
    build_timeline,
    chain_rows,
    history_features,
    is_history_column,
)
from trainlab.data._covid_layout import (
    LAYOUTS,
    TARGET_FEATURE,
    CovidLayout,
    day_column,
    read_table,
)
from trainlab.errors import ConfigError, DataError

__all__ = [
    "FEATURE_SETS",
    "FOLD_SCHEMES",
    "LAYOUTS",
    "HistorySpec",
    "SeriesTails",
    "Timeline",
    "TARGET_FEATURE",
    "CovidFrame",
    "CovidLayout",
    "Fold",
    "Standardizer",
    "build_timeline",
    "chain_rows",
    "day_column",
    "history_features",
    "is_history_column",
    "load_covid_dir",
    "make_folds",
    "read_covid",
    "select_features",
    "time_order",
    "with_history",
]

TRAIN_FILE = "covid.train.csv"
TEST_FILE = "covid.test.csv"

# Feature-set names accepted by select_features; "select:K" is parsed separately.
FEATURE_SETS = ("all", "no_states", "survey14", "select:K")
_SURVEY = ("cli", "ili", "hh_cmnty_cli", "nohh_cmnty_cli")


@dataclass
class CovidFrame:
    """One validated file: ids, inputs with unique column names, and the target if present."""

    path: Path
    layout: CovidLayout
    ids: np.ndarray  # (N,) int64
    X: pd.DataFrame  # (N, states + days * features - 1) float64, layout.input_columns() order
    y: np.ndarray | None  # (N,) float64, or None for a test file

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def state(self) -> np.ndarray:
        """(N,) index of each row's state in ``layout.states``."""
        return self.X[list(self.layout.states)].to_numpy().argmax(axis=1)

    def persistence(self) -> np.ndarray:
        """(N,) the previous day's ``tested_positive``: the naive forecast of the target."""
        return self.X[day_column(TARGET_FEATURE, self.layout.n_days - 1)].to_numpy()


def read_covid(
    path: str | Path, *, train: bool | None = None, layout: CovidLayout | str | None = None
) -> CovidFrame:
    """Read and validate a COVID CSV file in the 2021 or 2022 layout (detected from the header).

    Args:
        path: the CSV file.
        train: True if it must hold the target, False if it must not (test file), None: either.
        layout: the expected layout (or its name, ``"2021"``/``"2022"``); None detects it.

    Returns:
        A :class:`CovidFrame`.
    """
    if isinstance(layout, str):
        layout = LAYOUTS[layout]
    layout, table = read_table(path, train=train, layout=layout)
    has_target = layout.target in table.columns
    return CovidFrame(
        path=Path(path),
        layout=layout,
        ids=table["id"].to_numpy(),
        X=table[layout.input_columns()].reset_index(drop=True),
        y=table[layout.target].to_numpy() if has_target else None,
    )


def load_covid_dir(data_dir: str | Path) -> tuple[CovidFrame, CovidFrame]:
    """Read ``covid.train.csv`` and ``covid.test.csv`` from ``data_dir`` (same layout required).

    Returns:
        The training frame and the test frame.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(data_dir, "data folder not found")
    missing = [n for n in (TRAIN_FILE, TEST_FILE) if not (data_dir / n).is_file()]
    if missing:
        raise DataError(
            data_dir,
            f"missing {' and '.join(missing)} (get them with "
            "'trainlab data download covid --dest DIR')",
        )
    train = read_covid(data_dir / TRAIN_FILE, train=True)
    test = read_covid(data_dir / TEST_FILE, train=False, layout=train.layout)
    return train, test


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
    raise ConfigError(
        f"unknown feature set {name!r}; choose one of: {', '.join(FEATURE_SETS)}, cols:a,b,..."
    )


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


def with_history(
    frame: CovidFrame,
    spec: HistorySpec,
    timeline: Timeline | None = None,
    tails: SeriesTails | None = None,
    hide_rows: np.ndarray | None = None,
) -> CovidFrame:
    """A copy of ``frame`` whose inputs also hold the history features of ``spec``.

    Args:
        frame: a training or test frame.
        spec: which history features (:class:`HistorySpec`).
        timeline: the rows on their day axes; None builds it from ``frame`` (and ``tails``).
        tails: the stored end of the training series (prediction time), or None.
        hide_rows: rows whose days the features must not read (see :func:`history_features`).

    Returns:
        The frame with ``hist_*`` columns appended (NaN where a row lacks the days they need).
    """
    timeline = build_timeline(frame, tails) if timeline is None else timeline
    tp = frame.layout.features.index(TARGET_FEATURE)
    hist = history_features(timeline, spec, tp, hide_rows)
    base = frame.X[[c for c in frame.X.columns if not is_history_column(c)]]
    return dataclasses.replace(frame, X=pd.concat([base.reset_index(drop=True), hist], axis=1))


def time_order(frame: CovidFrame) -> np.ndarray:
    """(N,) each row's position in its state's sequence of windows (0 = earliest).

    Consecutive windows of a state overlap: days 2..D of one row are days 1..D-1 of the next.
    Rows are chained through that overlap (:func:`chain_rows`, so a shuffled file is ordered too);
    rows that chain to nothing, or files without overlaps, fall back to file order within the
    state. Chains of the same state are placed in the order of their first row in the file.
    """
    order = np.empty(len(frame), dtype=np.int64)
    next_pos: dict[int, int] = {}
    for chain in chain_rows(frame):
        s = int(frame.state[chain[0]])
        pos = next_pos.get(s, 0)
        order[chain] = pos + np.arange(len(chain))
        next_pos[s] = pos + len(chain)
    return order
