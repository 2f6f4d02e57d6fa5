"""The COVID task end to end on generated data (tiny epochs), its model, config and saved files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from trainlab.data._covid_synth import synthetic_covid
from trainlab.data.covid import load_covid_dir, make_folds, time_order
from trainlab.errors import ConfigError, DataError
from trainlab.tasks._covid_model import CovidMLP, make_loss
from trainlab.tasks.covid import (
    evaluate_covid,
    load_covid_config,
    load_ensemble,
    load_for_diagnosis,
    predict_covid,
    preset,
    train_covid,
)

TINY = {"train": {"epochs": 4}, "ensemble_seeds": 2, "folds": 3, "plot": False}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("covid")
    synthetic_covid(path, n_states=4, train_windows=15, test_windows=5, seed=1)
    return path


@pytest.fixture(scope="module")
def run_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    cfg = load_covid_config(overrides={**TINY, "plot": True})
    train_covid(data_dir, out, cfg)
    return out


def test_mlp_shapes_and_penalties() -> None:
    torch.manual_seed(0)
    model = CovidMLP(5, [4, 3], "gelu", batch_norm=True, dropout=0.1, linear_skip=True)
    x, y = torch.randn(8, 5), torch.randn(8)
    assert model(x).shape == (8,)
    weights = model.weight_matrices()
    assert len(weights) == 4  # three layers of the path and the skip
    loss = make_loss(model, "mse", l1=0.01, l2=0.1)
    out = model(x)
    expected = (
        torch.nn.functional.mse_loss(out, y)
        + 0.01 * sum(w.abs().sum() for w in weights)
        + 0.1 * sum((w**2).sum() for w in weights)
    )
    torch.testing.assert_close(loss(out, y), expected)
    model.eval()
    out = model(x)
    torch.testing.assert_close(loss(out, y), torch.nn.functional.mse_loss(out, y))
    huber = make_loss(model, "huber", huber_delta=0.5)
    torch.testing.assert_close(huber(out, y), torch.nn.functional.huber_loss(out, y, delta=0.5))
    with pytest.raises(ConfigError, match="unknown loss"):
        make_loss(model, "hinge")
    with pytest.raises(ConfigError, match="unknown activation"):
        CovidMLP(3, [2], "swoosh")


def test_presets_and_config_files(tmp_path: Path) -> None:
    sample = preset("sample")
    assert (
        sample.features == "all"
        and sample.model.widths == [64]
        and sample.model.activation == "relu"
    )
    assert sample.train.optimizer == "sgd" and sample.train.optimizer_kwargs == {
        "lr": 1e-3,
        "momentum": 0.9,
    }
    assert (sample.train.batch_size, sample.train.epochs, sample.train.patience) == (270, 3000, 200)
    assert sample.validation == "course" and sample.target == "raw" and sample.loss == "mse"
    default = preset("default")
    assert default.validation == "blocked"
    path = tmp_path / "c.toml"
    path.write_text(
        'preset = "sample"\nfeatures = "survey14"\n[train]\nepochs = 7\n[model]\nwidths = [8, 4]\n'
    )
    cfg = load_covid_config(path, seed=5)
    assert cfg.features == "survey14" and cfg.train.epochs == 7 and cfg.model.widths == [8, 4]
    assert cfg.train.optimizer == "sgd" and cfg.train.patience == 200  # kept from the preset
    assert cfg.seed == 5 and cfg.train.seed == 5
    path.write_text("bogus = 1\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_covid_config(path)
    with pytest.raises(ConfigError, match="unknown validation scheme"):
        load_covid_config(overrides={"validation": "future"})
    with pytest.raises(ConfigError, match="unknown preset"):
        load_covid_config(preset_name="best")


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
    assert set(metrics["schemes"]) == {"blocked", "random", "course"}
    for scheme in metrics["schemes"].values():
        for name in ("model", "mean", "persistence", "ridge", "ridge_tuned"):
            assert np.isfinite(scheme[name]["mse"])
    meta = json.loads((run_dir / "model" / "model.json").read_text())
    assert meta["task"] == "covid" and meta["data"] == str(data_dir.resolve())
    assert len(meta["members"]) == 3 * 2  # folds x seeds
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
    assert scores["rows"] == 60 and scores["model_mse"] >= 0


def test_load_for_diagnosis(run_dir: Path) -> None:
    target = load_for_diagnosis(run_dir / "model", None, batch=7, seed=0)
    assert target.inputs.shape[0] == 7 and target.targets.shape == (7,)
    assert target.inputs.dtype == torch.float32
    loss = target.loss_fn(target.model(target.inputs), target.targets)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert "covid" in target.description and "7 training rows" in target.description
    assert load_for_diagnosis(run_dir, None, batch=10_000, seed=0).targets.shape == (60,)


def test_corrupt_or_foreign_model_folders(run_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir / "model", copy)
    (copy / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match=r"model\.pt: corrupt or unreadable weights"):
        load_ensemble(copy)
    meta = json.loads((copy / "model.json").read_text())
    meta["task"] = "phoneme"
    (copy / "model.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="not a covid model"):
        load_ensemble(copy)
    with pytest.raises(DataError, match="no model.json"):
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
    with pytest.raises(ConfigError, match="leaves fold 2 no training rows"):
        train_covid(tmp_path / "short", tmp_path / "o", cfg)
    synthetic_covid(tmp_path / "d", layout="2022", n_states=3, train_windows=24, test_windows=4)
    run = train_covid(tmp_path / "d", tmp_path / "o", cfg)
    assert len(run.test_predictions) == 12
    assert json.loads((tmp_path / "o" / "model" / "model.json").read_text())["layout"] == "2022"


def test_config_files_match_the_presets() -> None:
    from trainlab.config import to_dict

    configs = Path(__file__).resolve().parents[2] / "configs"
    assert to_dict(load_covid_config(configs / "covid_default.toml")) == to_dict(preset("default"))
    assert to_dict(load_covid_config(configs / "covid_sample.toml")) == to_dict(preset("sample"))


@pytest.mark.slow
def test_default_beats_the_references_on_real_data(shared_data: Path, tmp_path: Path) -> None:
    """The headline claim: on blocked folds of the real 2021 data the default model beats
    persistence clearly and ridge (inner-CV alpha, and alpha tuned on the folds)."""
    data = shared_data / "covid"
    if not (data / "covid.train.csv").is_file():
        pytest.skip(f"covid data not found at {data}")
    cfg = load_covid_config(overrides={"report": ["blocked"], "plot": False})
    run = train_covid(data, tmp_path, cfg)
    blocked = run.metrics["schemes"]["blocked"]
    model = blocked["model"]["mse"]
    assert blocked["persistence"]["mse"] == pytest.approx(0.9474, abs=1e-4)  # needs no training
    assert model < 0.95 * blocked["persistence"]["mse"]
    assert model < blocked["ridge"]["mse"] and model < blocked["ridge_tuned"]["mse"]
    sub = pd.read_csv(tmp_path / "submission.csv")
    assert len(sub) == 893 and sub["id"].tolist() == list(range(893))
