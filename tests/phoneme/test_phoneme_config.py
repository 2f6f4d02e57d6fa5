"""Phoneme settings: the presets in the registry and the preset -> file -> flags layering."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainlab.errors import ConfigError
from trainlab.phoneme.config import PRESETS, preset, resolve_config
from trainlab.phoneme.models import SequenceRNN, build_model


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


def test_unknown_preset_lists_the_registered_ones():
    with pytest.raises(ConfigError, match="mlp, rnn, sample"):
        resolve_config("cnn")
