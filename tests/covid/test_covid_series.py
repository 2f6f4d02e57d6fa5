"""Rebuilding each state's daily series from overlapping windows, and history features that read
only days before the target day (generated series with known values; the real files where present).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trainlab.covid._synth import synthetic_covid
from trainlab.covid.files import LAYOUTS, TARGET_FEATURE, CovidFrame, load_covid_dir
from trainlab.covid.series import (
    HistorySpec,
    SeriesTails,
    build_timeline,
    chain_rows,
    history_features,
    noise_estimate,
    time_order,
    with_history,
)
from trainlab.errors import DataError

SPEC = HistorySpec(lags=8, weeks=7)


def _series(layout: str, n_days: int, seed: int) -> np.ndarray:
    """(n_days, F) daily values: every feature a 7-day moving average of a noisy random walk."""
    lay = LAYOUTS[layout]
    rng = np.random.default_rng(seed)
    f = len(lay.features)
    daily = 10 + np.cumsum(rng.normal(0, 0.3, size=(n_days + 6, f)), axis=0)
    daily += rng.normal(0, 1.0, size=daily.shape)
    kernel = np.ones(7) / 7
    return np.stack([np.convolve(daily[:, k], kernel, mode="valid") for k in range(f)], axis=1)


def _frame(
    layout: str,
    series: dict[int, np.ndarray],
    windows: list[tuple[int, int]],
    with_target: bool = True,
) -> CovidFrame:
    """Rows for the windows (state, first day) of the given per-state daily series."""
    lay = LAYOUTS[layout]
    d = lay.n_days
    rows, ys = [], []
    for s, start in windows:
        onehot = np.zeros(len(lay.states))
        onehot[s] = 1.0
        days = series[s][start : start + d]  # (D, F)
        rows.append(np.concatenate([onehot, days.ravel()[:-1]]))
        ys.append(days[-1, -1])
    names = list(lay.states) + lay.day_columns()[:-1]
    x = pd.DataFrame(np.array(rows), columns=names)[lay.input_columns()]
    ids = np.arange(len(rows), dtype=np.int64)
    return CovidFrame(Path("generated.csv"), lay, ids, x, np.array(ys) if with_target else None)


def _reference(tp: np.ndarray, t: int, spec: HistorySpec, known: np.ndarray | None = None) -> list:
    """History features of the row ending on day t, from the full tp series, one by one."""
    known = np.ones(len(tp), bool) if known is None else known

    def at(day: int) -> float:
        return float(tp[day]) if 0 <= day < t and known[day] else np.nan

    out = [at(t - k) - at(t - k - 1) for k in range(1, spec.lags + 1)]
    e = []
    for m in range(1, spec.weeks + 1):
        s = t - 7 * m
        v = 7 * ((at(s) - at(s - 1)) - (at(s + 3) - at(s - 4)) / 7)
        if not np.isfinite(v):
            break
        e.append(v)
    m = len(e)
    out.append(sum((m + 1 - j) / (m + 1) * e[j - 1] for j in range(1, m + 1)) if m else np.nan)
    return out


def _features(frame: CovidFrame, **kw) -> np.ndarray:  # type: ignore[no-untyped-def]
    return with_history(frame, SPEC, **kw).X[SPEC.columns()].to_numpy()


@pytest.mark.parametrize("layout", ["2021", "2022"])
def test_chaining_rebuilds_every_state_series_from_shuffled_rows(layout: str) -> None:
    series = {3: _series(layout, 40, 0), 7: _series(layout, 33, 1)}
    d = LAYOUTS[layout].n_days
    windows = [(s, w) for s, v in series.items() for w in range(len(v) - d + 1)]
    perm = np.random.default_rng(0).permutation(len(windows))
    frame = _frame(layout, series, [windows[i] for i in perm])
    timeline = build_timeline(frame)
    assert len(timeline.state) == 2  # one chain per state
    for k, s in enumerate(timeline.state):
        np.testing.assert_array_equal(timeline.values[k, : len(series[s])], series[s])
    # every row sits where its window starts: its last day is (first day + D - 1)
    starts = np.array([windows[i][1] for i in perm])
    np.testing.assert_array_equal(timeline.row_end, starts + d - 1)
    # time_order is the same chaining
    np.testing.assert_array_equal(time_order(frame), starts)
    assert sum(len(c) for c in chain_rows(frame)) == len(frame)


def test_time_order_recovers_shuffled_windows(tmp_path: Path) -> None:
    synthetic_covid(tmp_path, n_states=5, train_windows=15, test_windows=4, seed=3)
    train, _ = load_covid_dir(tmp_path)
    truth = time_order(train)
    # the generated training file is in time order within each state
    for s in np.unique(train.state):
        np.testing.assert_array_equal(truth[train.state == s], np.arange(15))
    perm = np.random.default_rng(0).permutation(len(train))
    shuffled = type(train)(
        train.path,
        train.layout,
        train.ids[perm],
        train.X.iloc[perm].reset_index(drop=True),
        train.y[perm],
    )
    np.testing.assert_array_equal(time_order(shuffled), truth[perm])


def test_history_features_equal_a_direct_computation() -> None:
    series = {0: _series("2021", 70, 2), 5: _series("2021", 45, 3)}
    windows = [(s, w) for s, v in series.items() for w in range(len(v) - 2)]
    perm = np.random.default_rng(1).permutation(len(windows))
    frame = _frame("2021", series, [windows[i] for i in perm])
    got = _features(frame)
    tp = {s: v[:, LAYOUTS["2021"].features.index(TARGET_FEATURE)] for s, v in series.items()}
    expected = np.array([_reference(tp[s], w + 2, SPEC) for s, w in (windows[i] for i in perm)])
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    # rows need 11 days before the target day; the noise estimate uses up to 7 whole weeks
    starts = np.array([windows[i][1] for i in perm])
    assert np.isfinite(got).all(axis=1).tolist() == (starts + 2 >= 11).tolist()


def test_noise_estimate_weights_recover_the_noise_of_a_week_ago() -> None:
    # x_j = n_j - n_{j+1} of independent noise: the estimate of n_1 from m differences has
    # error variance 1 / (m + 1); with a flat trend the detrended changes are exactly that.
    rng = np.random.default_rng(0)
    n, weeks = 20000, 3
    noise = rng.normal(size=(n, weeks + 1))
    x = noise[:, :-1] - noise[:, 1:]  # (n, weeks)
    # g[:, j] = tp(t-1-j) with tp changes 0 except x_m / 7 on day t-7m (and trend 0 on average)
    g = np.zeros((n, 7 * weeks + 4))
    for m in range(1, weeks + 1):
        g[:, : 7 * m] += x[:, m - 1 : m] / 7  # a step of x_m / 7 between days t-7m-1 and t-7m
    est = noise_estimate(g, weeks)
    # the step also moves the centred trend by x_m / 49: the estimate is 6/7 of the ideal one
    ideal = sum((weeks + 1 - j) / (weeks + 1) * x[:, j - 1] for j in range(1, weeks + 1))
    np.testing.assert_allclose(est, ideal * 6 / 7, rtol=1e-9, atol=1e-12)
    assert abs(np.var(noise[:, 0] - ideal) - 1 / (weeks + 1)) < 0.02


@pytest.mark.parametrize("with_target", [True, False])
def test_features_never_read_the_target_day_or_later_rows(with_target: bool) -> None:
    series = {2: _series("2021", 60, 4)}
    windows = [(2, w) for w in range(58)]
    frame = _frame("2021", series, windows, with_target=with_target)
    before = _features(frame)
    rng = np.random.default_rng(0)
    for r in (12, 30, 57):
        assert np.isfinite(before[r]).all()  # the check below is not vacuous
        x, y = frame.X.copy(), None if frame.y is None else frame.y.copy()
        if y is not None:
            y[r] += 5.0  # the row's own target
        # the next row's day 2 is this row's target day: change it alone, keeping the chain
        if r + 1 < len(frame):
            x.loc[r + 1, "tested_positive_d2"] += 7.0
        # every later row entirely
        later = np.arange(r + 2, len(frame))
        cols = [c for c in x.columns if c not in LAYOUTS["2021"].states]
        x.loc[later, cols] = rng.normal(size=(len(later), len(cols)))
        if y is not None:
            y[later] = rng.normal(size=len(later))
        changed = CovidFrame(frame.path, frame.layout, frame.ids, x, y)
        np.testing.assert_array_equal(_features(changed)[r], before[r])


def test_prediction_time_history_continues_the_stored_training_days() -> None:
    series = {1: _series("2021", 80, 5), 4: _series("2021", 80, 6)}
    lay = LAYOUTS["2021"]
    train_w = [(s, w) for s in series for w in range(50)]
    held_w = [(s, w) for s in series for w in range(52, 66)]  # 2 windows dropped in between
    train = _frame("2021", series, train_w)
    tails = build_timeline(train).tails(list(lay.features), SPEC.depth + 3)
    held = _frame("2021", series, held_w[::-1], with_target=False)  # any row order
    timeline = build_timeline(held, tails)
    assert timeline.attached.all() and len(timeline.state) == 2
    got = _features(held, timeline=timeline)
    # the same rows in one file with every earlier window: identical features
    whole = _frame("2021", series, [(s, w) for s in series for w in range(66)])
    ref = _features(whole)
    index = {w: i for i, w in enumerate((s, w) for s in series for w in range(66))}
    np.testing.assert_array_equal(got, ref[[index[w] for w in held_w[::-1]]])
    assert np.isfinite(got).all()
    # rows repeating training days attach by their exact overlap
    again = _frame("2021", series, [(1, 45), (1, 46), (1, 47)], with_target=False)
    tl_again = build_timeline(again, tails)
    assert tl_again.attached.all()
    np.testing.assert_array_equal(
        _features(again, timeline=tl_again), ref[[index[(1, w)] for w in (45, 46, 47)]]
    )


def test_unconnected_windows_fall_back_to_their_own_rows() -> None:
    series = {1: _series("2021", 140, 7)}
    lay = LAYOUTS["2021"]
    train = _frame("2021", series, [(1, w) for w in range(50)])
    tails = build_timeline(train).tails(list(lay.features), SPEC.depth + 3)
    # weeks later, non-overlapping windows (like the Kaggle test rows): nothing to attach to
    far = _frame("2021", series, [(1, w) for w in range(90, 130, 3)], with_target=False)
    timeline = build_timeline(far, tails)
    assert not timeline.attached.any() and len(timeline.state) == len(far)
    feats = _features(far, timeline=timeline)
    assert not np.isfinite(feats).all(axis=1).any()  # only the row's own day-1 change is known
    np.testing.assert_allclose(
        feats[:, 0], far.X["tested_positive_d2"] - far.X["tested_positive_d1"], rtol=1e-12
    )
    # a later chain of its own rows: history from those rows only, once it is long enough
    own = _frame("2021", series, [(1, w) for w in range(100, 115)], with_target=False)
    feats = _features(own, tails=tails)
    has = np.isfinite(feats).all(axis=1)
    assert has.tolist() == [w + 2 - 100 >= 11 for w in range(100, 115)]


def test_hidden_rows_are_unknown_days_for_the_others() -> None:
    series = {0: _series("2021", 50, 8)}
    frame = _frame("2021", series, [(0, w) for w in range(48)])
    hide = np.arange(20, 25)  # windows 20..24: days 20..26
    got = _features(frame, hide_rows=hide)
    tp = series[0][:, -1]
    known = np.ones(len(tp), bool)
    known[20:27] = False
    expected = np.array([_reference(tp, w + 2, SPEC, known) for w in range(48)])
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    # right after the hidden block the lags are unknown; later rows get fewer noise weeks
    assert np.isnan(got[30]).any() and np.isfinite(got[40]).all()


def test_series_tails_round_trip_and_corrupt_file(tmp_path: Path) -> None:
    series = {0: _series("2022", 30, 9), 3: _series("2022", 20, 10)}
    frame = _frame("2022", series, [(s, w) for s, v in series.items() for w in range(len(v) - 4)])
    tails = build_timeline(frame).tails(list(frame.layout.features), 25)
    assert tails.values.shape == (2, 25, len(frame.layout.features))
    assert np.isnan(tails.values[1, :5]).all()  # 20 days, front-padded
    path = tmp_path / "history.npz"
    tails.save(path)
    back = SeriesTails.load(path)
    assert back.features == tails.features
    np.testing.assert_array_equal(back.values, tails.values)
    np.testing.assert_array_equal(back.step_scale, tails.step_scale)
    path.write_bytes(b"not an npz file")
    with pytest.raises(DataError, match=r"history\.npz: corrupt stored training series"):
        SeriesTails.load(path)
    with pytest.raises(DataError, match="stored training series missing"):
        SeriesTails.load(tmp_path / "none.npz")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("values", lambda t: t.values[:, :, :-1]),
        ("values", lambda t: t.values[0]),
        ("state", lambda t: t.state[:1]),
        ("step_scale", lambda t: t.step_scale[:-1]),
        ("step_scale", lambda t: -t.step_scale),
    ],
)
def test_stored_series_of_the_wrong_shape_are_refused_by_field(
    field: str, value: object, tmp_path: Path
) -> None:
    import dataclasses

    series = {0: _series("2021", 30, 9), 3: _series("2021", 20, 10)}
    frame = _frame("2021", series, [(s, w) for s, v in series.items() for w in range(len(v) - 2)])
    tails = build_timeline(frame).tails(list(frame.layout.features), 25)
    bad = dataclasses.replace(tails, **{field: value(tails)})  # type: ignore[operator]
    path = tmp_path / "history.npz"
    bad.save(path)
    with pytest.raises(DataError, match=rf"history\.npz: field '{field}'"):
        SeriesTails.load(path)


def test_history_columns_of_frames_and_spec() -> None:
    assert SPEC.columns()[0] == "hist_tp_change_1" and SPEC.columns()[-1] == "hist_tp_noise_7"
    assert (SPEC.depth, SPEC.min_depth) == (53, 11)
    assert HistorySpec(lags=3, weeks=0).columns() == [f"hist_tp_change_{k}" for k in (1, 2, 3)]
    series = {0: _series("2021", 20, 11)}
    frame = _frame("2021", series, [(0, w) for w in range(18)])
    out = with_history(with_history(frame, SPEC), HistorySpec(lags=2, weeks=0))
    assert [c for c in out.X.columns if c.startswith("hist_")] == [
        "hist_tp_change_1",
        "hist_tp_change_2",
    ]
    tp = series[0][:, -1]
    timeline = build_timeline(frame)
    h = history_features(
        timeline, HistorySpec(2, 0), LAYOUTS["2021"].features.index("tested_positive")
    )
    np.testing.assert_allclose(h.iloc[5, 0], tp[6] - tp[5])  # row 5 ends on day 7


def test_real_files_time_relation(shared_data: Path) -> None:
    """The real 2021 files: one chain of consecutive windows per state in the training file; the
    test rows share no day with it or with each other and lie weeks away, so they get no history;
    the held-out construction (last 14 windows after 2 dropped) continues every state."""
    data = shared_data / "covid"
    if not (data / "covid.train.csv").is_file():
        pytest.skip(f"covid data not found at {data}")
    train, test = load_covid_dir(data)
    timeline = build_timeline(train)
    assert len(timeline.state) == 40 and sorted(timeline.state.tolist()) == list(range(40))
    tails = timeline.tails(list(train.layout.features), SPEC.depth + 3)
    tl_test = build_timeline(test, tails)
    assert len(tl_test.state) == len(test) and not tl_test.attached.any()
    order = time_order(train)
    hold, keep = [], []
    for s in range(40):
        rows = np.flatnonzero(train.state == s)
        rows = rows[np.argsort(order[rows])]
        hold += rows[-14:].tolist()
        keep += rows[:-16].tolist()

    def part(rows: list[int], target: bool) -> CovidFrame:
        idx = np.array(sorted(rows))
        y = train.y[idx] if target and train.y is not None else None
        return CovidFrame(
            train.path, train.layout, train.ids[idx], train.X.iloc[idx].reset_index(drop=True), y
        )

    first = part(keep, True)
    later = part(hold, False)
    tl = build_timeline(later, build_timeline(first).tails(list(train.layout.features), 60))
    assert tl.attached.all() and len(tl.state) == 40
    got = _features(later, timeline=tl)
    full = _features(train)
    np.testing.assert_array_equal(got, full[np.array(sorted(hold))])
    assert np.isfinite(got).all()


def test_a_chance_small_jump_across_unknown_days_is_not_continuity() -> None:
    """Windows two weeks after the training days: in a state that does not move, the jump
    looks like one day's, but the file as a whole does not continue the training days, so no
    history is read across the gap; a file that does continue them attaches in every state."""
    series = {s: _series("2021", 90, 20 + s) for s in range(6)}
    series[0] = np.repeat(series[0][:1], 90, axis=0) + 1e-3 * np.arange(90)[:, None]  # flat
    lay = LAYOUTS["2021"]
    train = _frame("2021", series, [(s, w) for s in series for w in range(50)])
    tails = build_timeline(train).tails(list(lay.features), SPEC.depth + 3)
    gap = _frame("2021", series, [(s, w) for s in series for w in range(66, 84, 3)], False)
    tl = build_timeline(gap, tails, link=True)
    assert not tl.attached.any()
    assert not np.isfinite(_features(gap, timeline=tl)).all(axis=1).any()
    later = _frame("2021", series, [(s, w) for s in series for w in range(52, 60)], False)
    assert build_timeline(later, tails, link=True).attached.all()


def test_real_testlike_blocks_get_no_history_across_their_gap(shared_data: Path) -> None:
    """Both test-like splits of the real file: every held-out chain lies two weeks from its
    training days, so none attaches to them (only the test-layout history of its own block)."""
    from trainlab.covid.folds import testlike_split
    from trainlab.covid.frame import subset

    data = shared_data / "covid"
    if not (data / "covid.train.csv").is_file():
        pytest.skip(f"covid data not found at {data}")
    train, _ = load_covid_dir(data)
    order = time_order(train)
    for side in ("after", "before"):
        tr, ho = testlike_split(order, train.state, 3, 15, 14, side)
        tails = build_timeline(subset(train, tr)).tails(list(train.layout.features), 60)
        tl = build_timeline(subset(train, ho, with_target=False), tails, link=True)
        assert not tl.attached.any(), side
