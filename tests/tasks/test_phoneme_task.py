"""The phoneme task end to end on small synthetic data in the competition's layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from trainlab.config import ConfigError
from trainlab.data._timit_synth import write_synthetic_timit
from trainlab.data.timit import load_timit, split_by_utterance
from trainlab.diagnose.target import DiagnosisTarget
from trainlab.errors import DataError
from trainlab.tasks._phoneme_batches import FrameBatches, UtteranceBatches, frame_columns
from trainlab.tasks._phoneme_infer import log_posteriors
from trainlab.tasks._phoneme_models import BiRNN, FrameMLP, SequenceRNN
from trainlab.tasks.phoneme import (
    PRESETS,
    build_model,
    load_for_diagnosis,
    load_model,
    predict_phoneme,
    preset,
    resolve_config,
    train_phoneme,
)

TINY_MLP = {"hidden": [64, 32], "epochs": 3, "batch_size": 128, "lr": 3e-3}
TINY_RNN = {"rnn_hidden": 24, "rnn_layers": 1, "rnn_proj": 24, "rnn_frames": 3, "epochs": 3,
            "utterances_per_batch": 8, "lr": 1e-2}  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_timit(tmp_path_factory.mktemp("ph") / "d", 3000, 600, mean_length=50)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one thread avoids OpenMP stalls when the machine is busy."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_presets_match_the_task():
    assert PRESETS.names() == ["mlp", "rnn", "sample"]
    s = preset("sample")
    net = build_model(s)
    widths = [m.out_features for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [1024, 512, 128, 39] and net.net[0].in_features == 429
    assert sum(isinstance(m, torch.nn.Sigmoid) for m in net.modules()) == 3
    assert (s.optimizer, s.lr, s.batch_size, s.epochs) == ("adam", 1e-4, 64, 20)
    m = preset("mlp")
    assert m.batch_norm and m.dropout > 0 and m.activation != "sigmoid"
    assert isinstance(build_model(preset("rnn")), SequenceRNN)


def test_config_layers_preset_file_and_flags(tmp_path: Path):
    f = tmp_path / "c.toml"
    f.write_text('model = "rnn"\nrnn_hidden = 32\nlr = 0.01\n')
    c = resolve_config(None, f, epochs=2, seed=None)
    assert (c.model, c.rnn_hidden, c.lr, c.epochs, c.rnn_layers) == ("rnn", 32, 0.01, 2, 3)
    c = resolve_config("sample", f)  # the flag chooses the preset, the file still applies
    assert c.model == "sample" and c.lr == 0.01
    f.write_text("hiden = [3]\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        resolve_config("mlp", f)
    with pytest.raises(ConfigError, match="smoothing"):
        resolve_config("mlp", None, smoothing="blur")


def test_frame_batches_cover_the_subset_once_per_pass(data: Path):
    d = load_timit(data)
    rows = np.arange(10, 900, 3)
    seen = []
    for xb, yb in FrameBatches(d.train_x, d.train_y, rows, 64, shuffle=True, seed=1):
        assert xb.dtype == torch.float32 and yb.dtype == torch.int64
        seen.append(xb[:, 0].numpy())
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.sort(d.train_x[rows, 0]))


def test_utterance_batches_pad_and_mask(data: Path):
    d = load_timit(data)
    utts = d.train_utterances()
    which = np.arange(6)
    b = UtteranceBatches(d.train_x, d.train_y, utts, which, 3, frames=3, shuffle=True, seed=0)
    total = 0
    for (xb, lengths), yb in b:
        t = int(lengths.max())
        assert xb.shape == (len(lengths), t, 3 * 39) and yb.shape == (len(lengths) * t,)
        y2 = yb.view(len(lengths), t)
        for k, n in enumerate(lengths.tolist()):
            assert (y2[k, n:] == -100).all() and (y2[k, :n] >= 0).all()
        total += int(lengths.sum())
    assert total == utts.lengths[:6].sum()
    assert frame_columns(1) == slice(195, 234) and frame_columns(11) == slice(0, 429)


def test_sequence_posteriors_come_back_in_utterance_order(data: Path):
    d = load_timit(data)
    utts = d.train_utterances()
    torch.manual_seed(0)
    net = SequenceRNN(3 * 39, hidden_size=8, num_layers=1, proj_size=8).eval()
    which = np.array([5, 1, 3])
    lp = log_posteriors(
        net, d.train_x, utts, which, sequence=True, rnn_frames=3, utterances_per_batch=2
    )
    sub = utts.subset(which)
    for j, u in enumerate(which):
        s, n = int(utts.starts[u]), int(utts.lengths[u])
        x = torch.from_numpy(np.array(d.train_x[s : s + n, frame_columns(3)]))[None]
        ref = torch.log_softmax(net(x, torch.tensor([n])), -1)[0].detach().numpy()
        np.testing.assert_allclose(lp[sub.starts[j] : sub.starts[j] + n], ref, atol=1e-5)


def test_birnn_equals_packed_bidirectional_lstm_in_float64():
    torch.manual_seed(0)
    ref = torch.nn.LSTM(7, 5, num_layers=2, batch_first=True, bidirectional=True).double()
    ours = BiRNN(7, 5, 2, "lstm", dropout=0.0).double()
    for k in range(2):
        for suffix, layers in (("", ours.forward_layers), ("_reverse", ours.backward_layers)):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(layers[k], f"{name}_l0").data.copy_(getattr(ref, f"{name}_l{k}{suffix}"))
    x = torch.randn(3, 9, 7, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([9, 4, 1])
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    want, _ = pad_packed_sequence(ref(packed)[0], batch_first=True, total_length=9)
    got = ours(x, lengths)
    mask = (torch.arange(9)[None] < lengths[:, None])[..., None]  # (B, T, 1) real frames
    torch.testing.assert_close(got * mask, want * mask, atol=1e-12, rtol=1e-12)
    (gx_want,) = torch.autograd.grad((want * mask).square().sum(), x)
    (gx_got,) = torch.autograd.grad((got * mask).square().sum(), x)
    torch.testing.assert_close(gx_got, gx_want, atol=1e-12, rtol=1e-12)


def test_padding_does_not_change_a_sequences_outputs():
    torch.manual_seed(0)
    net = SequenceRNN(10, hidden_size=6, num_layers=2, proj_size=6).eval()
    x = torch.randn(1, 5, 10)
    padded = torch.cat([x, torch.randn(1, 4, 10)], dim=1)
    a = net(x, torch.tensor([5]))
    b = net(torch.cat([padded, padded]), torch.tensor([5, 9]))[0, :5]
    torch.testing.assert_close(a[0], b, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(("model", "tiny"), [("mlp", TINY_MLP), ("rnn", TINY_RNN)])
def test_train_writes_everything_and_learns(data: Path, tmp_path: Path, model: str, tiny: dict):
    out = tmp_path / model
    cfg = resolve_config(model, None, **tiny)
    m = train_phoneme(data, out, cfg, quiet=True)
    for name in ("metrics.json", "config.json", "history.csv", "curves.png", "submission.csv",
                 "model/model.pt", "model/model.json", "model/transitions.npy", "model/prior.npy"):  # fmt: skip
        assert (out / name).is_file(), name
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["utterance_split"] and saved["val_frames"] + saved["train_frames"] == 3000
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


def test_split_matches_the_metrics(data: Path, tmp_path: Path):
    cfg = resolve_config("mlp", None, **{**TINY_MLP, "epochs": 1, "val_ratio": 0.3, "seed": 5})
    m = train_phoneme(data, tmp_path / "o", cfg, quiet=True)
    utts = load_timit(data).train_utterances()
    _, val = split_by_utterance(utts, 0.3, seed=5)
    assert m["val_utterances"] == len(val) and m["val_frames"] == utts.lengths[val].sum()


def test_load_model_errors(tmp_path: Path, data: Path):
    with pytest.raises(DataError, match="no saved model"):
        load_model(tmp_path)
    (tmp_path / "model.json").write_text('{"task": "covid"}')
    with pytest.raises(DataError, match="not 'phoneme'"):
        load_model(tmp_path)
    out = tmp_path / "run"
    train_phoneme(data, out, resolve_config("mlp", None, **{**TINY_MLP, "epochs": 1}), quiet=True)
    (out / "model" / "model.pt").write_bytes(b"garbage")
    with pytest.raises(DataError, match="does not load"):
        load_model(out)


def test_mlp_forward_shapes():
    net = FrameMLP(hidden=[16, 8], activation="relu", batch_norm=True, dropout=0.1).eval()
    assert net(torch.randn(5, 429)).shape == (5, 39)
    with pytest.raises(ConfigError, match="activation"):
        FrameMLP(activation="swoosh")
