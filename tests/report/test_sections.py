"""The measuring machinery of the sections, checked against what is known analytically."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trainlab.report._models import mlp
from trainlab.report.sections import batch_size, batchnorm, critical, init
from trainlab.report.surfaces import double_well, elongated_bowl, trajectory


def test_double_well_minima_are_critical_and_ordered():
    s = double_well(tilt=0.3)
    for name, (a, b) in s.minima.items():
        w = torch.tensor([a, b], dtype=torch.float64, requires_grad=True)
        s.fn(w[0], w[1]).backward()
        assert w.grad.abs().max() < 1e-9, name
    assert s.loss(s.minima["global minimum"]) < s.loss(s.minima["local minimum"])
    assert s.nearest_minimum([0.8, 0.3]) == "local minimum"


def test_momentum_rolls_past_the_local_minimum():
    s = double_well()
    gd, _ = trajectory(s, [2.0, 1.5], "momentum", {"lr": 0.01, "momentum": 0.0}, 300)
    mom, losses = trajectory(s, [2.0, 1.5], "momentum", {"lr": 0.01, "momentum": 0.9}, 300)
    assert s.nearest_minimum(gd[-1]) == "local minimum"
    assert s.nearest_minimum(mom[-1]) == "global minimum"
    assert losses.shape == (301,) and mom.shape == (301, 2)


def test_trajectory_matches_hand_written_gradient_descent():
    s = elongated_bowl(a=0.01, b=10.0)
    path, losses = trajectory(s, [-10.0, 1.0], "sgd", {"lr": 0.1}, 5)
    w = np.array([-10.0, 1.0])
    for i in range(5):
        w = w - 0.1 * np.array([0.01 * w[0], 10.0 * w[1]])
        np.testing.assert_allclose(path[i + 1], w, rtol=1e-12, atol=1e-12)
    assert losses[0] == pytest.approx(0.5 * (0.01 * 100 + 10.0))


def test_diverged_trajectory_stops_with_infinite_loss():
    path, losses = trajectory(elongated_bowl(), [-10.0, 1.0], "sgd", {"lr": 1e3}, 200)
    assert math.isinf(losses[-1]) and np.isnan(path[-1]).all()
    assert np.isfinite(losses[0])


def test_exact_number_of_updates():
    x, y = torch.randn(10, 3), torch.arange(10)
    batches = list(batch_size._Updates(x, y, b=4, updates=7, seed=0))
    assert len(batches) == 7
    # each pass is a permutation: the first 3 batches (4 + 4 + 2) hold every row once
    seen = torch.cat([yb for _, yb in batches[:3]])
    assert sorted(seen.tolist()) == list(range(10))


def test_gradient_noise_follows_sampling_theory():
    torch.manual_seed(0)
    x, y = torch.randn(256, 8), torch.randint(0, 3, (256,))
    model = mlp(8, [16], n_out=3)
    full = batch_size._gradient(model, x, y)
    n4 = batch_size._gradient_noise(model, x, y, 4, full, 300, seed=0)
    n64 = batch_size._gradient_noise(model, x, y, 64, full, 300, seed=0)
    # E||g_B - g||^2 is proportional to (1/B - 1/N) when drawing without replacement
    expected = (1 / 4 - 1 / 256) / (1 / 64 - 1 / 256)
    assert n4 / n64 == pytest.approx(expected, rel=0.25)
    assert batch_size._gradient_noise(model, x, y, 256, full, 5, seed=0) == 0.0


def test_trainlab_and_torch_batch_norm_agree():
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    checks = batchnorm.equivalence(x, y, seed=0)
    assert {c["dtype"] for c in checks} == {"float32", "float64"}
    assert {c["mode"] for c in checks} == {"train", "eval"}
    for c in checks:
        assert c["max_abs_diff"] <= (1e-10 if c["dtype"] == "float64" else 1e-4), c


def test_saturation_share():
    from trainlab.nn import init_weights

    torch.manual_seed(0)
    x = torch.randn(256, 64)
    big = init_weights(mlp(64, [128] * 4, activation="tanh"), "normal", std=1.0)
    good = init_weights(mlp(64, [128] * 4, activation="tanh"), "xavier_normal")
    assert init._saturated_share(big, x, "tanh") > 0.5
    assert init._saturated_share(good, x, "tanh") < 0.05
    assert init._saturated_share(good, x, "relu") is None


def test_zero_weight_mlp_is_a_saddle_point():
    diagnose = pytest.importorskip("trainlab.diagnose")
    torch.manual_seed(0)
    x, y = torch.randn(64, 6, dtype=torch.float64), torch.arange(64) % 10
    net = critical._zero_mlp(6, 4, y)
    torch.nn.functional.cross_entropy(net(x), y).backward()
    assert max(float(p.grad.abs().max()) for p in net.parameters()) < 1e-12
    report = diagnose.classify(
        diagnose.ModelObjective(net, torch.nn.functional.cross_entropy, x, y)
    )
    assert report.is_saddle and report.lambda_min < 0
