"""Lanczos, power iteration, Hutchinson and SLQ against the exact spectrum of a small MLP."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainlab.diagnose import (
    FunctionObjective,
    ModelObjective,
    extreme_eigenpairs,
    full_spectrum,
    hutchinson_trace,
    lanczos_tridiagonal,
    power_iteration_topk,
    slq_density,
)


@pytest.fixture
def objective(problem):
    return ModelObjective(problem.model, problem.loss_fn, problem.x, problem.y)


@pytest.fixture
def exact(problem):
    return np.linalg.eigvalsh(problem.reference_hessian().numpy())


def test_full_spectrum_is_the_reference_spectrum(objective, exact):
    spec = full_spectrum(objective)
    np.testing.assert_allclose(spec.eigenvalues, exact, rtol=0, atol=1e-10)
    h = objective.hessian().numpy()
    v = spec.eigenvectors
    np.testing.assert_allclose(h @ v, v * spec.eigenvalues, atol=1e-10)
    c = spec.counts(1e-8)
    assert c["positive"] + c["negative"] + c["flat"] == objective.num_params
    assert spec.min_ratio(1e-8) == c["positive"] / objective.num_params


def test_lanczos_extremes_agree_with_full_spectrum(objective, exact):
    pairs = extreme_eigenpairs(objective, 5, "both", tol=1e-12, seed=0)
    assert pairs.converged
    got_bottom, got_top = pairs.eigenvalues[:5], pairs.eigenvalues[5:]
    np.testing.assert_allclose(got_bottom, exact[:5], rtol=1e-6)
    np.testing.assert_allclose(got_top, exact[-5:], rtol=1e-6)
    # the returned vectors are eigenvectors
    h = objective.hessian().numpy()
    v = pairs.eigenvectors
    np.testing.assert_allclose(h @ v, v * pairs.eigenvalues, atol=1e-6 * abs(exact).max())
    assert 0 < pairs.num_hvp < 10 * objective.num_params
    top_only = extreme_eigenpairs(objective, 3, "top", tol=1e-12)
    np.testing.assert_allclose(top_only.eigenvalues, exact[-3:], rtol=1e-6)


def test_lanczos_on_a_tiny_problem_uses_the_dense_hessian():
    obj = FunctionObjective(
        lambda t: t[0] ** 2 - 3 * t[1] ** 2 + t[0] * t[1], torch.zeros(2, dtype=torch.float64)
    )
    pairs = extreme_eigenpairs(obj, 5)
    assert pairs.method == "dense"
    np.testing.assert_allclose(pairs.eigenvalues, np.linalg.eigvalsh([[2.0, 1.0], [1.0, -6.0]]))


def test_power_iteration_finds_the_largest_magnitudes(objective, exact):
    pairs = power_iteration_topk(objective, 3, tol=1e-8, maxiter=5000)
    assert pairs.converged
    expected = exact[np.argsort(-np.abs(exact))[:3]]
    np.testing.assert_allclose(np.sort(pairs.eigenvalues), np.sort(expected), rtol=1e-6)


def test_lanczos_tridiagonal_recovers_a_known_spectrum():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    w = np.linspace(-2.0, 5.0, 30)
    a = (q * w) @ q.T
    alpha, beta = lanczos_tridiagonal(lambda x: a @ x, rng.standard_normal(30), 30)
    t = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
    np.testing.assert_allclose(np.linalg.eigvalsh(t), w, atol=1e-10)


def test_hutchinson_trace_is_close_to_the_exact_trace(objective, exact):
    est = hutchinson_trace(objective, num_samples=300, seed=0)
    assert est.std_err > 0
    # an unbiased estimate: within 4 standard errors (fails with probability < 1e-4)
    assert abs(est.mean - exact.sum()) < 4 * est.std_err


def test_slq_density_integrates_to_one_and_estimates_min_ratio(objective, exact):
    dens = slq_density(objective, num_vectors=20, num_steps=objective.num_params, seed=0)
    grid = dens.grid(4000)
    assert np.trapezoid(dens.density(grid), grid) == pytest.approx(1.0, abs=1e-6)
    assert dens.lambda_min == pytest.approx(exact[0], rel=1e-6)
    assert dens.lambda_max == pytest.approx(exact[-1], rel=1e-6)
    tol = 1e-4 * np.abs(exact).max()
    exact_ratio = float(np.mean(exact > tol))
    # each run weighs the eigenvalues by squared projections of a random vector: unbiased,
    # with a standard deviation of about 0.1 / sqrt(20) per estimate here
    assert dens.min_ratio(tol) == pytest.approx(exact_ratio, abs=0.08)
    d = dens.to_dict()
    assert len(d["grid"]) == len(d["density"]) == 200


def test_slq_with_few_steps_still_a_probability_density(problem_factory):
    p = problem_factory(seed=1, widths=(6, 20, 10, 1), n=40)
    obj = ModelObjective(p.model, p.loss_fn, p.x, p.y)
    dens = slq_density(obj, num_vectors=2, num_steps=30, seed=1)
    assert all(abs(w.sum() - 1) < 1e-12 for w in dens.weights)
    assert dens.num_hvp == 60
    grid = dens.grid(3000)
    assert np.trapezoid(dens.density(grid), grid) == pytest.approx(1.0, abs=1e-6)


def test_power_iteration_pyhessian_rule_stops_earlier(objective, exact):
    strict = power_iteration_topk(objective, 1, tol=1e-6, maxiter=5000)
    loose = power_iteration_topk(objective, 1, tol=1e-6, maxiter=5000, criterion="change")
    assert loose.num_hvp <= strict.num_hvp
    top = exact[np.argmax(np.abs(exact))]
    assert loose.eigenvalues[0] == pytest.approx(top, rel=1e-3)
    with pytest.raises(ValueError, match="criterion"):
        power_iteration_topk(objective, 1, criterion="pyhessian")  # type: ignore[arg-type]
