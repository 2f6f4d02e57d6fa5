"""The optimizer sections' loss surfaces and trajectories, checked against hand calculation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

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
