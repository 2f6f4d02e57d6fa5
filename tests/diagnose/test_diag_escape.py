"""Escaping saddles along the most negative curvature, against the second-order prediction."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from trainlab.diagnose import FunctionObjective, ModelObjective, Verdict, classify, escape


def test_escape_from_one_minus_w1w2_squared():
    obj = FunctionObjective(lambda w: (1 - w[0] * w[1]) ** 2, torch.zeros(2, dtype=torch.float64))
    res = escape(obj)
    assert res.eigenvalue == pytest.approx(-2.0)
    np.testing.assert_allclose(np.abs(res.direction), [1 / math.sqrt(2)] * 2, atol=1e-12)
    assert res.direction[0] * res.direction[1] > 0  # along ±[1, 1]/√2, not ±[1, -1]/√2
    assert res.loss_before == 1.0
    assert res.decreased
    # the best step reaches the valley w1·w2 = 1: ‖u‖ = √2, loss 0
    assert res.step == pytest.approx(math.sqrt(2), rel=1e-3)
    assert res.loss_after == pytest.approx(0.0, abs=1e-6)
    # L(αu) = (1 − α²/2)²: for small steps the second-order prediction 1 − α² is right
    small = [t for t in res.trials if t["step"] <= 0.01]
    assert small
    for t in small:
        assert t["loss"] == pytest.approx(t["predicted"], abs=t["step"] ** 4)
        assert t["loss"] == pytest.approx((1 - t["step"] ** 2 / 2) ** 2, rel=1e-12)
    assert res.curvature_term == pytest.approx(0.5 * -2.0 * res.step**2)
    assert res.linear_term == 0.0


def test_escape_on_a_pure_quadratic_saddle_matches_the_prediction_exactly():
    obj = FunctionObjective(
        lambda t: t[0] ** 2 - t[1] ** 2 + 0.3 * t[1], torch.zeros(2, dtype=torch.float64)
    )
    # the direction is normalised, and the curvature comes from its Rayleigh quotient
    res = escape(obj, direction=np.array([0.0, 3.0]))
    assert res.eigenvalue == pytest.approx(-2.0)
    for t in res.trials:
        assert t["loss"] == pytest.approx(t["predicted"], abs=1e-12)
    assert res.linear_term == pytest.approx(0.3 * res.sign * res.step)
    d = res.to_dict()
    json.dumps(d)
    assert d["decreased"] and "second-order" in str(res)
    assert "actual loss" in res.trials_table()


def test_escape_lowers_the_loss_of_a_linear_network_at_its_saddle():
    # L(W1, W2) = mean ‖y − W2 W1 x‖²: the origin is a saddle of every deep linear network
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2, bias=False), nn.Linear(2, 1, bias=False)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    x = torch.randn(50, 3, dtype=torch.float64)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64)
    obj = ModelObjective(model, nn.functional.mse_loss, x, y)
    report = classify(obj)
    assert report.verdict is Verdict.SADDLE
    assert report.grad_norm == 0.0
    res = escape(obj, report=report)
    assert res.eigenvalue == pytest.approx(report.lambda_min)
    assert res.decreased
    assert res.loss_after < 0.9 * res.loss_before
    # apply the step to a copy of the model: its loss is the reported loss after
    obj.write_to(model, res.point)
    with torch.no_grad():
        assert float(nn.functional.mse_loss(model(x), y)) == pytest.approx(
            res.loss_after, rel=1e-12
        )


def test_escape_at_a_minimum_says_there_is_nothing_to_escape():
    obj = FunctionObjective(
        lambda t: t[0] ** 2 + 2 * t[1] ** 2, torch.zeros(2, dtype=torch.float64)
    )
    res = escape(obj)
    assert res.eigenvalue == pytest.approx(2.0)
    assert not res.decreased
    assert "no negative curvature" in str(res)


def test_escape_at_a_degenerate_point_claims_no_curvature():
    # At (1, 1) the Hessian of (1 - w1 w2)^2 is [[2, 2], [2, 2]]: lambda_min = 0 (flat), no saddle.
    obj = FunctionObjective(lambda w: (1 - w[0] * w[1]) ** 2, torch.ones(2, dtype=torch.float64))
    report = classify(obj)
    res = escape(obj, report=report)
    assert res.eigenvalue == pytest.approx(0.0, abs=1e-12)
    assert res.flat_tol == report.eig_tol > 0
    assert not res.negative_curvature
    assert "no negative curvature" in str(res)
    assert "fell along the direction of negative curvature" not in str(res)
    assert res.to_dict()["negative_curvature"] is False


def test_escape_rejects_bad_steps():
    obj = FunctionObjective(lambda t: t[0] ** 2 - t[1] ** 2, torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="positive step"):
        escape(obj, steps=[0.0, 1.0])
