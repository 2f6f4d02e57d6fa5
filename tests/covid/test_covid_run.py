"""The COVID task end to end on generated data (tiny epochs): outputs, saved files, predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from trainlab.covid._synth import synthetic_covid
from trainlab.covid.config import load_covid_config
from trainlab.covid.ensemble import Ensemble, load_ensemble
from trainlab.covid.files import CovidFrame, load_covid_dir, read_covid
from trainlab.covid.run import (
    evaluate_covid,
    load_for_diagnosis,
    predict_covid,
    predict_covid_info,
    train_covid,
)
from trainlab.covid.series import HistorySpec, time_order, with_history
from trainlab.errors import DataError

TINY = {
    "train": {"epochs": 4},
    "ensemble_seeds": 2,
    "fallback": {"train": {"epochs": 4}, "ensemble_seeds": 2},
    "folds": 3,
    "report": ["blocked", "random", "course"],
    "testlike_block": 6,
    "testlike_gap": 3,
    "testlike_sample": False,
    "holdout_rows": 5,
    "plot": False,
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 30 windows per state: enough for rows with history in every part of the run
    path = tmp_path_factory.mktemp("covid")
    synthetic_covid(path, n_states=4, train_windows=30, test_windows=5, seed=1)
    return path


@pytest.fixture(scope="module")
def run_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    cfg = load_covid_config(overrides={**TINY, "plot": True})
    train_covid(data_dir, out, cfg)
    return out


def test_train_writes_every_output(run_dir: Path, data_dir: Path) -> None:
    for name in (
        "submission.csv",
        "metrics.json",
        "config.json",
        "curves.png",
        "predictions.png",
        "model/model.json",
        "model/model.pt",
    ):
        assert (run_dir / name).is_file(), name
    sub = pd.read_csv(run_dir / "submission.csv")
    test_ids = pd.read_csv(data_dir / "covid.test.csv")["id"]
    assert list(sub.columns) == ["id", "tested_positive"]
    assert sub["id"].tolist() == test_ids.tolist() and np.isfinite(sub["tested_positive"]).all()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["schemes"]) == {"blocked", "random", "course", "later_days"}
    for name, scheme in metrics["schemes"].items():
        if name == "later_days":
            continue
        for ref in ("model", "mean", "persistence", "ridge", "ridge_tuned", "ridge_no_history"):
            assert np.isfinite(scheme[ref]["mse"])
        assert 0 < scheme["val_rows_with_history"] < scheme["val_rows_total"]
    later = metrics["later_days"]
    assert later["rows"] == 4 * 5 and later["history_rows"] == 20  # every state continues
    assert later["attached_chains"] == 4 and later["train_rows"] == 4 * (30 - 5 - 2)
    for ref in ("model", "mean", "persistence", "ridge", "ridge_tuned", "ridge_no_history"):
        assert np.isfinite(later[ref])
    # the synthetic test windows start the day after the training days: all get history
    assert metrics["test_rows"]["history_rows"] == 20
    meta = json.loads((run_dir / "model" / "model.json").read_text())
    assert meta["task"] == "covid" and meta["data"] == str(data_dir.resolve())
    tiers = [m["tier"] for m in meta["members"]]
    assert tiers == ["history", "history", "partial", "partial", "fallback", "fallback"]
    assert (
        meta["history"] == {"lags": 8, "weeks": 7, "back": 8}
        and (run_dir / "model/history.npz").is_file()
    )
    for info in meta["members"]:
        state = torch.load(run_dir / "model" / info["file"], weights_only=True)
        assert isinstance(state, dict) and info["features"] and info["normalizer"]["mean"]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["train"]["epochs"] == 4 and config["validation"] == "blocked"


def test_predict_reproduces_the_submission_and_validates_columns(
    run_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pred.csv"
    pred = predict_covid(run_dir, data_dir / "covid.test.csv", out)
    sub = pd.read_csv(run_dir / "submission.csv")
    np.testing.assert_allclose(pred, sub["tested_positive"], atol=1e-5)
    assert pd.read_csv(out).equals(pd.read_csv(run_dir / "submission.csv"))
    with pytest.raises(DataError, match="must not hold the target"):
        predict_covid(run_dir, data_dir / "covid.train.csv", out)
    bad = tmp_path / "bad.csv"
    pd.read_csv(data_dir / "covid.test.csv").drop(columns=["AL"]).to_csv(bad, index=False)
    with pytest.raises(DataError, match=r"bad\.csv: missing column\(s\) AL"):
        predict_covid(run_dir, bad, out)
    scores = evaluate_covid(run_dir, data_dir / "covid.train.csv")
    assert scores["rows"] == 120 and scores["model_mse"] >= 0


def test_load_for_diagnosis(run_dir: Path, data_dir: Path) -> None:
    target = load_for_diagnosis(run_dir / "model", None, batch=7, seed=0)
    assert target.inputs.shape[0] == 7 and target.targets.shape == (7,)
    assert target.inputs.dtype == torch.float32
    loss = target.loss_fn(target.model(target.inputs), target.targets)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert "covid" in target.description and "7 training rows" in target.description
    # the first member reads history: only rows whose history is known are usable
    train, _ = load_covid_dir(data_dir)
    cols = HistorySpec().columns()
    usable = int(np.isfinite(with_history(train, HistorySpec()).X[cols]).all(axis=1).sum())
    assert 0 < usable < 120
    assert load_for_diagnosis(run_dir, None, batch=10_000, seed=0).targets.shape == (usable,)


def test_corrupt_or_foreign_model_folders(run_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir / "model", copy)
    (copy / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match=r"model\.pt: corrupt weights file"):
        load_ensemble(copy)
    meta = json.loads((copy / "model.json").read_text())
    meta["task"] = "phoneme"
    (copy / "model.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="a model of task 'phoneme', not 'covid'"):
        load_ensemble(copy)
    with pytest.raises(DataError, match="empty: does not exist"):
        load_ensemble(tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"holds no model/model\.json or model\.json"):
        load_ensemble(tmp_path / "empty")


def test_runs_are_reproducible(data_dir: Path, tmp_path: Path) -> None:
    cfg = load_covid_config(overrides={**TINY, "ensemble_seeds": 1, "report": ["blocked"]})
    a = train_covid(data_dir, tmp_path / "a", cfg)
    b = train_covid(data_dir, tmp_path / "b", cfg)
    np.testing.assert_array_equal(a.test_predictions, b.test_predictions)
    assert (
        a.metrics["schemes"]["blocked"]["model"]["mse"]
        == b.metrics["schemes"]["blocked"]["model"]["mse"]
    )


def test_2022_layout_trains(tmp_path: Path) -> None:
    synthetic_covid(tmp_path / "short", layout="2022", n_states=3, train_windows=12, test_windows=4)
    cfg = load_covid_config(overrides={**TINY, "report": ["blocked"], "ensemble_seeds": 1})
    # 5-day windows need a gap of 4 windows on each side of a validation chunk
    with pytest.raises(DataError, match=r"short.covid\.train\.csv: .*leaves fold 2 no training"):
        train_covid(tmp_path / "short", tmp_path / "o", cfg)
    synthetic_covid(tmp_path / "d", layout="2022", n_states=3, train_windows=24, test_windows=4)
    run = train_covid(tmp_path / "d", tmp_path / "o", cfg)
    assert len(run.test_predictions) == 12
    assert json.loads((tmp_path / "o" / "model" / "model.json").read_text())["layout"] == "2022"


def _write_rows(path: Path, header: str, lines: list[str]) -> None:
    path.write_text("\n".join([header, *lines]) + "\n")


def test_later_days_is_what_predict_gives_on_the_held_out_file(
    run_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    """The simulation's number is reproduced by training on the shortened file and running the
    prediction of a saved model on the held-out rows in the test layout, shuffled."""
    metrics = json.loads((run_dir / "metrics.json").read_text())["later_days"]
    lines = (data_dir / "covid.train.csv").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    train, _ = load_covid_dir(data_dir)
    keep, hold = [], []
    for s in np.unique(train.state):
        idx = np.flatnonzero(train.state == s)  # the generated file is in time order
        keep += idx[:-7].tolist()
        hold += idx[-5:].tolist()
    short = tmp_path / "short"
    short.mkdir()
    _write_rows(short / "covid.train.csv", header, [rows[i] for i in sorted(keep)])
    (short / "covid.test.csv").write_text((data_dir / "covid.test.csv").read_text())
    order = np.random.default_rng(0).permutation(sorted(hold))
    held = tmp_path / "held.csv"
    _write_rows(held, header.rsplit(",", 1)[0], [rows[i].rsplit(",", 1)[0] for i in order])
    cfg = load_covid_config(overrides={**TINY, "report": ["blocked"], "later_days": False})
    train_covid(short, tmp_path / "run", cfg)
    pred, info = predict_covid_info(tmp_path / "run", held, tmp_path / "pred.csv")
    assert train.y is not None
    y = train.y[order]
    assert info["history_rows"] == len(order) and info["attached_chains"] == 4
    assert np.mean((pred - y) ** 2) == pytest.approx(metrics["model"], rel=1e-6)
    assert np.mean((train.persistence()[order] - y) ** 2) == pytest.approx(
        metrics["persistence"], rel=1e-9
    )


def _test_frame(data_dir: Path) -> tuple[CovidFrame, np.ndarray]:
    test = read_covid(data_dir / "covid.test.csv", train=False)
    return test, time_order(test)


def test_predictions_never_read_the_row_target_day_or_later_rows(
    run_dir: Path, data_dir: Path
) -> None:
    ensemble = load_ensemble(run_dir)
    test, order = _test_frame(data_dir)
    before, info = ensemble.predict_info(test)
    assert info["history_rows"] == len(test)  # the check below covers the history tier
    rng = np.random.default_rng(0)
    state = test.state
    for r in np.flatnonzero(order == 1):  # each state's second window
        x = test.X.copy()
        same = state == state[r]
        nxt = np.flatnonzero(same & (order == order[r] + 1))
        x.loc[nxt, "tested_positive_d2"] += 3.0  # the next window's day 2 is r's target day
        later = np.flatnonzero(same & (order > order[r] + 1))
        days = [c for c in x.columns if c not in test.layout.states]
        x.loc[later, days] = x.loc[later, days].to_numpy() + rng.normal(
            size=(len(later), len(days))
        )
        after = ensemble.predict(CovidFrame(test.path, test.layout, test.ids, x, None))
        assert after[r] == before[r]
        assert not np.allclose(after[later], before[later])  # the edit did reach the model


def test_unconnected_rows_use_the_fallback_networks(run_dir: Path, data_dir: Path) -> None:
    ensemble = load_ensemble(run_dir)
    test, order = _test_frame(data_dir)
    # every other window of the second half, levels moved: no overlap, no continuation
    rows = np.flatnonzero(order % 2 == 0)
    x = test.X.iloc[rows].reset_index(drop=True).copy()
    days = [c for c in x.columns if c not in test.layout.states]
    x[days] = x[days] * 1.5 + 4.0
    far = CovidFrame(test.path, test.layout, test.ids[rows], x, None)
    pred, info = ensemble.predict_info(far)
    assert info["history_rows"] == 0 and info["attached_chains"] == 0
    fallback = [m for m in ensemble.members if not m.uses_history]
    assert len(fallback) == 2
    np.testing.assert_allclose(pred, np.mean([m.predict(far) for m in fallback], axis=0))
    assert isinstance(ensemble, Ensemble) and ensemble.tails is not None


@pytest.mark.slow
def test_default_beats_the_references_on_real_data(shared_data: Path, tmp_path: Path) -> None:
    """The headline claim on the real 2021 data: on blocked folds and on the later days the
    default model beats persistence and ridge without history clearly, and matches ridge given
    the same history features (the signal is linear once the earlier days are known)."""
    data = shared_data / "covid"
    if not (data / "covid.train.csv").is_file():
        pytest.skip(f"covid data not found at {data}")
    cfg = load_covid_config(overrides={"report": ["blocked"], "plot": False})
    run = train_covid(data, tmp_path, cfg)
    blocked = run.metrics["schemes"]["blocked"]
    model = blocked["model"]["mse"]
    assert blocked["persistence"]["mse"] == pytest.approx(0.9474, abs=1e-4)  # needs no training
    assert model < 0.8 * blocked["persistence"]["mse"]
    assert model < 0.8 * blocked["ridge_no_history"]["mse"]
    assert model < 1.01 * min(blocked["ridge"]["mse"], blocked["ridge_tuned"]["mse"])
    later = run.metrics["later_days"]
    assert later["rows"] == 560 and later["history_rows"] == 560  # all 40 states continue
    assert (
        later["model"] < 0.7 * later["persistence"]
        and later["model"] < 0.7 * later["ridge_no_history"]
    )
    assert later["model"] < 1.02 * later["ridge"]
    # the Kaggle test rows lie weeks away from the training days and share no day: no history
    assert run.metrics["test_rows"]["history_rows"] == 0
    sub = pd.read_csv(tmp_path / "submission.csv")
    assert len(sub) == 893 and sub["id"].tolist() == list(range(893))


def test_train_writes_the_doctors_records_per_tier(
    run_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    """Every network of the final ensemble trained by gradient steps is watched: one run per
    tier (its seeds train together), and ``trainlab doctor OUT`` reads them all."""
    from trainlab.cli import main
    from trainlab.doctor import read_records

    folders = sorted(p.parent.name for p in (run_dir / "doctor").rglob("doctor.jsonl"))
    assert folders == ["fallback", "history", "partial"]
    for tier in folders:
        records = read_records(run_dir / "doctor" / tier)
        assert records.status == "finished"
        assert len(records.epochs) == 4 and records.end is not None
    assert main(["doctor", str(run_dir), "--quiet", "--no-plot"]) == 0
    for tier in folders:
        found = json.loads((run_dir / "doctor" / tier / "doctor.json").read_text())
        assert found["findings"] and found["run"]["epochs"] == 4
    # the doctor's files beside the model do not break the run's own checks
    out = tmp_path / "p.csv"
    predict_covid(run_dir, data_dir / "covid.test.csv", out)
    assert out.read_text() == (run_dir / "submission.csv").read_text()


def test_records_leave_the_training_unchanged(
    data_dir: Path, run_dir: Path, tmp_path: Path
) -> None:
    overrides = {**TINY, "plot": True, "train": {"epochs": 4, "doctor": False}}
    cfg = load_covid_config(overrides=overrides)
    train_covid(data_dir, tmp_path, cfg)
    assert not (tmp_path / "doctor").exists()
    for name in ("submission.csv", "model/model.pt", "model/member_1.pt"):
        assert (tmp_path / name).read_bytes() == (run_dir / name).read_bytes(), name
