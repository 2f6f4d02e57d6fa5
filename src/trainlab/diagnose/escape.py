"""Escaping a saddle point along the eigenvector of the most negative Hessian eigenvalue.

The lecture's recipe: at a critical point the Taylor expansion is
``L(θ′) ≈ L(θ) + gᵀu + ½ uᵀHu`` with ``u = θ′ − θ``. If ``u`` is an eigenvector of ``H`` with
eigenvalue ``λ < 0`` then ``uᵀHu = λ‖u‖² < 0`` and the loss falls, however small ``g`` is.
:func:`escape` steps along ``±u_min`` (both signs, a line search over step lengths), keeps the
step with the lowest actual loss, and reports it beside the second-order prediction
``L(θ) + gᵀu + ½λ‖u‖²``, so one sees both that the escape works and how far the quadratic model
holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from trainlab.diagnose.hvp import Objective, as_objective
from trainlab.diagnose.lanczos import extreme_eigenpairs
from trainlab.diagnose.spectrum import full_spectrum

DEFAULT_STEPS: tuple[float, ...] = tuple(float(s) for s in np.geomspace(1e-3, 10.0, 17))


@dataclass
class EscapeResult:
    """One step along ``sign · u_min``: the loss before and after, and the quadratic prediction.

    ``step`` is ``‖u‖`` for the chosen step ``u = sign · step · u_min`` (``u_min`` a unit vector);
    ``trials`` lists every step the line search tried, with its actual and predicted loss.
    """

    eigenvalue: float
    sign: int
    step: float
    loss_before: float
    loss_after: float
    predicted_loss_after: float
    linear_term: float  # gᵀu
    curvature_term: float  # ½ λ ‖u‖²
    trials: list[dict[str, float]]
    point: Tensor = field(repr=False)  # θ′ = θ + u
    direction: np.ndarray = field(repr=False)  # unit u_min
    flat_tol: float = 0.0  # |λ| ≤ flat_tol counts as no curvature (the classification's tolerance)

    @property
    def negative_curvature(self) -> bool:
        """Is ``λ_min`` negative beyond the tolerance, i.e. is there a saddle direction at all?"""
        return self.eigenvalue < -self.flat_tol

    def small_step(self) -> dict[str, float]:
        """The smallest step tried in the chosen sign, where the quadratic model should hold."""
        same = [t for t in self.trials if int(t["sign"]) == self.sign]
        return min(same, key=lambda t: t["step"])

    @property
    def decreased(self) -> bool:
        """Did the step lower the loss?"""
        return self.loss_after < self.loss_before

    def to_dict(self) -> dict[str, Any]:
        return {
            "eigenvalue": self.eigenvalue,
            "sign": self.sign,
            "step": self.step,
            "loss_before": self.loss_before,
            "loss_after": self.loss_after,
            "predicted_loss_after": self.predicted_loss_after,
            "linear_term": self.linear_term,
            "curvature_term": self.curvature_term,
            "decreased": self.decreased,
            "negative_curvature": self.negative_curvature,
            "flat_tol": self.flat_tol,
            "small_step": self.small_step(),
            "trials": self.trials,
        }

    def __str__(self) -> str:
        sign = "+" if self.sign > 0 else "-"
        actual = self.loss_after - self.loss_before
        predicted = self.predicted_loss_after - self.loss_before
        lines = [
            f"Escape along {sign}u_min (λ_min = {self.eigenvalue:+.4e})",
            f"  step ‖u‖          {self.step:.4g}",
            f"  loss before       {self.loss_before:.6g}",
            f"  loss after        {self.loss_after:.6g}   (change {actual:+.4e})",
            f"  second-order      {self.predicted_loss_after:.6g}   (change {predicted:+.4e}"
            f" = gᵀu {self.linear_term:+.2e} + ½λ‖u‖² {self.curvature_term:+.2e})",
        ]
        t = self.small_step()
        lines.append(
            f"  at ‖u‖ = {t['step']:.3g}       change {t['loss'] - self.loss_before:+.4e} actual, "
            f"{t['predicted'] - self.loss_before:+.4e} second-order"
        )
        if not self.negative_curvature:
            lines.append(
                f"  note: λ_min is not below -{self.flat_tol:.2g}: no negative curvature here, "
                "so there is no saddle to escape"
            )
        if self.decreased and self.negative_curvature:
            lines.append("  result: the loss fell along the direction of negative curvature")
        elif self.decreased:
            lines.append("  result: the loss fell, through the gradient term, not curvature")
        else:
            lines.append("  result: no tried step lowered the loss")
        return "\n".join(lines)

    def trials_table(self) -> str:
        """The line search as a table: sign, step, actual loss, predicted loss."""
        lines = [f"{'sign':>4}  {'‖u‖':>10}  {'actual loss':>14}  {'predicted':>14}"]
        for t in self.trials:
            lines.append(
                f"{int(t['sign']):>+4d}  {t['step']:>10.4g}  {t['loss']:>14.6g}  {t['predicted']:>14.6g}"
            )
        return "\n".join(lines)


def escape(
    objective: Objective | Any,
    *,
    direction: np.ndarray | Tensor | None = None,
    eigenvalue: float | None = None,
    report: Any | None = None,
    steps: Sequence[float] = DEFAULT_STEPS,
    refine: bool = True,
    exact_max_params: int = 5000,
    seed: int = 0,
) -> EscapeResult:
    """Step along the eigenvector of the most negative eigenvalue and compare with the prediction.

    Args:
        objective: an :class:`~trainlab.diagnose.hvp.Objective` or a ``DiagnosisTarget``.
        direction: the direction to step along (normalised here); default: the eigenvector of
            ``λ_min``, from ``report`` if given, else computed (exactly up to
            ``exact_max_params`` parameters, by Lanczos above).
        eigenvalue: the curvature along ``direction``; default: its Rayleigh quotient.
        report: a :class:`~trainlab.diagnose.classify.CriticalPointReport` for this objective,
            whose ``λ_min`` eigenvector is reused.
        steps: the step lengths ``‖u‖`` the line search tries, each with both signs.
        refine: polish the best step with a bounded scalar search between its grid neighbours.
        exact_max_params, seed: how ``λ_min`` is found when it has to be.

    Returns:
        :class:`EscapeResult` for the step with the lowest actual loss (``result.point`` is
        ``θ′``; ``objective.write_to(model, result.point)`` applies it to a model).
    """
    obj = as_objective(objective)
    if direction is None and report is not None and report.min_eigenvector is not None:
        direction, eigenvalue = report.min_eigenvector, report.lambda_min
    if direction is None:
        if obj.num_params <= exact_max_params:
            spec = full_spectrum(obj)
            direction, eigenvalue = spec.eigenvectors[:, 0], float(spec.eigenvalues[0])
        else:
            pairs = extreme_eigenpairs(obj, 1, "bottom", tol=1e-5, seed=seed)
            direction, eigenvalue = pairs.eigenvectors[:, 0], float(pairs.eigenvalues[0])
    u = torch.as_tensor(np.asarray(direction, dtype=np.float64)).reshape(-1)
    if u.numel() != obj.num_params:
        raise ValueError(f"direction has {u.numel()} values, the objective {obj.num_params}")
    u = (u / torch.linalg.vector_norm(u)).to(device=obj.device, dtype=obj.dtype)
    if eigenvalue is None:
        eigenvalue = float(u.double() @ obj.hvp(u).double())
    if not steps or min(steps) <= 0:
        raise ValueError("steps must be a non-empty list of positive step lengths")
    theta = obj.point()
    loss0 = obj.loss()
    gu = float(obj.gradient().double() @ u.double())
    lam = float(eigenvalue)
    grid = sorted(float(s) for s in steps)

    def trial(sign: int, s: float) -> dict[str, float]:
        loss = obj.loss(theta + sign * s * u)
        predicted = loss0 + sign * s * gu + 0.5 * lam * s * s
        return {"sign": float(sign), "step": s, "loss": loss, "predicted": predicted}

    trials = [trial(sign, s) for sign in (1, -1) for s in grid]
    best = min(trials, key=lambda t: t["loss"])
    if refine and len(grid) > 1:
        trials.append(_refine(trial, best, grid))
        best = min(trials, key=lambda t: t["loss"])
    sign, s = int(best["sign"]), best["step"]
    return EscapeResult(
        eigenvalue=lam,
        sign=sign,
        step=s,
        loss_before=loss0,
        loss_after=best["loss"],
        predicted_loss_after=best["predicted"],
        linear_term=sign * s * gu,
        curvature_term=0.5 * lam * s * s,
        trials=trials,
        point=theta + sign * s * u,
        direction=u.detach().to("cpu", torch.float64).numpy(),
        flat_tol=float(report.eig_tol) if report is not None else 0.0,
    )


def _refine(trial: Any, best: dict[str, float], grid: list[float]) -> dict[str, float]:
    """Bounded scalar search for the step between the best grid step's neighbours."""
    from scipy.optimize import minimize_scalar

    sign, i = int(best["sign"]), grid.index(best["step"])
    lo = grid[i - 1] if i > 0 else 0.0
    hi = grid[i + 1] if i + 1 < len(grid) else grid[i]
    res = minimize_scalar(
        lambda s: trial(sign, float(s))["loss"],
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-4 * hi, "maxiter": 40},
    )
    return trial(sign, float(res.x))
