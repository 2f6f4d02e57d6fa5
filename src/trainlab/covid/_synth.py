"""Small synthetic COVID files in the exact Kaggle layouts, for tests and demos without the data.

Each state gets a daily series of survey values (random walks around plausible levels) and a
``tested_positive`` that follows ``cli`` plus noise, as a 7-day moving average like the real one.
Windows of D consecutive days become rows exactly as in the Kaggle files: the training file lists
each state's windows in time order, the test file holds later windows (no shared days: they start
the day after the training days end, as the held-out evaluation rows do), shuffled, with the target
column removed. The header repeats the feature names per day, as the originals do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainlab.covid.files import LAYOUTS, TARGET_FEATURE, TEST_FILE, TRAIN_FILE


def synthetic_covid(
    dest: str | Path,
    layout: str = "2021",
    n_states: int | None = 6,
    train_windows: int = 30,
    test_windows: int = 8,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Write ``covid.train.csv`` and ``covid.test.csv`` into ``dest``.

    Args:
        dest: the folder (created if needed).
        layout: ``"2021"`` (40 states, 3 days x 18 features) or ``"2022"`` (37 states, 5 x 16).
        n_states: how many states have rows (all columns are always present); None: all.
        train_windows: windows per state in the training file.
        test_windows: windows per state in the test file (after a gap of D - 1 windows).
        seed: the random seed.

    Returns:
        The paths of the training and test files.
    """
    lay = LAYOUTS[layout]
    rng = np.random.default_rng(seed)
    n_st = len(lay.states) if n_states is None else min(n_states, len(lay.states))
    states = rng.choice(len(lay.states), size=n_st, replace=False)
    d = lay.n_days
    n_days = train_windows + (d - 1) + test_windows + (d - 1) + 8
    n_feat = len(lay.features)
    train_rows, test_rows = [], []
    for s in states:
        level = rng.uniform(5, 60, size=n_feat)
        walk = level * (1 + 0.02 * np.cumsum(rng.normal(size=(n_days, n_feat)), axis=0))
        walk = np.abs(walk) + 0.1
        daily_pos = 3 + 8 * walk[:, 0] / level[0] + rng.normal(0, 1.0, size=n_days)
        # tested_positive is a 7-day moving average, as in the survey data
        smooth = np.convolve(daily_pos, np.ones(7) / 7, mode="full")[6 : 6 + n_days - 6]
        values = walk[6:].copy()
        values[:, -1] = smooth[: len(values)]
        onehot = np.zeros(len(lay.states))
        onehot[s] = 1.0
        for w in range(train_windows):
            train_rows.append(np.concatenate([onehot, values[w : w + d].ravel()]))
        start = train_windows + d - 1
        for w in range(start, start + test_windows):
            test_rows.append(np.concatenate([onehot, values[w : w + d].ravel()[:-1]]))
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    header_days = [f for _ in range(d) for f in lay.features]
    train_path, test_path = dest / TRAIN_FILE, dest / TEST_FILE
    _write(train_path, ["id", *lay.states, *header_days], np.array(train_rows))
    test = np.array(test_rows)[rng.permutation(len(test_rows))]
    assert header_days[-1] == TARGET_FEATURE
    _write(test_path, ["id", *lay.states, *header_days[:-1]], test)
    return train_path, test_path


def _write(path: Path, header: list[str], rows: np.ndarray) -> None:
    lines = [",".join(header)]
    for i, row in enumerate(rows):
        lines.append(",".join([str(i), *(f"{v:.7g}" for v in row)]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
