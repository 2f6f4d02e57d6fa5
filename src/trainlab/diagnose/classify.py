"""Is training stuck at a saddle point or a local minimum? The second-order test, with tolerances.

The lecture's answer to "the loss stopped falling": where the gradient vanishes, look at the
Hessian. All eigenvalues positive - a local minimum; all negative - a local maximum; both signs -
a saddle point, which an eigenvector of a negative eigenvalue leads out of. Its *minimum ratio* is
the share of positive eigenvalues (1 at a minimum).

In floating point "zero" needs tolerances, shown in every result: the point is critical when
``‖∇L‖ ≤ grad_tol``; an eigenvalue is flat when ``|λ| ≤ eig_tol = max(eig_atol,
eig_rtol · max|λ|)``. When the smallest eigenvalue is flat (and none is negative) the test is
inconclusive: the verdict is *degenerate*, as at (1, 1) for ``L = (1 − w₁w₂)²``.

Networks have many near-flat directions, which count as not positive in the minimum ratio; the
report therefore also gives the *curved ratio*, the share of positive eigenvalues among those
beyond the tolerance.

Small models (``n ≤ exact_max_params``) get the exact spectrum; large ones the ``k`` extreme
eigenvalues by Lanczos and the minimum ratio estimated from the SLQ density.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
import torch

from trainlab.diagnose.hvp import Objective, as_objective
from trainlab.diagnose.lanczos import extreme_eigenpairs
from trainlab.diagnose.spectrum import SpectralDensity, Spectrum, full_spectrum, slq_density


class Verdict(str, Enum):
    """What kind of point the second-order test finds."""

    NOT_CRITICAL = "not a critical point"
    LOCAL_MINIMUM = "local minimum"
    SADDLE = "saddle point"
    LOCAL_MAXIMUM = "local maximum"
    DEGENERATE = "degenerate"

    def __str__(self) -> str:
        return self.value


def eigenvalue_tolerance(
    lambda_min: float, lambda_max: float, eig_rtol: float, eig_atol: float
) -> float:
    """``max(eig_atol, eig_rtol · max(|λ_min|, |λ_max|))``: below it an eigenvalue counts as 0."""
    return max(eig_atol, eig_rtol * max(abs(lambda_min), abs(lambda_max)))


def verdict_for(
    grad_norm: float, lambda_min: float, lambda_max: float, grad_tol: float, eig_tol: float
) -> tuple[Verdict, str]:
    """The second-order test on a gradient norm and the extreme eigenvalues.

    Args:
        grad_norm: ``‖∇L‖``.
        lambda_min, lambda_max: the smallest and largest Hessian eigenvalues.
        grad_tol: the point is critical when ``grad_norm ≤ grad_tol``.
        eig_tol: eigenvalues with ``|λ| ≤ eig_tol`` are flat.

    Returns:
        ``(verdict, one-sentence explanation)``.
    """
    neg, pos = lambda_min < -eig_tol, lambda_max > eig_tol
    if grad_norm > grad_tol:
        curv = " and negative curvature" if neg else ""
        return Verdict.NOT_CRITICAL, (
            f"the gradient norm {grad_norm:.3g} exceeds {grad_tol:.3g}: the loss can still fall "
            f"along -∇L{curv}; training has not stalled at a critical point"
        )
    if neg and pos:
        return Verdict.SADDLE, (
            "eigenvalues of both signs: a saddle point; step along the eigenvector of λ_min "
            "to lower the loss (see escape)"
        )
    if neg and lambda_max < -eig_tol:
        return Verdict.LOCAL_MAXIMUM, "all eigenvalues negative: a local maximum"
    if neg:
        return Verdict.DEGENERATE, (
            "negative and flat directions but no positive curvature: not a minimum; the "
            "second-order test cannot say more"
        )
    if lambda_min > eig_tol:
        return Verdict.LOCAL_MINIMUM, "all eigenvalues positive: a local minimum"
    if not pos:
        return (
            Verdict.DEGENERATE,
            "the Hessian is flat (|λ| ≤ tolerance for all): the test says nothing",
        )
    return Verdict.DEGENERATE, (
        "no negative curvature beyond the tolerance, but flat directions (|λ_min| ≤ tol): a "
        "flat valley of minima or a saddle along the flat directions; the second-order test "
        "cannot tell"
    )


@dataclass
class CriticalPointReport:
    """The result of :func:`classify`: gradient, curvature, minimum ratio, verdict and tolerances."""

    verdict: Verdict
    explanation: str
    loss: float
    grad_norm: float
    num_params: int
    method: str  # "exact" or "lanczos"
    lambda_min: float
    lambda_max: float
    eigenvalues_bottom: list[float]
    eigenvalues_top: list[float]
    min_ratio: float
    min_ratio_source: str
    curved_ratio: float  # positive share among eigenvalues with |λ| > eig_tol
    grad_tol: float
    eig_tol: float
    eig_rtol: float
    eig_atol: float
    counts: dict[str, int] | None = None  # positive / negative / flat, exact spectrum only
    trace: float | None = None
    num_hvp: int = 0
    seconds: float = 0.0
    converged: bool = True
    spectrum: Spectrum | None = field(default=None, repr=False)
    density: SpectralDensity | None = field(default=None, repr=False)
    min_eigenvector: np.ndarray | None = field(default=None, repr=False)

    @property
    def is_saddle(self) -> bool:
        return self.verdict is Verdict.SADDLE

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (the density as a 200-point grid, no eigenvectors)."""
        d: dict[str, Any] = {
            "verdict": self.verdict.value,
            "explanation": self.explanation,
            "loss": self.loss,
            "grad_norm": self.grad_norm,
            "num_params": self.num_params,
            "method": self.method,
            "lambda_min": self.lambda_min,
            "lambda_max": self.lambda_max,
            "eigenvalues_bottom": self.eigenvalues_bottom,
            "eigenvalues_top": self.eigenvalues_top,
            "min_ratio": self.min_ratio,
            "min_ratio_source": self.min_ratio_source,
            "curved_ratio": self.curved_ratio,
            "counts": self.counts,
            "trace": self.trace,
            "tolerances": {
                "grad_tol": self.grad_tol,
                "eig_tol": self.eig_tol,
                "eig_rtol": self.eig_rtol,
                "eig_atol": self.eig_atol,
            },
            "num_hvp": self.num_hvp,
            "seconds": round(self.seconds, 4),
            "converged": self.converged,
        }
        if self.density is not None:
            d["density"] = self.density.to_dict()
        return d

    def __str__(self) -> str:
        how = "exact spectrum" if self.method == "exact" else "Lanczos + SLQ"
        rows = [
            ("loss", f"{self.loss:.6g}", ""),
            ("gradient norm ‖∇L‖", f"{self.grad_norm:.3e}", f"critical if ≤ {self.grad_tol:.1e}"),
            ("λ_min", f"{self.lambda_min:+.4e}", ""),
            ("λ_max", f"{self.lambda_max:+.4e}", ""),
            (
                "eigenvalue tolerance",
                f"{self.eig_tol:.2e}",
                f"max({self.eig_atol:.0e}, {self.eig_rtol:.0e}·max|λ|); |λ| ≤ tol is flat",
            ),
        ]
        if self.counts is not None:
            c = self.counts
            rows.append(
                ("eigenvalues + / − / flat", f"{c['positive']} / {c['negative']} / {c['flat']}", "")
            )
        rows += [
            (
                "minimum ratio",
                f"{self.min_ratio:.4f}",
                f"{self.min_ratio_source}: share of λ > tol",
            ),
            (
                "… among curved directions",
                f"{self.curved_ratio:.4f}",
                "share of λ > tol among |λ| > tol",
            ),
            ("smallest eigenvalues", _fmt_list(self.eigenvalues_bottom), ""),
            ("largest eigenvalues", _fmt_list(self.eigenvalues_top), ""),
        ]
        if self.trace is not None:
            rows.append(("trace", f"{self.trace:.4e}", ""))
        note = "" if self.converged else "; Lanczos did not fully converge"
        rows.append(("Hessian-vector products", str(self.num_hvp), f"{self.seconds:.2f} s{note}"))
        width = max(len(r[0]) for r in rows)
        lines = [f"Critical-point diagnosis ({how}, {self.num_params:,} parameters)"]
        for name, value, comment in rows:
            lines.append(f"  {name:<{width}}  {value:<14}  {comment}".rstrip())
        lines.append(f"verdict: {self.verdict.value.upper()} - {self.explanation}")
        return "\n".join(lines)


def _fmt_list(values: list[float]) -> str:
    return " ".join(f"{v:+.3e}" for v in values)


def classify(
    objective: Objective | Any,
    *,
    k: int = 5,
    exact_max_params: int = 5000,
    grad_tol: float = 1e-3,
    eig_rtol: float = 1e-4,
    eig_atol: float = 1e-8,
    lanczos_tol: float = 1e-5,
    slq_vectors: int = 2,
    slq_steps: int = 80,
    seed: int = 0,
) -> CriticalPointReport:
    """Classify the point where an objective sits: critical or not, and what kind.

    Args:
        objective: an :class:`~trainlab.diagnose.hvp.Objective` or a ``DiagnosisTarget``
            (analysed in evaluation mode, all parameters, its own dtype; build a
            ``ModelObjective`` for other choices).
        k: how many extreme eigenvalues to report at each end.
        exact_max_params: use the exact spectrum up to this many parameters, Lanczos above.
        grad_tol: the point is critical when ``‖∇L‖ ≤ grad_tol``.
        eig_rtol, eig_atol: eigenvalues with ``|λ| ≤ max(eig_atol, eig_rtol · max|λ|)`` are flat.
        lanczos_tol: relative accuracy of the Lanczos eigenvalues (large models); 1e-5 is ten
            times finer than the default eigenvalue tolerance, which is all a verdict needs.
        slq_vectors, slq_steps: the SLQ density that estimates the minimum ratio (large models).
        seed: seeds every random vector.

    Returns:
        A :class:`CriticalPointReport` (``print`` it for a table; ``to_dict()`` for JSON).
    """
    obj = as_objective(objective)
    start, t0 = obj.num_hvp, time.perf_counter()
    loss = obj.loss()
    grad_norm = float(torch.linalg.vector_norm(obj.gradient().double()))
    n = obj.num_params
    spectrum = density = None
    counts = None
    trace = None
    converged = True
    if n <= exact_max_params:
        spectrum = full_spectrum(obj)
        w = spectrum.eigenvalues
        lam_min, lam_max = float(w[0]), float(w[-1])
        tol = eigenvalue_tolerance(lam_min, lam_max, eig_rtol, eig_atol)
        bottom, top = w[: min(k, n)], w[max(n - k, 0) :]
        min_vec = spectrum.eigenvectors[:, 0]
        min_ratio, source = spectrum.min_ratio(tol), "exact"
        curved = spectrum.curved_ratio(tol)
        counts = spectrum.counts(tol)
        trace = float(w.sum())
        method = "exact"
    else:
        pairs = extreme_eigenpairs(obj, k, "both", tol=lanczos_tol, seed=seed)
        converged = pairs.converged
        w = pairs.eigenvalues
        lam_min, lam_max = float(w[0]), float(w[-1])
        tol = eigenvalue_tolerance(lam_min, lam_max, eig_rtol, eig_atol)
        bottom, top = w[:k], w[-k:]
        min_vec = pairs.eigenvectors[:, 0]
        density = slq_density(obj, slq_vectors, slq_steps, seed=seed)
        min_ratio, source = density.min_ratio(tol), "SLQ estimate"
        curved = density.curved_ratio(tol)
        trace = density.trace()
        method = "lanczos"
    verdict, why = verdict_for(grad_norm, lam_min, lam_max, grad_tol, tol)
    return CriticalPointReport(
        verdict=verdict,
        explanation=why,
        loss=loss,
        grad_norm=grad_norm,
        num_params=n,
        method=method,
        lambda_min=lam_min,
        lambda_max=lam_max,
        eigenvalues_bottom=[float(x) for x in bottom],
        eigenvalues_top=[float(x) for x in top],
        min_ratio=min_ratio,
        min_ratio_source=source,
        curved_ratio=curved,
        grad_tol=grad_tol,
        eig_tol=tol,
        eig_rtol=eig_rtol,
        eig_atol=eig_atol,
        counts=counts,
        trace=trace,
        num_hvp=obj.num_hvp - start,
        seconds=time.perf_counter() - t0,
        converged=converged,
        spectrum=spectrum,
        density=density,
        min_eigenvector=np.asarray(min_vec, dtype=np.float64),
    )
