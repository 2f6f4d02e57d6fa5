"""The COVID-19 survey files (Kaggle ml2021spring-hw1 and the 2022 layout): layouts, strict reader.

The Kaggle files (ML2021 Spring HW1, and the 2022 re-run of the homework) hold one row per state and
sliding window of days: ``id``, one-hot state columns, then the same survey features repeated for
every day of the window, the last one being ``tested_positive`` of the final day (the target; the
test file stops before it). The raw header repeats the feature names per day; here every column
gets a unique name, ``<feature>_d<day>`` (``cli_d1``, ..., ``tested_positive_d3``).

:func:`read_table` checks everything a model relies on and raises one :class:`DataError` that names
the file and the problem: wrong or missing columns, non-numeric cells (row and column named), NaN
or inf, an empty file, a broken state one-hot, duplicate ids. :func:`read_covid` turns a file into
a :class:`CovidFrame` (ids, inputs, target), :func:`load_covid_dir` reads a competition folder.
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from trainlab.errors import DataError, DataWarning

TARGET_FEATURE = "tested_positive"
TRAIN_FILE = "covid.train.csv"
TEST_FILE = "covid.test.csv"

_STATES_2021 = (
    "AL AK AZ AR CA CO CT FL GA ID IL IN IA KS KY LA MD MA MI MN MS MO NE NV NJ NM NY NC OH OK OR "
    "PA RI SC TX UT VA WA WV WI"
).split()
_STATES_2022 = (
    "AL AK AZ AR CA CO CT FL GA ID IL IN IA KS KY LA MD MA MI MN MS MO NE NV NJ NM NY NC OH OK OR "
    "RI SC TX UT VA WA"
).split()
_FEATURES_2021 = (
    "cli ili hh_cmnty_cli nohh_cmnty_cli wearing_mask travel_outside_state work_outside_home shop "
    "restaurant spent_time large_event public_transit anxious depressed felt_isolated "
    "worried_become_ill worried_finances tested_positive"
).split()
_FEATURES_2022 = (
    "cli ili hh_cmnty_cli nohh_cmnty_cli wearing_mask travel_outside_state work_outside_home shop "
    "restaurant spent_time large_event public_transit anxious depressed worried_finances "
    "tested_positive"
).split()


@dataclass(frozen=True)
class CovidLayout:
    """One file layout: the states, the per-day features (target last) and the window length."""

    name: str
    states: tuple[str, ...]
    features: tuple[str, ...]
    n_days: int

    @property
    def target(self) -> str:
        """The unique name of the target column, e.g. ``tested_positive_d3``."""
        return day_column(TARGET_FEATURE, self.n_days)

    def day_columns(self) -> list[str]:
        """All per-day columns in file order, the target included."""
        return [day_column(f, d) for d in range(1, self.n_days + 1) for f in self.features]

    def input_columns(self) -> list[str]:
        """The model's candidate inputs: states and day columns, without the target."""
        return list(self.states) + [c for c in self.day_columns() if c != self.target]

    def columns(self, with_target: bool) -> list[str]:
        """The unique column names of a train (``with_target``) or test file, ``id`` first."""
        return ["id", *self.input_columns(), *([self.target] if with_target else [])]


def day_column(feature: str, day: int) -> str:
    """The unique name of ``feature`` on ``day`` (1-based): ``cli_d2``."""
    return f"{feature}_d{day}"


LAYOUTS: dict[str, CovidLayout] = {
    "2021": CovidLayout("2021", tuple(_STATES_2021), tuple(_FEATURES_2021), 3),
    "2022": CovidLayout("2022", tuple(_STATES_2022), tuple(_FEATURES_2022), 5),
}


def unique_names(raw: list[str]) -> list[str]:
    """Rename the k-th occurrence of a repeated name ``f`` to ``f_d<k>``; unique names stay.

    ``id,AL,cli,tested_positive,cli,tested_positive`` -> ``id,AL,cli_d1,tested_positive_d1,cli_d2,
    tested_positive_d2``. Names that already carry a ``_d<k>`` suffix are kept as they are.
    """
    raw = [r.strip() for r in raw]
    counts: dict[str, int] = {}
    for r in raw:
        counts[r] = counts.get(r, 0) + 1
    # a day ends with its tested_positive, so a feature's day is 1 + the tested_positive
    # columns before it: a column missing from day 1 is named as day 1's
    day = 1
    out = []
    for r in raw:
        if counts[r] > 1 or r in _ALL_FEATURES:
            out.append(day_column(r, day))
            if r == TARGET_FEATURE:
                day += 1
        else:
            out.append(r)
    return out


_ALL_FEATURES = set(_FEATURES_2021) | set(_FEATURES_2022)


def detect_layout(names: list[str]) -> tuple[CovidLayout, bool]:
    """The layout whose columns ``names`` match best, and whether the target column is present."""
    have = set(names)
    best: tuple[int, CovidLayout, bool] | None = None
    for layout in LAYOUTS.values():
        for with_target in (True, False):
            diff = len(have ^ set(layout.columns(with_target)))
            if best is None or diff < best[0]:
                best = (diff, layout, with_target)
    assert best is not None
    return best[1], best[2]


def _diff(names: list[str], layout: CovidLayout, with_target: bool) -> int:
    return len(set(names) ^ set(layout.columns(with_target)))


def _describe(layout: CovidLayout) -> str:
    return f"{len(layout.states)} states, {layout.n_days} days x {len(layout.features)} features"


def _list(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def read_header(path: Path) -> list[str]:
    """The raw header of a CSV file; DataError if the file is missing or empty."""
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), None)
    except UnicodeDecodeError:
        raise DataError(path, "not a text CSV file") from None
    if not header or all(not h.strip() for h in header):
        raise DataError(path, "file is empty (no header line)")
    return header


def read_table(
    path: str | Path, *, train: bool | None = None, layout: CovidLayout | None = None
) -> tuple[CovidLayout, pd.DataFrame]:
    """Read and validate one COVID CSV file.

    Args:
        path: the CSV file.
        train: True if the file must hold the target, False if it must not (a test file),
            None to accept either.
        layout: the expected layout; None detects it from the header.

    Returns:
        The layout and a float64 DataFrame with unique column names (``id`` as int64 first).
    """
    path = Path(path)
    names = unique_names(read_header(path))
    detected, detected_target = detect_layout(names)
    if layout is None:
        layout, has_target = detected, detected_target
    else:
        if detected is not layout and set(names) == set(detected.columns(detected_target)):
            raise DataError(
                path,
                f"this file is in the {detected.name} layout ({_describe(detected)}) but the "
                f"{layout.name} layout ({_describe(layout)}) is expected",
            )
        has_target = _diff(names, layout, True) < _diff(names, layout, False)
    if train is False and has_target:
        raise DataError(
            path,
            f"a test file must not hold the target column {layout.target} "
            "(the last column of the training file)",
        )
    with_target = has_target if train is None else train
    expected = layout.columns(with_target)
    _check_columns(path, names, expected, layout, with_target)
    try:
        df = pd.read_csv(
            path,
            header=0,
            names=names,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=True,
            encoding="utf-8-sig",
        )
    except (pd.errors.ParserError, ValueError) as e:
        raise DataError(path, f"malformed CSV: {str(e).strip().splitlines()[0]}") from None
    if len(df) == 0:
        raise DataError(path, "no data rows (only a header)")
    df = df[expected]
    return layout, _to_numeric(path, df, layout)


def _check_columns(
    path: Path, names: list[str], expected: list[str], layout: CovidLayout, with_target: bool
) -> None:
    """DataError naming every missing, unexpected and duplicated column at once."""
    missing = [c for c in expected if c not in set(names)]
    extra = [c for c in names if c not in set(expected)]
    dups = sorted({c for c in names if names.count(c) > 1})
    if missing or extra or dups:
        parts = []
        if missing:
            parts.append(f"missing column(s) {_list(missing)}")
        if extra:
            parts.append(f"unexpected column(s) {_list(extra)}")
        if dups:
            parts.append(f"duplicate column(s) {_list(dups)}")
        kind = "training" if with_target else "test"
        raise DataError(
            path,
            f"{'; '.join(parts)} (expected the {layout.name} {kind} layout: id, "
            f"{_describe(layout)}{'' if with_target else ' without the target'})",
        )


def _to_numeric(path: Path, df: pd.DataFrame, layout: CovidLayout) -> pd.DataFrame:
    out = {}
    for col in df.columns:
        raw = df[col].str.strip()
        values = pd.to_numeric(raw, errors="coerce")
        bad = values.isna().to_numpy() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            cell = raw.iloc[i]
            what = (
                "an empty cell"
                if cell == ""
                else f"a non-finite value {cell!r}"
                if cell.lower().lstrip("+-") in _NONFINITE
                else f"a non-numeric value {cell!r}"
            )
            # data row i is line i + 2 of the file (1-based, after the header)
            raise DataError(
                path,
                f"{what} in column {col!r} at row {i + 1} (line {i + 2}); "
                f"{int(bad.sum())} bad cell(s) in that column",
            )
        out[col] = values.to_numpy(dtype=np.float64)
        if col != "id" and col not in set(layout.states):
            _check_percentages(path, col, out[col])
    table = pd.DataFrame(out)
    ids = table["id"].to_numpy()
    if not np.all(ids == np.round(ids)):
        raise DataError(path, "column 'id' must hold integers")
    table["id"] = ids.astype(np.int64)
    dup = table["id"].duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(path, f"duplicate id {table['id'].iloc[i]} at row {i + 1}")
    _warn_suspicious(path, table, layout)
    onehot = table[list(layout.states)].to_numpy()
    ok = np.isin(onehot, (0.0, 1.0)).all(axis=1) & (onehot.sum(axis=1) == 1)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise DataError(
            path,
            f"row {i + 1} (line {i + 2}): the state columns must be one-hot "
            f"(exactly one 1, the rest 0)",
        )
    return table


def _check_percentages(path: Path, col: str, values: np.ndarray) -> None:
    """Every survey feature and tested_positive is a percentage: outside [0, 100] is impossible."""
    bad = (values < 0) | (values > 100)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            path,
            f"impossible value {values[i]:g} in column {col!r} at row {i + 1} (line {i + 2}): "
            f"a percentage must lie in [0, 100]; {int(bad.sum())} such cell(s) in that column",
        )


#: A value further than this many interquartile ranges from its column's median is suspicious
#: (the 2021 and 2022 files reach 8 at most).
OUTLIER_IQRS = 20.0


def _warn_suspicious(path: Path, table: pd.DataFrame, layout: CovidLayout) -> None:
    """Warn (:class:`DataWarning`, naming the file, row and column) about values that are possible
    but look wrong: far outliers of their column, and columns constant over a file of several rows.
    """
    skip = {"id", *layout.states}
    for col in table.columns:
        if col in skip:
            continue
        v = table[col].to_numpy()
        if len(v) >= 4 and np.all(v == v[0]):
            warnings.warn(DataWarning(path, f"column {col!r} holds {v[0]:g} in every row"),
                          stacklevel=2)  # fmt: skip
            continue
        q1, med, q3 = np.percentile(v, [25, 50, 75])
        if len(v) < 8 or q3 <= q1:
            continue
        far = np.abs(v - med) > OUTLIER_IQRS * (q3 - q1)
        if far.any():
            i = int(np.flatnonzero(far)[0])
            warnings.warn(
                DataWarning(
                    path,
                    f"suspicious value {v[i]:g} in column {col!r} at row {i + 1} (line {i + 2}): "
                    f"{abs(v[i] - med) / (q3 - q1):.0f} interquartile ranges from the column's "
                    f"median {med:g}; {int(far.sum())} such cell(s) in that column",
                ),
                stacklevel=2,
            )


_NONFINITE = {"nan", "inf", "infinity", "na", "n/a", "null", "none"}


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
