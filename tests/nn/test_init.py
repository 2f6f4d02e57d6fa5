"""Initialisers: formulas, agreement with torch.nn.init, and the variance-through-depth claim."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainlab.errors import ConfigError
from trainlab.nn import (
    INITIALIZERS,
    activation_variances,
    compute_fans,
    deep_mlp,
    init_weights,
    list_initializers,
)
from trainlab.nn.init import he_normal_, he_uniform_, normal_, xavier_normal_, xavier_uniform_


@pytest.mark.parametrize(
    "shape",
    [(30, 20), (7, 3), (16, 6, 5, 5), (8, 4, 3), (5, 2, 3, 3, 3)],
)
def test_fans_match_torch(shape: tuple[int, ...]) -> None:
    w = torch.empty(shape)
    assert compute_fans(w) == nn.init._calculate_fan_in_and_fan_out(w)


def test_fans_of_layers() -> None:
    assert compute_fans(nn.Linear(20, 30).weight) == (20, 30)
    # Conv: in/groups · k·k and out · k·k
    assert compute_fans(nn.Conv2d(6, 16, 5).weight) == (6 * 25, 16 * 25)
    assert compute_fans(nn.Conv2d(8, 16, 3, groups=4).weight) == (2 * 9, 16 * 9)
    with pytest.raises(ValueError, match="at least 2"):
        compute_fans(torch.empty(5))


def test_list_initializers() -> None:
    assert set(list_initializers()) >= {
        "normal",
        "xavier_normal",
        "xavier_uniform",
        "he_normal",
        "he_uniform",
        "torch_default",
    }
    with pytest.raises(ConfigError, match="xavier_normal"):
        INITIALIZERS.get("glorot")


FAN_IN, FAN_OUT = 400, 600


@pytest.mark.parametrize(
    "fn, kwargs, std, bound",
    [
        (xavier_normal_, {}, math.sqrt(2 / (FAN_IN + FAN_OUT)), None),
        (xavier_uniform_, {}, None, math.sqrt(6 / (FAN_IN + FAN_OUT))),
        (he_normal_, {}, math.sqrt(2 / FAN_IN), None),
        (he_normal_, {"mode": "fan_out"}, math.sqrt(2 / FAN_OUT), None),
        (he_uniform_, {}, None, math.sqrt(6 / FAN_IN)),
        (normal_, {"std": 0.01}, 0.01, None),
    ],
)
def test_sample_statistics_match_formula(fn, kwargs, std, bound) -> None:  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(0)
    w = fn(torch.empty(FAN_OUT, FAN_IN, dtype=torch.float64), generator=g, **kwargs)
    n = w.numel()  # 240 000 samples: the std of the sample std is ~ std / sqrt(2n) ≈ 0.15 %
    assert abs(float(w.mean())) < 5 * float(w.std()) / math.sqrt(n)
    if bound is not None:
        assert float(w.abs().max()) <= bound
        assert float(w.abs().max()) > 0.999 * bound
        std = bound / math.sqrt(3)  # Var of U(-a, a) is a²/3
    assert float(w.std()) == pytest.approx(std, rel=0.01)


@pytest.mark.parametrize(
    "ours, theirs, kwargs",
    [
        (xavier_normal_, nn.init.xavier_normal_, {}),
        (xavier_uniform_, nn.init.xavier_uniform_, {}),
        (xavier_normal_, nn.init.xavier_normal_, {"gain": 5 / 3}),
        (he_normal_, nn.init.kaiming_normal_, {}),
        (he_uniform_, nn.init.kaiming_uniform_, {}),
        (he_normal_, nn.init.kaiming_normal_, {"mode": "fan_out", "a": 0.1}),
        (he_uniform_, nn.init.kaiming_uniform_, {"a": math.sqrt(5)}),
    ],
)
@pytest.mark.parametrize("shape", [(64, 32), (16, 6, 5, 5)])
def test_equal_to_torch_init_with_same_generator(ours, theirs, kwargs, shape) -> None:  # type: ignore[no-untyped-def]
    a = ours(torch.empty(shape), generator=torch.Generator().manual_seed(3), **kwargs)
    b = theirs(torch.empty(shape), generator=torch.Generator().manual_seed(3), **kwargs)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_init_weights_whole_model() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10)
    )
    bn_weight = model[1].weight.detach().clone()
    out = init_weights(model, "he_normal", generator=torch.Generator().manual_seed(0))
    assert out is model
    assert torch.count_nonzero(model[0].bias) == 0 and torch.count_nonzero(model[4].bias) == 0
    torch.testing.assert_close(model[1].weight.detach(), bn_weight)  # BatchNorm untouched
    ref = nn.init.kaiming_normal_(
        torch.empty(4, 1, 3, 3), nonlinearity="relu", generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(model[0].weight.detach(), ref)


def test_init_weights_normal_std_and_torch_default() -> None:
    torch.manual_seed(0)
    model = nn.Linear(500, 400)
    before = model.weight.detach().clone()
    bias_before = model.bias.detach().clone()
    init_weights(model, "torch_default")
    torch.testing.assert_close(model.weight.detach(), before)
    torch.testing.assert_close(model.bias.detach(), bias_before)
    init_weights(model, "normal", std=0.5)
    assert float(model.weight.detach().std()) == pytest.approx(0.5, rel=0.02)
    init_weights(model, "normal", sigma=0.25)  # the lecture's name for std
    assert float(model.weight.detach().std()) == pytest.approx(0.25, rel=0.02)
    init_weights(model, "normal")  # default σ = 1
    assert float(model.weight.detach().std()) == pytest.approx(1.0, rel=0.02)


def _variances(scheme: str, activation: str, **kwargs: float) -> list[float]:
    torch.manual_seed(0)
    net = deep_mlp(depth=20, width=256, activation=activation).double()
    init_weights(net, scheme, **kwargs)
    x = torch.randn(256, 256, dtype=torch.float64)
    return activation_variances(net, x)


def _ratios(v: list[float]) -> list[float]:
    return [b / a for a, b in zip(v, v[1:])]


@pytest.mark.parametrize(
    "scheme, activation",
    [
        ("xavier_normal", "tanh"),
        ("xavier_uniform", "tanh"),
        ("he_normal", "relu"),
        ("he_uniform", "relu"),
    ],
)
def test_good_init_keeps_variance_through_20_layers(scheme: str, activation: str) -> None:
    v = _variances(scheme, activation)
    assert len(v) == 20
    for r in _ratios(v):
        assert 0.5 < r < 2.0, (scheme, v)
    assert 1e-3 < v[-1] < 10


def test_naive_init_collapses_or_explodes() -> None:
    # ReLU: Var multiplies by width·σ²/2 per layer: 128 for σ = 1, 0.0128 for σ = 0.01.
    big = _variances("normal", "relu", std=1.0)
    assert all(r > 2 for r in _ratios(big)) and big[-1] > 1e30
    small = _variances("normal", "relu", std=0.01)
    assert all(r < 0.5 for r in _ratios(small)) and small[-1] < 1e-30
    # tanh: σ = 0.01 collapses; σ = 1 saturates, the pre-activations explode (width · Var ≈ 256).
    small_tanh = _variances("normal", "tanh", std=0.01)
    assert all(r < 0.5 for r in _ratios(small_tanh)) and small_tanh[-1] < 1e-20
    torch.manual_seed(0)
    net = init_weights(deep_mlp(20, 256, "tanh").double(), "normal", std=1.0)
    pre = activation_variances(net, torch.randn(256, 256, dtype=torch.float64), after=nn.Linear)
    assert min(pre[1:]) > 100  # every layer's input to tanh is deep in saturation


def test_activation_variances_takes_layers_and_defaults() -> None:
    torch.manual_seed(0)
    layers = [nn.Linear(8, 8), nn.Linear(8, 8)]
    x = torch.randn(100, 8)
    v = activation_variances(layers, x)  # no activations: measured after each Linear
    assert len(v) == 2
    h = layers[1](layers[0](x)).detach()
    assert v[1] == pytest.approx(float(h.double().var()), rel=1e-6)
    big = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
    nn.init.ones_(big[0].weight)
    x = torch.full((4, 8), 1e38)
    x[0] = 0
    assert activation_variances(big, x) == [math.inf]  # float32 overflow reads as infinite spread
