"""The whole Hessian spectrum: exactly for small models, as a trace and a density for large ones.

* :func:`full_spectrum` forms the Hessian from ``n`` batched products and diagonalises it
  (float64); practical up to a few thousand parameters.
* :func:`hutchinson_trace` estimates ``tr H = E[vᵀ H v]`` over Rademacher vectors ``v``
  (Hutchinson 1989), with a standard error.
* :func:`slq_density` estimates the eigenvalue density by stochastic Lanczos quadrature
  (Ghorbani, Krishnan & Xiao 2019; Yao et al. 2020, PyHessian): ``m`` Lanczos steps from a random
  unit vector give a Gauss quadrature ``{(θⱼ, τⱼ)}`` with ``Σ τⱼ = 1`` whose nodes and weights
  approximate the spectral measure; averaging runs and smoothing with a Gaussian gives the
  density, and the weight on positive nodes estimates the lecture's minimum ratio.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from trainlab.diagnose.hvp import Objective
from trainlab.diagnose.lanczos import _matvec, lanczos_tridiagonal


@dataclass
class Spectrum:
    """All eigenvalues (ascending) of a Hessian and its eigenvectors as columns."""

    eigenvalues: np.ndarray  # (n,)
    eigenvectors: np.ndarray = field(repr=False)  # (n, n)
    num_hvp: int = 0
    seconds: float = 0.0

    def min_ratio(self, tol: float = 0.0) -> float:
        """The lecture's minimum ratio: the share of eigenvalues ``> tol``."""
        return float(np.mean(self.eigenvalues > tol))

    def curved_ratio(self, tol: float = 0.0) -> float:
        """The share of positive eigenvalues among those with ``|λ| > tol`` (NaN if none)."""
        w = self.eigenvalues[np.abs(self.eigenvalues) > tol]
        return float(np.mean(w > tol)) if w.size else float("nan")

    def counts(self, tol: float) -> dict[str, int]:
        """How many eigenvalues are positive, negative, and flat (``|λ| ≤ tol``)."""
        w = self.eigenvalues
        return {
            "positive": int(np.sum(w > tol)),
            "negative": int(np.sum(w < -tol)),
            "flat": int(np.sum(np.abs(w) <= tol)),
        }


def full_spectrum(objective: Objective) -> Spectrum:
    """The exact Hessian spectrum at the objective's point (float64 ``eigh``).

    Args:
        objective: the loss at a point; its dense ``n × n`` Hessian must fit in memory.

    Returns:
        :class:`Spectrum` with all ``n`` eigenvalues ascending and the eigenvectors.
    """
    start, t0 = objective.num_hvp, time.perf_counter()
    h = objective.hessian().detach().to("cpu", torch.float64).numpy()
    w, v = np.linalg.eigh(h)
    return Spectrum(w, v, objective.num_hvp - start, time.perf_counter() - t0)


@dataclass
class TraceEstimate:
    """Hutchinson's estimate of ``tr H`` with its standard error."""

    mean: float
    std_err: float
    num_samples: int

    def to_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "std_err": self.std_err, "num_samples": self.num_samples}


def hutchinson_trace(objective: Objective, num_samples: int = 100, seed: int = 0) -> TraceEstimate:
    """Estimate ``tr H`` as the mean of ``vᵀ H v`` over Rademacher vectors ``v``.

    Args:
        objective: the loss at a point.
        num_samples: the number of products (the standard error falls as ``1/√num_samples``).
        seed: seeds the random vectors.

    Returns:
        :class:`TraceEstimate` (mean and standard error of the mean).
    """
    if num_samples < 2:
        raise ValueError("num_samples must be at least 2 (for a standard error)")
    rng = np.random.default_rng(seed)
    samples = np.empty(num_samples)
    for i in range(num_samples):
        v = rng.choice([-1.0, 1.0], size=objective.num_params)
        samples[i] = v @ _matvec(objective, v)
    return TraceEstimate(
        float(samples.mean()), float(samples.std(ddof=1) / np.sqrt(num_samples)), num_samples
    )


@dataclass
class SpectralDensity:
    """An eigenvalue density from stochastic Lanczos quadrature.

    ``nodes[i]`` and ``weights[i]`` are the Gauss quadrature of run ``i`` (the Ritz values and the
    squared first components of the tridiagonal's eigenvectors; each run's weights sum to 1).
    """

    nodes: list[np.ndarray]
    weights: list[np.ndarray]
    num_params: int
    num_hvp: int = 0
    seconds: float = 0.0

    @property
    def lambda_min(self) -> float:
        return float(min(n.min() for n in self.nodes))

    @property
    def lambda_max(self) -> float:
        return float(max(n.max() for n in self.nodes))

    def default_sigma(self) -> float:
        """Gaussian width: 1% of the spectral range (1e-6 where the range is zero)."""
        return max(0.01 * (self.lambda_max - self.lambda_min), 1e-6)

    def grid(self, num_points: int = 2000, sigma: float | None = None) -> np.ndarray:
        """An even grid over the spectrum, padded by 6σ so the density's mass is all on it."""
        s = self.default_sigma() if sigma is None else sigma
        return np.linspace(self.lambda_min - 6 * s, self.lambda_max + 6 * s, num_points)

    def density(self, grid: np.ndarray | None = None, sigma: float | None = None) -> np.ndarray:
        """The smoothed density ``ρ(t) = mean over runs of Σⱼ τⱼ N(t; θⱼ, σ²)`` on ``grid``.

        Args:
            grid: where to evaluate (default :meth:`grid`).
            sigma: the Gaussian width (default :meth:`default_sigma`).

        Returns:
            The density values (it integrates to 1 over the real line).
        """
        s = self.default_sigma() if sigma is None else sigma
        t = self.grid(sigma=s) if grid is None else np.asarray(grid, dtype=np.float64)
        rho = np.zeros_like(t)
        for theta, tau in zip(self.nodes, self.weights):
            z = (t[:, None] - theta[None, :]) / s  # (grid, nodes)
            rho += np.exp(-0.5 * z**2) @ tau
        return rho / (len(self.nodes) * s * np.sqrt(2 * np.pi))

    def min_ratio(self, tol: float = 0.0) -> float:
        """Estimated share of eigenvalues ``> tol``: the quadrature weight on nodes above ``tol``."""
        return float(
            np.mean([tau[theta > tol].sum() for theta, tau in zip(self.nodes, self.weights)])
        )

    def curved_ratio(self, tol: float = 0.0) -> float:
        """Estimated share of positive eigenvalues among those with ``|λ| > tol`` (NaN if none)."""
        pos = np.mean([tau[theta > tol].sum() for theta, tau in zip(self.nodes, self.weights)])
        curved = np.mean(
            [tau[np.abs(theta) > tol].sum() for theta, tau in zip(self.nodes, self.weights)]
        )
        return float(pos / curved) if curved > 0 else float("nan")

    def trace(self) -> float:
        """The quadrature's estimate of ``tr H = n · E[λ]``."""
        return float(self.num_params * np.mean([t @ w for t, w in zip(self.nodes, self.weights)]))

    def to_dict(self, num_points: int = 200) -> dict[str, object]:
        t = self.grid(num_points)
        return {
            "lambda_min": self.lambda_min,
            "lambda_max": self.lambda_max,
            "sigma": self.default_sigma(),
            "grid": t.tolist(),
            "density": self.density(t).tolist(),
            "num_hvp": self.num_hvp,
            "num_runs": len(self.nodes),
        }

    def plot(self, path: str | Path, title: str = "Hessian eigenvalue density (SLQ)") -> None:
        """Save the density (log scale) as an image."""
        from trainlab.diagnose._plot import save_density_plot

        t = self.grid()
        save_density_plot(path, t, self.density(t), title)


def slq_density(
    objective: Objective, num_vectors: int = 2, num_steps: int = 80, seed: int = 0
) -> SpectralDensity:
    """The Hessian eigenvalue density by stochastic Lanczos quadrature.

    Args:
        objective: the loss at a point.
        num_vectors: independent Lanczos runs to average (from Rademacher start vectors).
        num_steps: Lanczos steps per run (each is one product; capped at ``n``).
        seed: seeds the start vectors.

    Returns:
        :class:`SpectralDensity` with each run's quadrature nodes and weights.
    """
    from scipy.linalg import eigh_tridiagonal

    rng = np.random.default_rng(seed)
    start, t0 = objective.num_hvp, time.perf_counter()
    nodes, weights = [], []
    for _ in range(num_vectors):
        v0 = rng.choice([-1.0, 1.0], size=objective.num_params)
        alpha, beta = lanczos_tridiagonal(lambda x: _matvec(objective, x), v0, num_steps)
        theta, u = eigh_tridiagonal(alpha, beta)
        nodes.append(theta)
        weights.append(u[0] ** 2)
    return SpectralDensity(
        nodes, weights, objective.num_params, objective.num_hvp - start, time.perf_counter() - t0
    )
