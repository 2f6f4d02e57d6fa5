"""Validation splits of the COVID windows: blocked in time, random, course; the later-days split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainlab.covid._synth import synthetic_covid
from trainlab.covid.files import load_covid_dir
from trainlab.covid.folds import holdout_problem, holdout_split, make_folds
from trainlab.covid.series import time_order
from trainlab.errors import ConfigError


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("covid_folds")
    synthetic_covid(path, n_states=4, train_windows=30, test_windows=5, seed=1)
    return path


def test_blocked_folds_keep_validation_days_out_of_training(data_dir: Path) -> None:
    train, _ = load_covid_dir(data_dir)
    order = time_order(train)
    folds = make_folds("blocked", train.state, order, k=3, gap=2)
    seen = np.concatenate([f.val for f in folds])
    assert sorted(seen.tolist()) == list(range(len(train)))
    for f in folds:
        assert not set(f.train) & set(f.val)
        for s in np.unique(train.state):
            val_t = order[f.val[train.state[f.val] == s]]
            tr_t = order[f.train[train.state[f.train] == s]]
            assert np.all(np.diff(np.sort(val_t)) == 1)  # contiguous in time
            # no training window within 2 windows of a validation window: no shared day
            assert np.min(np.abs(tr_t[:, None] - val_t[None, :])) > 2
    course = make_folds("course", train.state, order)
    assert course[0].val.tolist() == list(range(0, len(train), 10))
    rnd = make_folds("random", train.state, order, k=3, seed=1)
    assert sorted(np.concatenate([f.val for f in rnd]).tolist()) == list(range(len(train)))


def test_holdout_split_keeps_each_state_s_last_windows_after_a_gap(data_dir: Path) -> None:
    train, _ = load_covid_dir(data_dir)
    order = time_order(train)
    tr, ho = holdout_split(order, train.state, rows=5, gap=2)
    assert len(ho) == 4 * 5 and len(tr) == 4 * (30 - 5 - 2)
    assert not set(tr) & set(ho)
    for s in np.unique(train.state):
        t_tr = order[tr[train.state[tr] == s]]
        t_ho = order[ho[train.state[ho] == s]]
        assert sorted(t_ho.tolist()) == list(range(25, 30))
        assert t_tr.max() == 22  # windows 23 and 24 dropped: no shared day
    assert holdout_problem(train.state, 5, 2) is None
    assert "at least 36 windows per state" in str(holdout_problem(train.state, 30, 4))
    with pytest.raises(ConfigError, match="later-days simulation needs at least 36"):
        holdout_split(order, train.state, rows=30, gap=4)
