"""Section 2: activation variances at initialisation and the training runs, then rendered."""

from __future__ import annotations

import math

import pytest
import torch

from trainlab.errors import ConfigError
from trainlab.nn import init_weights
from trainlab.nn.mlp import mlp
from trainlab.report.sections import init

TINY = init.Config(
    depth=4,
    width=32,
    activations=["tanh", "relu"],
    schemes=["N(0, 0.01²)", "Xavier normal", "He normal"],
    epochs=2,
    variance_batch=128,
    max_train=256,
)


@pytest.fixture(scope="module")
def result(measured):
    return measured(init, TINY)


def test_variances_per_layer(result):
    _, m = result
    assert (m.n_train, m.n_probe) == (256, 128)
    assert list(m.results) == ["tanh", "relu"] and all(
        list(r) == TINY.schemes for r in m.results.values()
    )
    for runs in m.results.values():
        for r in runs.values():
            v = r["variances"]
            assert len(v) == TINY.depth and (v[0], v[-1]) == (
                r["first_layer_variance"],
                r["last_layer_variance"],
            )
            assert r["log10_last_over_first"] == pytest.approx(math.log10(v[-1] / v[0]))
    # N(0, 0.01²) multiplies the variance by about width * 1e-4 per layer: it vanishes
    for act in ("tanh", "relu"):
        assert m.results[act]["N(0, 0.01²)"]["log10_last_over_first"] < -6
    # He keeps ReLU's variance within a factor 10 over the layers
    assert abs(m.results["relu"]["He normal"]["log10_last_over_first"]) < 1
    assert m.results["relu"]["He normal"]["saturated_last_layer"] is None
    assert 0 <= m.results["tanh"]["Xavier normal"]["saturated_last_layer"] < 0.05


def test_training_runs_and_findings(result):
    _, m = result
    for runs in m.results.values():
        for r in runs.values():
            assert not r["diverged"] and len(r["train_curve"]) == TINY.epochs
    # the vanished signal leaves the output at chance: loss ln 10
    for act in ("tanh", "relu"):
        assert m.results[act]["N(0, 0.01²)"]["train_loss"] == pytest.approx(math.log(10), abs=0.01)
        assert m.naive_best[act] == m.results[act]["N(0, 0.01²)"]["train_loss"]
        scaled = [m.results[act][k]["train_loss"] for k in ("Xavier normal", "He normal")]
        assert m.scaled_best[act] == min(scaled)
    assert m.scaled_init_beats_naive == {"tanh": True, "relu": True}
    assert init.verdict(TINY, m).agrees is True


def test_unknown_scheme_or_activation_is_a_config_error(result):
    ctx, _ = result
    with pytest.raises(ConfigError, match="unknown scheme"):
        init.measure(ctx, init.Config(schemes=["N(0, 2)"]))
    with pytest.raises(ConfigError, match="unknown activation 'swish'"):
        init.measure(ctx, init.Config(activations=["swish"]))


def test_saturation_share():
    torch.manual_seed(0)
    x = torch.randn(256, 64)
    big = init_weights(mlp(64, [128] * 4, 10, "tanh"), "normal", std=1.0)
    good = init_weights(mlp(64, [128] * 4, 10, "tanh"), "xavier_normal")
    assert init._saturated_share(big, x, "tanh") > 0.5
    assert init._saturated_share(good, x, "tanh") < 0.05
    assert init._saturated_share(good, x, "relu") is None


def test_render(result, check_rendered):
    ctx, m = result
    rendered = check_rendered(init, ctx, TINY, m)
    (table,) = rendered.tables
    assert len(table.rows) == 6 and table.columns[3] == "variance, layer 4"
    assert "(ReLU)" in rendered.verdict.text
