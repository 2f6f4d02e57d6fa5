"""The phoneme task end to end on small synthetic data in the competition's layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from trainlab.diagnose.target import DiagnosisTarget
from trainlab.errors import DataError
from trainlab.phoneme import (
    load_for_diagnosis,
    load_model,
    predict_phoneme,
    resolve_config,
    train_phoneme,
)
from trainlab.phoneme.files import load_timit
from trainlab.phoneme.split import three_way_split

TINY_MLP = {"hidden": [64, 32], "epochs": 3, "batch_size": 128, "lr": 3e-3}
TINY_RNN = {"rnn_hidden": 24, "rnn_layers": 1, "rnn_proj": 24, "rnn_frames": 3, "epochs": 3,
            "utterances_per_batch": 8, "lr": 1e-2}  # fmt: skip


TINY_CRNN = {**TINY_RNN, "conv_layers": 1, "chunk_frames": 20}
TINY_TCN = {"rnn_proj": 24, "conv_layers": 2, "conv_dilations": [1, 2], "epochs": 3,
            "utterances_per_batch": 8, "lr": 1e-2}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "tiny"),
    [
        ("mlp", TINY_MLP),
        ("rnn", TINY_RNN),
        ("crnn", TINY_CRNN),
        ("tcn", TINY_TCN),
        ("tcn", {**TINY_TCN, "members": 2}),
    ],  # fmt: skip
)
def test_train_writes_everything_and_learns(data: Path, tmp_path: Path, model: str, tiny: dict):
    out = tmp_path / model
    cfg = resolve_config(model, None, **tiny)
    m = train_phoneme(data, out, cfg, quiet=True)
    for name in ("metrics.json", "config.json", "history.csv", "curves.png", "submission.csv",
                 "model/model.pt", "model/model.json", "model/transitions.npy", "model/prior.npy"):  # fmt: skip
        assert (out / name).is_file(), name
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["utterance_split"] and saved["layout"] == "ordered"
    assert saved["val_frames"] + saved["train_frames"] + saved["untouched_frames"] == 3000
    for k in (
        "val_accuracy",
        "val_accuracy_median",
        "val_accuracy_majority",
        "val_accuracy_viterbi",
    ):
        assert 0.0 <= saved[k] <= 1.0
    assert m["val_accuracy"] > 3 / 39  # well above chance after three epochs
    info = json.loads((out / "model" / "model.json").read_text())
    assert info["task"] == "phoneme" and info["data"] == str(Path(data).resolve())
    assert json.loads((out / "config.json").read_text())["model"] == model
    sub = (out / "submission.csv").read_text().splitlines()
    assert sub[0] == "Id,Class" and len(sub) == 601 and sub[1].startswith("0,")
    assert all(0 <= int(line.split(",")[1]) < 39 for line in sub[1:])

    # predict reproduces the submission; smoothing can be switched off
    pred = predict_phoneme(out, data / "test_11.npy", tmp_path / "p.csv", device="cpu")
    assert (tmp_path / "p.csv").read_text() == (out / "submission.csv").read_text()
    raw = predict_phoneme(out, data / "test_11.npy", tmp_path / "r.csv", smoothing="none")
    assert len(raw) == len(pred) == 600

    # the model folder is found from the run folder, model/ or model.json alike
    net, info = load_model(out / "model" / "model.json")
    assert not net.training and info["config"].model == model

    # the diagnosis contract
    target = load_for_diagnosis(out, None, batch=50, seed=0)
    assert isinstance(target, DiagnosisTarget) and not target.model.training
    inputs = target.inputs if isinstance(target.inputs, tuple) else (target.inputs,)
    loss = target.loss_fn(target.model(*inputs), target.targets)
    assert torch.isfinite(loss) and loss.requires_grad
    assert "phoneme" in target.description
    if model == "mlp":
        assert target.inputs.shape == (50, 429)
    else:
        assert int((target.targets != -100).sum()) >= 50


def test_split_matches_the_metrics_and_threads_are_restored(data: Path, tmp_path: Path):
    cfg = resolve_config(
        "mlp", None, **{**TINY_MLP, "epochs": 1, "val_ratio": 0.3, "seed": 5, "threads": 1}
    )
    torch.set_num_threads(2)
    m = train_phoneme(data, tmp_path / "o", cfg, quiet=True)
    assert torch.get_num_threads() == 2
    utts = load_timit(data).train_utterances()
    train, val, hold = three_way_split(utts, 0.3, cfg.holdout_ratio, seed=5)
    assert m["val_utterances"] == len(val) and m["val_frames"] == utts.lengths[val].sum()
    assert m["untouched_utterances"] == len(hold) > 0
    assert m["untouched_frames"] + m["val_frames"] + m["train_frames"] == 3000
    assert 0.0 <= m["untouched_accuracy"] <= 1.0 and "untouched" in m["accuracy_note"]
    assert not set(train) & set(val) and not set(train) & set(hold) and not set(val) & set(hold)


@pytest.mark.slow
def test_load_model_errors(tmp_path: Path, data: Path):
    with pytest.raises(DataError, match="holds no model/model.json"):
        load_model(tmp_path)
    (tmp_path / "model.json").write_text('{"task": "covid"}')
    with pytest.raises(DataError, match="not 'phoneme'"):
        load_model(tmp_path)
    out = tmp_path / "run"
    train_phoneme(data, out, resolve_config("mlp", None, **{**TINY_MLP, "epochs": 1}), quiet=True)
    (out / "model" / "prior.npy").write_bytes(b"garbage")
    with pytest.raises(DataError, match="files changed since the run: model/prior.npy"):
        load_model(out)  # the run's manifest notices first
    (out / "manifest.json").unlink()  # a folder without one: each file is checked as it loads
    with pytest.raises(DataError, match="prior.npy"):
        load_model(out)
    (out / "model" / "model.pt").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"model\.pt: .*model weights file"):
        load_model(out)
