"""The second-order test on functions with known Hessians, and on a small MLP."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from trainlab.diagnose import (
    CriticalPointReport,
    DiagnosisTarget,
    FunctionObjective,
    ModelObjective,
    Verdict,
    classify,
    verdict_for,
)


def at(fn, *point):
    return FunctionObjective(fn, torch.tensor(point, dtype=torch.float64))


def test_x2_minus_y2_at_origin_is_a_saddle():
    r = classify(at(lambda t: t[0] ** 2 - t[1] ** 2, 0.0, 0.0))
    assert r.verdict is Verdict.SADDLE and r.is_saddle
    np.testing.assert_allclose(r.spectrum.eigenvalues, [-2.0, 2.0], atol=1e-12)
    assert r.grad_norm == 0.0
    assert r.min_ratio == 0.5
    assert r.counts == {"positive": 1, "negative": 1, "flat": 0}
    assert r.curved_ratio == 0.5
    np.testing.assert_allclose(np.abs(r.min_eigenvector), [0.0, 1.0], atol=1e-12)


def test_one_minus_w1w2_squared_at_origin_is_a_saddle():
    r = classify(at(lambda w: (1 - w[0] * w[1]) ** 2, 0.0, 0.0))
    assert r.verdict is Verdict.SADDLE
    assert r.loss == 1.0
    np.testing.assert_allclose([r.lambda_min, r.lambda_max], [-2.0, 2.0], atol=1e-12)
    u = r.min_eigenvector
    np.testing.assert_allclose(abs(u @ np.array([1.0, 1.0]) / math.sqrt(2)), 1.0, atol=1e-12)


def test_one_minus_w1w2_squared_at_one_one_is_degenerate():
    obj = at(lambda w: (1 - w[0] * w[1]) ** 2, 1.0, 1.0)
    torch.testing.assert_close(obj.hessian(), torch.full((2, 2), 2.0, dtype=torch.float64))
    r = classify(obj)
    assert r.verdict is Verdict.DEGENERATE
    np.testing.assert_allclose(r.spectrum.eigenvalues, [0.0, 4.0], atol=1e-12)
    assert r.counts == {"positive": 1, "negative": 0, "flat": 1}
    assert r.min_ratio == 0.5 and r.curved_ratio == 1.0  # the flat direction is not positive
    assert "flat" in r.explanation


def test_convex_quadratic_is_a_local_minimum():
    a = torch.tensor([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]], dtype=torch.float64)
    c = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    r = classify(FunctionObjective(lambda t: 0.5 * (t - c) @ a @ (t - c), c.clone()))
    assert r.verdict is Verdict.LOCAL_MINIMUM
    assert r.min_ratio == 1.0
    np.testing.assert_allclose(r.spectrum.eigenvalues, np.linalg.eigvalsh(a.numpy()), atol=1e-12)


def test_concave_function_is_a_local_maximum():
    r = classify(
        at(lambda t: -(t[0] ** 2) - 2 * t[1] ** 2 + torch.cos(t[2]) + t[0] * t[1], 0.0, 0.0, 0.0)
    )
    assert r.verdict is Verdict.LOCAL_MAXIMUM
    assert r.min_ratio == 0.0


def test_nonzero_gradient_is_not_a_critical_point():
    r = classify(at(lambda t: t[0] ** 2 + t[1] ** 2, 1.0, 0.0))
    assert r.verdict is Verdict.NOT_CRITICAL
    assert r.grad_norm == pytest.approx(2.0)
    # a tolerance that admits it changes the verdict, and the table says which tolerance it was
    assert (
        classify(at(lambda t: t[0] ** 2 + t[1] ** 2, 1.0, 0.0), grad_tol=3.0).verdict
        is Verdict.LOCAL_MINIMUM
    )


@pytest.mark.parametrize(
    "g, lo, hi, expected",
    [
        (1.0, -1.0, 1.0, Verdict.NOT_CRITICAL),
        (0.0, -1.0, 1.0, Verdict.SADDLE),
        (0.0, 0.5, 1.0, Verdict.LOCAL_MINIMUM),
        (0.0, -2.0, -0.5, Verdict.LOCAL_MAXIMUM),
        (0.0, 1e-9, 1.0, Verdict.DEGENERATE),
        (0.0, -1e-9, 1.0, Verdict.DEGENERATE),
        (0.0, -1.0, 1e-9, Verdict.DEGENERATE),
        (0.0, 0.0, 0.0, Verdict.DEGENERATE),
    ],
)
def test_verdict_table(g, lo, hi, expected):
    assert verdict_for(g, lo, hi, grad_tol=1e-3, eig_tol=1e-6)[0] is expected


def test_report_table_and_dict():
    r = classify(at(lambda t: t[0] ** 2 - t[1] ** 2, 0.0, 0.0))
    text = str(r)
    for needle in (
        "gradient norm",
        "λ_min",
        "minimum ratio",
        "eigenvalue tolerance",
        "SADDLE POINT",
        "1.0e-03",
    ):
        assert needle in text
    d = r.to_dict()
    json.dumps(d)  # JSON-ready
    assert d["verdict"] == "saddle point"
    assert d["tolerances"]["grad_tol"] == 1e-3
    assert d["tolerances"]["eig_tol"] == pytest.approx(2e-4)
    assert isinstance(r, CriticalPointReport)


def test_lanczos_path_agrees_with_exact_path(problem):
    obj = ModelObjective(problem.model, problem.loss_fn, problem.x, problem.y)
    exact = classify(obj, k=3)
    approx = classify(
        obj, k=3, exact_max_params=10, lanczos_tol=1e-10, slq_vectors=10, slq_steps=101
    )
    assert exact.method == "exact" and approx.method == "lanczos"
    assert approx.verdict is exact.verdict is Verdict.NOT_CRITICAL  # a random net is not critical
    np.testing.assert_allclose(approx.eigenvalues_bottom, exact.eigenvalues_bottom, rtol=1e-6)
    np.testing.assert_allclose(approx.eigenvalues_top, exact.eigenvalues_top, rtol=1e-6)
    assert approx.min_ratio == pytest.approx(exact.min_ratio, abs=0.1)
    assert approx.curved_ratio == pytest.approx(exact.curved_ratio, abs=0.1)
    assert approx.min_ratio_source == "SLQ estimate" and approx.counts is None
    assert "density" in approx.to_dict() and "Lanczos" in str(approx)


def test_classify_accepts_a_diagnosis_target(problem):
    target = DiagnosisTarget(problem.model, problem.loss_fn, problem.x, problem.y, "tiny")
    r = classify(target)
    assert r.num_params == 101
    assert r.loss == pytest.approx(float(problem.loss_of(problem.flat())))
