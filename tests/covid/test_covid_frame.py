"""Feature sets, z-scoring with training statistics and row subsets of COVID frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainlab.covid._synth import synthetic_covid
from trainlab.covid.files import LAYOUTS, load_covid_dir
from trainlab.covid.frame import Standardizer, select_features, subset
from trainlab.errors import ConfigError


def test_feature_sets(synth: tuple[Path, str]) -> None:
    folder, name = synth
    train, _ = load_covid_dir(folder)
    lay = LAYOUTS[name]
    n_day = lay.n_days * len(lay.features) - 1
    assert len(select_features("all", train)) == len(lay.states) + n_day
    assert select_features("no_states", train) == [
        c for c in train.X.columns if c not in lay.states
    ]
    survey = select_features("survey14", train)
    assert len(survey) == 5 * lay.n_days - 1  # 4 survey features per day + earlier tested_positive
    assert "tested_positive_d1" in survey and lay.target not in survey
    assert select_features("cols:cli_d1,ili_d2", train) == ["cli_d1", "ili_d2"]
    assert len(select_features("select:5", train)) == 5
    for bad in ("select:0", "select:x", "bogus", "cols:nope"):
        with pytest.raises(ConfigError):
            select_features(bad, train)


def test_select_k_scores_the_training_rows_only(tmp_path: Path) -> None:
    synthetic_covid(tmp_path, n_states=3, train_windows=20, test_windows=3)
    train, _ = load_covid_dir(tmp_path)
    assert train.y is not None
    # 'shop_d1' equals the target on the first 30 rows and is noise elsewhere: only a score
    # computed on exactly those rows ranks it first.
    x = train.X.copy()
    x["shop_d1"] = np.random.default_rng(0).normal(size=len(x))
    x.loc[:29, "shop_d1"] = train.y[:30]
    leaky = type(train)(train.path, train.layout, train.ids, x, train.y)
    assert select_features("select:1", leaky, np.arange(30)) == ["shop_d1"]
    assert "shop_d1" not in select_features("select:3", leaky, np.arange(30, len(x)))


def test_standardizer_uses_training_statistics_unchanged(synth: tuple[Path, str]) -> None:
    folder, _ = synth
    train, test = load_covid_dir(folder)
    cols = select_features("all", train)
    rows = np.arange(20)
    sc = Standardizer.fit(train.X.iloc[rows][cols], skip=train.layout.states)
    z = sc.transform(train.X.iloc[rows])
    day = [i for i, c in enumerate(cols) if c not in train.layout.states]
    states = [i for i, c in enumerate(cols) if c in train.layout.states]
    np.testing.assert_allclose(z[:, day].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_array_equal(
        z[:, states], train.X.iloc[rows][list(train.layout.states)].to_numpy()
    )
    zt = sc.transform(test.X)
    expected = (test.X[cols].to_numpy() - sc.mean) / sc.std
    np.testing.assert_allclose(zt, expected, rtol=1e-5, atol=1e-5)
    again = Standardizer.from_state_dict(sc.state_dict())
    np.testing.assert_array_equal(again.transform(test.X), zt)


def test_subset_keeps_the_rows_in_order_and_drops_the_target_on_request(
    synth: tuple[Path, str],
) -> None:
    folder, _ = synth
    train, _ = load_covid_dir(folder)
    assert train.y is not None
    rows = np.array([7, 2, 11])
    part = subset(train, rows)
    np.testing.assert_array_equal(part.ids, train.ids[rows])
    np.testing.assert_array_equal(part.X.to_numpy(), train.X.to_numpy()[rows])
    assert list(part.X.index) == [0, 1, 2] and part.y is not None
    np.testing.assert_array_equal(part.y, train.y[rows])
    np.testing.assert_array_equal(part.persistence(), train.persistence()[rows])
    unlabelled = subset(train, rows, with_target=False)
    assert unlabelled.y is None and unlabelled.layout is train.layout
