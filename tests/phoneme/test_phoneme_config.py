"""Phoneme settings: the presets in the registry and the preset -> file -> flags layering."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainlab.errors import ConfigError
from trainlab.phoneme.config import PRESETS, preset, resolve_config, train_config
from trainlab.phoneme.models import Members, SequenceRNN, build_model


def test_presets_match_the_task():
    assert PRESETS.names() == ["crnn", "mlp", "rnn", "sample", "tcn"]
    s = preset("sample")
    net = build_model(s)
    widths = [m.out_features for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [1024, 512, 128, 39] and net.net[0].in_features == 429
    assert sum(isinstance(m, torch.nn.Sigmoid) for m in net.modules()) == 3
    assert (s.optimizer, s.lr, s.batch_size, s.epochs) == ("adam", 1e-4, 64, 20)
    m = preset("mlp")
    assert m.batch_norm and m.dropout > 0 and m.activation != "sigmoid"
    assert isinstance(build_model(preset("rnn")), SequenceRNN)
    tcn = build_model(preset("tcn"))
    assert isinstance(tcn, SequenceRNN) and tcn.conv is not None and tcn.rnn is None
    assert [b[0].dilation[0] for b in tcn.conv.blocks] == [1, 2, 4, 8] * 2
    # no preset named: the default, an ensemble of two networks of convolutions + BiLSTM
    ensemble = build_model(resolve_config())
    assert isinstance(ensemble, Members) and len(ensemble.members) == 2
    default = ensemble.members[0]
    assert isinstance(default, SequenceRNN) and default.conv is not None
    assert isinstance(default.rnn.forward_layers[0], torch.nn.LSTM) and default.masks is None
    assert resolve_config().model == "crnn"
    assert preset("crnn").holdout_ratio > 0 and preset("crnn").chunk_frames > 0
    assert preset("crnn").member_folds and not preset("tcn").member_folds


def test_unknown_scheduler_is_an_error_and_warmup_becomes_steps(tmp_path: Path):
    with pytest.raises(ConfigError, match="sched"):
        train_config(resolve_config("mlp", None, scheduler="cosine_typo"), tmp_path)
    tc = train_config(resolve_config("crnn", None, epochs=4), tmp_path, steps_per_epoch=50)
    assert tc.scheduler == "cosine" and tc.scheduler_kwargs["warmup_steps"] == round(0.05 * 200)
    with pytest.raises(ConfigError, match="holdout_ratio"):
        resolve_config("mlp", None, val_ratio=0.5, holdout_ratio=0.5)
    with pytest.raises(ConfigError, match="dropout"):
        resolve_config("crnn", None, dropout=1.0)
    with pytest.raises(ConfigError, match="positive"):
        resolve_config("crnn", None, hidden=[16, -4])  # refused whatever the model
    with pytest.raises(ConfigError, match="no layers"):
        resolve_config("tcn", None, conv_layers=0)
    with pytest.raises(ConfigError, match="conv_dilations"):
        resolve_config("tcn", None, conv_dilations=[1, -2])


def test_adamw_is_fused_on_the_cpu_and_steps_as_the_unfused_one(tmp_path: Path):
    from trainlab.optim import create_optimizer

    tc = train_config(resolve_config("crnn", None, device="cpu"), tmp_path)
    assert tc.optimizer == "adamw" and tc.optimizer_kwargs["fused"] is True
    assert "fused" not in train_config(resolve_config("sample", None), tmp_path).optimizer_kwargs
    nets = [torch.nn.Linear(5, 3).double() for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    kwargs = {k: v for k, v in tc.optimizer_kwargs.items() if k != "fused"}
    opts = [
        create_optimizer("adamw", nets[0].parameters(), weight_decay=0.01, **tc.optimizer_kwargs),
        create_optimizer("adamw", nets[1].parameters(), weight_decay=0.01, **kwargs),
    ]
    x = torch.randn(16, 5, dtype=torch.float64)
    for _ in range(5):
        for net, opt in zip(nets, opts):
            opt.zero_grad()
            net(x).pow(2).mean().backward()
            opt.step()
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


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


def test_unknown_preset_lists_the_registered_ones():
    with pytest.raises(ConfigError, match="crnn, mlp, rnn, sample, tcn"):
        resolve_config("cnn")
