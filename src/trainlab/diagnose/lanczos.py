"""Extreme Hessian eigenvalues from Hessian-vector products: Lanczos, and power iteration to compare.

For a network with a million parameters the Hessian cannot be formed, but its largest and
smallest eigenvalues can be found from a few dozen products ``H v``:

* :func:`extreme_eigenpairs` runs implicitly restarted Lanczos (ARPACK through
  ``scipy.sparse.linalg.eigsh``) on a ``LinearOperator`` whose ``matvec`` is one Hessian-vector
  product. The scipy side works in float64 whatever the model's dtype.
* :func:`power_iteration_topk` is the method of PyHessian (Yao et al. 2020): power iteration,
  deflated against the eigenvectors already found. It is kept as the baseline that
  ``benchmarks/bench_hessian.py`` compares against: each eigenvalue needs its own run and
  converges at the rate ``|λ₂/λ₁|``, where Lanczos converges for all ``k`` at once and much faster.
* :func:`lanczos_tridiagonal` is plain Lanczos with full reorthogonalisation, the engine of
  stochastic Lanczos quadrature (:mod:`trainlab.diagnose.spectrum`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from trainlab.diagnose.hvp import Objective
from trainlab.errors import TrainlabError

if TYPE_CHECKING:
    from scipy.sparse.linalg import LinearOperator


@dataclass
class Eigenpairs:
    """Some eigenvalues of a Hessian (ascending) with their unit eigenvectors as columns.

    ``converged`` is False when the solver stopped at its iteration limit; the values are then
    its best estimates.
    """

    eigenvalues: np.ndarray  # (m,) ascending
    eigenvectors: np.ndarray = field(repr=False)  # (n, m), float64
    num_hvp: int = 0
    seconds: float = 0.0
    method: str = ""
    converged: bool = True

    def to_dict(self) -> dict[str, object]:
        return {
            "eigenvalues": [float(x) for x in self.eigenvalues],
            "num_hvp": self.num_hvp,
            "seconds": round(self.seconds, 4),
            "method": self.method,
            "converged": self.converged,
        }


def hessian_operator(objective: Objective) -> LinearOperator:
    """The Hessian at the objective's point as a float64 scipy ``LinearOperator``."""
    from scipy.sparse.linalg import LinearOperator

    n = objective.num_params

    def matvec(x: np.ndarray) -> np.ndarray:
        v = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64).reshape(-1))
        hv = objective.hvp(v.to(objective.device))
        return hv.detach().to("cpu", torch.float64).numpy()

    return LinearOperator((n, n), matvec=matvec, rmatvec=matvec, dtype=np.float64)


def _start_vector(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n)


def extreme_eigenpairs(
    objective: Objective,
    k: int = 5,
    which: Literal["top", "bottom", "both"] = "both",
    *,
    tol: float = 1e-6,
    max_hvp: int = 3000,
    ncv: int | None = None,
    seed: int = 0,
) -> Eigenpairs:
    """The ``k`` largest and/or ``k`` smallest (algebraic) Hessian eigenvalues by Lanczos.

    The top end is found first. The bottom end is then computed for ``H − λ_max I``, whose
    eigenvalues are shifted by ``λ_max``: the Krylov space is the same, but ARPACK's relative
    stopping test becomes relative to the spectral spread instead of to ``|λ_min|``. A network's
    most negative eigenvalue is often tiny next to ``λ_max``; unshifted, ARPACK would chase it to
    an accuracy far below what any verdict needs.

    Args:
        objective: the loss at a point (see :mod:`trainlab.diagnose.hvp`).
        k: how many eigenvalues at each requested end.
        which: ``"top"`` (largest), ``"bottom"`` (most negative) or ``"both"``.
        tol: ARPACK's relative accuracy: a Ritz pair is accepted when ``‖H x − λ x‖ ≤ tol · |λ|``
            (top end) or ``≤ tol · (λ_max − λ)`` (bottom end).
        max_hvp: about how many products one ARPACK run may use. A run that does not converge
            is repeated once with ``max(100 · tol, 1e-4)`` and a larger basis (tight clusters of
            eigenvalues, common in untrained networks, need that); ``converged`` is then False.
        ncv: Lanczos basis size (default ``max(2k + 1, 20)``).
        seed: seeds the start vector, so runs are reproducible.

    Returns:
        :class:`Eigenpairs` with ``k`` (or ``2k``) eigenvalues ascending, their eigenvectors and
        the number of Hessian-vector products used. Where ``2k + 1 ≥ n`` the exact spectrum
        from the dense Hessian is used instead.
    """
    if which not in ("top", "bottom", "both"):
        raise ValueError(f"which must be 'top', 'bottom' or 'both', got {which!r}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    n = objective.num_params
    start_hvp, t0 = objective.num_hvp, time.perf_counter()
    if 2 * k + 1 >= n:  # ARPACK needs k < n; a tiny Hessian is cheaper to form outright
        h = objective.hessian().detach().to("cpu", torch.float64).numpy()
        w, v = np.linalg.eigh(h)
        idx = _ends(len(w), k, which)
        return Eigenpairs(
            w[idx], v[:, idx], objective.num_hvp - start_hvp, time.perf_counter() - t0, "dense"
        )
    op = hessian_operator(objective)
    ncv = min(n - 1, ncv if ncv is not None else max(2 * k + 1, 20))
    run = _ArpackRun(n, ncv, tol, max_hvp, seed)
    vals, vecs = [], []
    lam_max = None
    if which in ("top", "both"):
        w, v = run(op, k, "LA")
        vals.append(w)
        vecs.append(v)
        lam_max = float(w.max())
    if which in ("bottom", "both"):
        if lam_max is None:  # a rough λ_max is enough for the shift
            lam_max = float(_ArpackRun(n, ncv, 1e-2, max_hvp, seed)(op, 1, "LA")[0].max())
        shifted = _shifted(op, lam_max)
        w, v = run(shifted, k, "SA")
        vals.append(w + lam_max)
        vecs.append(v)
    w = np.concatenate(vals)
    v = np.concatenate(vecs, axis=1)
    order = np.argsort(w)
    return Eigenpairs(
        w[order],
        v[:, order],
        objective.num_hvp - start_hvp,
        time.perf_counter() - t0,
        "lanczos (scipy eigsh)",
        run.converged,
    )


def _shifted(op: LinearOperator, sigma: float) -> LinearOperator:
    """``H − σ I`` as a LinearOperator."""
    from scipy.sparse.linalg import LinearOperator

    def matvec(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x).reshape(-1)
        return op.matvec(x) - sigma * x

    return LinearOperator(op.shape, matvec=matvec, rmatvec=matvec, dtype=np.float64)


class _ArpackRun:
    """``eigsh`` with a product budget and one looser retry; remembers whether ``tol`` was met."""

    def __init__(self, n: int, ncv: int, tol: float, max_hvp: int, seed: int) -> None:
        self.n, self.ncv, self.tol, self.max_hvp, self.seed = n, ncv, tol, max_hvp, seed
        self.converged = True

    def __call__(self, op: LinearOperator, k: int, which: str) -> tuple[np.ndarray, np.ndarray]:
        from scipy.sparse.linalg import ArpackNoConvergence, eigsh

        v0 = _start_vector(self.n, self.seed)
        ncv, tol = self.ncv, self.tol
        for attempt in range(2):
            maxiter = max(1, self.max_hvp // max(ncv - k, 1))
            try:
                w, v = eigsh(op, k=k, which=which, tol=tol, maxiter=maxiter, ncv=ncv, v0=v0)
                return w, v
            except ArpackNoConvergence as e:
                self.converged = False
                if attempt == 1:
                    if len(e.eigenvalues) == 0:
                        raise TrainlabError(
                            f"Lanczos found no eigenvalue within ~{2 * self.max_hvp} "
                            "Hessian-vector products; allow more (max_hvp) or a looser tol"
                        ) from None
                    return e.eigenvalues, e.eigenvectors
                ncv = min(self.n - 1, max(2 * ncv, 4 * k + 20))
                tol = max(100 * tol, 1e-4)
        raise AssertionError("unreachable")


def _ends(m: int, k: int, which: str) -> np.ndarray:
    """Indices of the k smallest and/or k largest of m ascending values (no repeats)."""
    k = min(k, m)
    if which == "top":
        return np.arange(m - k, m)
    if which == "bottom":
        return np.arange(k)
    return np.unique(np.concatenate([np.arange(k), np.arange(m - k, m)]))


def power_iteration_topk(
    objective: Objective,
    k: int = 5,
    *,
    tol: float = 1e-6,
    maxiter: int = 1000,
    criterion: Literal["residual", "change"] = "residual",
    seed: int = 0,
) -> Eigenpairs:
    """The ``k`` eigenvalues of largest magnitude by power iteration with deflation (PyHessian).

    Each eigenvector is found by its own power iteration, orthogonalised against the ones already
    found before every product. With ``criterion="residual"`` a run stops when the Ritz residual
    ``‖H v − λ v‖ ≤ tol · |λ|`` (the test ARPACK applies, so the two methods can be compared at the
    same tolerance); with ``"change"`` when ``|λ_new − λ_old| ≤ tol · |λ_old|``, PyHessian's rule,
    which stops early (and less accurately) when the eigenvalue gap is small.

    Args:
        objective: the loss at a point.
        k: how many eigenvalues.
        tol: relative tolerance of the stopping test.
        maxiter: most products per eigenvalue.
        criterion: ``"residual"`` or ``"change"``, see above.
        seed: seeds the start vectors.

    Returns:
        :class:`Eigenpairs` (eigenvalues ascending), with the number of products used.
    """
    rng = np.random.default_rng(seed)
    n = objective.num_params
    start_hvp, t0 = objective.num_hvp, time.perf_counter()
    found: list[np.ndarray] = []
    values: list[float] = []
    converged = True
    basis = np.zeros((n, 0))
    if criterion not in ("residual", "change"):
        raise ValueError(f"criterion must be 'residual' or 'change', got {criterion!r}")
    for _ in range(min(k, n)):
        v = rng.standard_normal(n)
        ok = False
        lam = prev = float("nan")
        for _ in range(maxiter):
            v -= basis @ (basis.T @ v)
            v /= np.linalg.norm(v)
            hv = _matvec(objective, v)
            hv -= basis @ (basis.T @ hv)  # deflation: H restricted to the complement
            prev, lam = lam, float(v @ hv)
            if criterion == "residual":
                ok = bool(np.linalg.norm(hv - lam * v) <= tol * abs(lam))
            else:
                ok = bool(abs(lam - prev) <= tol * abs(prev))  # False while prev is NaN
            if ok:
                break
            v = hv
        v -= basis @ (basis.T @ v)  # no-op after convergence; normalises the last iterate else
        v /= np.linalg.norm(v)
        converged &= ok
        found.append(v)
        values.append(lam)
        basis = np.column_stack(found)
    order = np.argsort(values)
    return Eigenpairs(
        np.asarray(values)[order],
        basis[:, order],
        objective.num_hvp - start_hvp,
        time.perf_counter() - t0,
        "power iteration with deflation",
        bool(converged),
    )


def _matvec(objective: Objective, x: np.ndarray) -> np.ndarray:
    hv = objective.hvp(torch.from_numpy(x).to(objective.device))
    return hv.detach().to("cpu", torch.float64).numpy()


def lanczos_tridiagonal(
    matvec: Callable[[np.ndarray], np.ndarray], v0: np.ndarray, num_steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """``num_steps`` steps of Lanczos with full reorthogonalisation, from start vector ``v0``.

    Args:
        matvec: ``x -> H x`` for a symmetric ``H`` (float64 numpy vectors).
        v0: the start vector (normalised here).
        num_steps: the Krylov dimension ``m`` (stops early if the space is exhausted).

    Returns:
        ``(alpha, beta)``: the diagonal ``(m,)`` and off-diagonal ``(m - 1,)`` of the tridiagonal
        matrix ``T = Vᵀ H V``.
    """
    n = v0.shape[0]
    m = min(num_steps, n)
    basis = np.zeros((m, n))
    alpha = np.zeros(m)
    beta = np.zeros(m)
    v = v0 / np.linalg.norm(v0)
    for j in range(m):
        basis[j] = v
        w = matvec(v)
        alpha[j] = v @ w
        # full reorthogonalisation (twice is enough, Parlett): keeps the basis orthonormal in
        # floating point, so T has no spurious copies of converged eigenvalues
        for _ in range(2):
            w -= basis[: j + 1].T @ (basis[: j + 1] @ w)
        b = np.linalg.norm(w)
        if j + 1 == m or b < 1e-12 * max(1.0, abs(alpha[j])):
            return alpha[: j + 1], beta[:j]
        beta[j] = b
        v = w / b
    return alpha, beta[: m - 1]
