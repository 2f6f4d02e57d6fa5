"""The expensive, rare measurements: sharpness against the learning rate, saddles, noise scale.

**Sharpness against 2/lr.** Gradient descent on a quadratic with curvature λ is stable only while
``lr · λ < 2``; Cohen et al. (2021, "Gradient descent on neural networks typically occurs at the
edge of stability") found that full-batch training drives the top Hessian eigenvalue up to
``2/lr`` and holds it there, and Cohen et al. (2022) showed the same for Adam's *preconditioned*
sharpness ``λ_max(P⁻¹H)`` against ``(2 + 2β₁)/((1 − β₁)·lr)``. :func:`measure_curvature` computes
the *stability ratio*

    ρ = λ_max(D^½ H D^½) / c,

where ``D`` holds each parameter's step size (``lr`` for SGD, ``lr / P`` with Adam's, RMSprop's or
Adagrad's denominator ``P`` read from the optimizer's state) and ``c`` is the threshold of the
update rule: 2 for plain steps, ``2 + 2β`` for heavy-ball momentum (``torch.optim.SGD``, the
lecture's momentum), ``(2 + 2β₁)/(1 − β₁)`` for an averaged first moment (Adam). ``ρ ≈ 1`` is the
edge of stability, ``ρ ≫ 1`` a learning rate the curvature cannot take, ``ρ ≪ 1`` a learning rate
far below what it could take. ``D^½ H D^½`` has the same eigenvalue signs as ``H``.

The top eigenvalue comes from a fixed number of Lanczos steps
(:func:`trainlab.diagnose.lanczos.lanczos_tridiagonal`, one Hessian-vector product each), so the
cost is bounded. **When the gradient is small** (and at the end of a run) the bottom eigenvalue of
``H`` itself is computed too: exactly for small models
(:func:`trainlab.diagnose.spectrum.full_spectrum`), else from the smallest Ritz value of another
fixed-length Lanczos run, which can only lie above ``λ_min`` (a negative one proves negative
curvature); the second-order test of :func:`trainlab.diagnose.classify.verdict_for` then says
saddle point or local minimum, with its tolerances.

**Gradient noise scale.** McCandlish et al. (2018, "An empirical model of large-batch training"):
``B_simple = tr(Σ)/|G|²``, with ``G`` the true gradient and ``Σ`` the per-example gradient
covariance, is the batch size beyond which larger batches stop paying. From gradients of two batch
sizes, ``E|G_B|² = |G|² + tr(Σ)/B`` gives unbiased estimates of both (their appendix A).
:class:`NoiseScale` uses the training's own gradients: the ``k`` per-step gradients of a window
of consecutive steps (batch ``B``) and their mean (batch ``kB``), and averages numerator and
denominator over windows before dividing, as they recommend.

Everything here draws its random vectors from its own generators, runs the model through
``torch.func.functional_call`` (:class:`trainlab.diagnose.hvp.ModelObjective`, buffers copied in
training mode) and never writes a parameter, a gradient or a global random state.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from trainlab.diagnose.classify import eigenvalue_tolerance, verdict_for
from trainlab.diagnose.hvp import ModelObjective
from trainlab.diagnose.lanczos import lanczos_tridiagonal
from trainlab.diagnose.spectrum import full_spectrum


@dataclass
class StepSizes:
    """Per-parameter step sizes ``D`` (flat, in the objective's order) and the threshold ``c``."""

    diag: Tensor | None  # None: the same lr everywhere (scalar_lr)
    scalar_lr: float
    threshold: float
    rule: str  # "sgd", "heavy-ball momentum", "adam", "rmsprop", "adagrad", "unknown (as sgd)"


def step_sizes(optimizer: torch.optim.Optimizer | None, params: list[Tensor]) -> StepSizes | None:
    """Each parameter's effective step size under ``optimizer`` and its stability threshold.

    Args:
        optimizer: the run's optimizer (``None``: nothing known).
        params: the parameters, in the order of the Hessian's flat vector.

    Returns:
        :class:`StepSizes`, or ``None`` when an adaptive optimizer has no statistics yet (before
        its first step) or no parameter is in the optimizer.
    """
    if optimizer is None:
        return None
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    parts: list[Tensor] = []
    rule = None
    threshold = 2.0
    lrs = []
    for p in params:
        group = group_of.get(id(p))
        if group is None:
            return None
        lr = float(group.get("lr", 0.0))
        lrs.append(lr)
        state = optimizer.state.get(p, {})
        p_rule, p_thr, denom = _rule(group, state)
        if p_rule == "waiting":
            return None
        rule = rule or p_rule
        threshold = p_thr
        parts.append((lr / denom).reshape(-1) if isinstance(denom, Tensor) else None)  # type: ignore[arg-type]
    if not lrs:
        return None
    if all(part is None for part in parts):
        uniform = len(set(lrs)) == 1
        if uniform:
            return StepSizes(None, lrs[0], threshold, rule or "sgd")
        parts = [torch.full((p.numel(),), lr, device=p.device) for p, lr in zip(params, lrs)]
    else:
        parts = [
            part if part is not None else torch.full((p.numel(),), lr, device=p.device)
            for part, p, lr in zip(parts, params, lrs)
        ]
    diag = torch.cat([part.detach().double().cpu() for part in parts])
    return StepSizes(diag, float(np.mean(lrs)), threshold, rule or "sgd")


def _rule(group: dict[str, Any], state: dict[str, Any]) -> tuple[str, float, Any]:
    """``(rule, threshold c, denominator P or 1.0)`` for one parameter's group and state."""
    if "betas" in group:  # Adam, AdamW, and trainlab's forms
        key = "max_exp_avg_sq" if group.get("amsgrad") and "max_exp_avg_sq" in state else None
        v = state.get(key or "exp_avg_sq")
        if v is None:
            return "waiting", 0.0, None
        beta1, beta2 = (float(b) for b in group["betas"])
        t = max(int(state.get("step", 1)), 1)
        denom = (v.detach().double() / (1 - beta2**t)).sqrt() + float(group.get("eps", 1e-8))
        denom = denom * (1 - beta1**t)
        return "adam", (2 + 2 * beta1) / max(1 - beta1, 1e-12), denom
    if "lr_decay" in group or "initial_accumulator_value" in group or "sum" in state:
        s = state.get("sum")
        if s is None:
            return "waiting", 0.0, None
        t = max(int(state.get("step", 1)), 1)
        decay = 1 + (t - 1) * float(group.get("lr_decay", 0.0))
        return "adagrad", 2.0, (s.detach().double().sqrt() + float(group.get("eps", 1e-10))) * decay
    if "alpha" in group or "square_avg" in state:  # RMSprop
        sq = state.get("square_avg")
        if sq is None:
            return "waiting", 0.0, None
        sq = sq.detach().double()
        if group.get("centered") and "grad_avg" in state:
            sq = sq - state["grad_avg"].detach().double() ** 2
        mom = float(group.get("momentum", 0.0))
        return "rmsprop", 2 + 2 * mom, sq.clamp_min(0).sqrt() + float(group.get("eps", 1e-8))
    if "momentum" in group:  # torch SGD (b = βb + g) and the lecture's (m = λm − ηg): heavy ball
        mom = float(group.get("momentum", 0.0))
        return ("heavy-ball momentum" if mom else "sgd"), 2 + 2 * mom, 1.0
    return "unknown (as sgd)", 2.0, 1.0


@dataclass
class CurvatureReading:
    """One curvature check on the probe batch."""

    loss: float
    grad_norm: float
    lambda_max: float  # of D^½ H D^½ / (step size) for uniform lr: of H itself
    lambda_max_h: float | None  # of H itself when D is not uniform (adaptive optimizers)
    stability_ratio: float | None  # ρ (None: no optimizer known)
    threshold: float | None  # c / lr for a uniform lr (the familiar 2/lr), else None
    rule: str
    lambda_min: float | None = None
    verdict: str | None = None
    explanation: str | None = None
    eig_tol: float | None = None
    grad_tol: float | None = None
    bottom_method: str | None = None
    num_hvp: int = 0
    seconds: float = 0.0
    num_params: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _ritz(
    matvec: Callable[[np.ndarray], np.ndarray], n: int, steps: int, rng: Any
) -> tuple[float, float]:
    """The smallest and largest Ritz values of ``steps`` Lanczos steps from a random vector."""
    from scipy.linalg import eigh_tridiagonal

    v0 = rng.standard_normal(n)
    alpha, beta = lanczos_tridiagonal(matvec, v0, min(steps, n))
    if len(alpha) == 1:
        return float(alpha[0]), float(alpha[0])
    w = eigh_tridiagonal(alpha, beta, eigvals_only=True)
    return float(w[0]), float(w[-1])


def _blas_threads() -> Any:
    """One BLAS thread for the Lanczos vectors: on a busy machine several spin and crawl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        from contextlib import nullcontext

        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def measure_curvature(
    model: nn.Module,
    loss_fn: Callable[[Any, Any], Tensor],
    inputs: Any,
    targets: Any,
    optimizer: torch.optim.Optimizer | None,
    *,
    lanczos_steps: int = 20,
    bottom: bool | None = None,
    bottom_hvp: int = 40,
    grad_tol: float = 1e-3,
    eig_rtol: float = 1e-3,
    exact_max_params: int = 400,
    seed: int = 0,
    time_budget: float | None = None,
    min_steps: int = 8,
) -> CurvatureReading | None:
    """Sharpness against the optimizer's threshold, and the bottom eigenvalue if asked or needed.

    Args:
        model: the network (its parameters, buffers and flags are left as they are).
        loss_fn: the training loss.
        inputs, targets: the fixed probe batch.
        optimizer: gives the step sizes and the threshold (see the module docstring).
        lanczos_steps: Hessian-vector products for the top eigenvalue.
        bottom: compute the bottom eigenvalue (``None``: only when ``‖∇L‖ ≤ grad_tol``).
        bottom_hvp: Lanczos steps (products) for the bottom eigenvalue of large models.
        grad_tol: the gradient norm under which the point counts as critical.
        eig_rtol: eigenvalues within ``eig_rtol · max|λ|`` of zero count as flat.
        exact_max_params: exact spectrum (float64) for models up to this size.
        seed: seeds the random start vectors (own generator).
        time_budget: seconds the check may take: one timed product calibrates the cost, and
            the Lanczos steps are cut to fit (``None``: no limit).
        min_steps: fewest Lanczos steps worth running at each end within ``time_budget``.

    Returns:
        :class:`CurvatureReading`, or ``None`` when ``time_budget`` cannot pay for
        ``min_steps`` products.
    """
    with _blas_threads():
        return _measure(
            model, loss_fn, inputs, targets, optimizer, lanczos_steps, bottom, bottom_hvp,
            grad_tol, eig_rtol, exact_max_params, seed, time_budget, min_steps,
        )  # fmt: skip


def _measure(
    model: nn.Module,
    loss_fn: Callable[[Any, Any], Tensor],
    inputs: Any,
    targets: Any,
    optimizer: torch.optim.Optimizer | None,
    lanczos_steps: int,
    bottom: bool | None,
    bottom_hvp: int,
    grad_tol: float,
    eig_rtol: float,
    exact_max_params: int,
    seed: int,
    time_budget: float | None = None,
    min_steps: int = 8,
) -> CurvatureReading | None:
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    mode = "train" if model.training else "eval"
    small = sum(p.numel() for p in model.parameters() if p.requires_grad) <= exact_max_params
    obj = ModelObjective(
        model, loss_fn, inputs, targets, mode=mode, seed=seed,
        dtype=torch.float64 if small else None,
    )  # fmt: skip
    params = dict(model.named_parameters())
    sizes = step_sizes(optimizer, [params[n] for n in obj.names])
    loss = obj.loss()
    grad_norm = float(torch.linalg.vector_norm(obj.gradient().double()))

    def hvp(x: np.ndarray) -> np.ndarray:
        v = torch.from_numpy(np.ascontiguousarray(x)).to(obj.device)
        return obj.hvp(v).detach().to("cpu", torch.float64).numpy()

    n = obj.num_params
    if time_budget is not None:  # a timed product says how many the budget pays for
        per = math.inf
        for _ in range(2):  # the first pays one-off costs: the faster of two is the price
            t1 = time.perf_counter()
            hvp(rng.standard_normal(n))
            per = min(per, max(time.perf_counter() - t1, 1e-6))
        left = int((time_budget - (time.perf_counter() - t0)) / per)
        want_bottom = bottom or (bottom is None and grad_norm <= grad_tol)
        if left < (2 if want_bottom and not small else 1) * min_steps:
            return None
        lanczos_steps = min(lanczos_steps, left // 2 if want_bottom else left)
        bottom_hvp = min(bottom_hvp, left - lanczos_steps)
    lam_h = None
    if sizes is not None and sizes.diag is not None:
        d_half = sizes.diag.sqrt().numpy()
        lam_scaled = _ritz(lambda x: d_half * hvp(d_half * x), n, lanczos_steps, rng)[1]
        rho = lam_scaled / sizes.threshold
        lam_max, threshold = lam_scaled, None
    else:
        lam_h = None
        lam_max = _ritz(hvp, n, lanczos_steps, rng)[1]
        if sizes is not None:
            rho = sizes.scalar_lr * lam_max / sizes.threshold
            threshold = sizes.threshold / sizes.scalar_lr if sizes.scalar_lr > 0 else None
        else:
            rho, threshold = None, None
    reading = CurvatureReading(
        loss=loss,
        grad_norm=grad_norm,
        lambda_max=lam_max,
        lambda_max_h=lam_h,
        stability_ratio=rho,
        threshold=threshold,
        rule=sizes.rule if sizes is not None else "no optimizer",
        grad_tol=grad_tol,
        num_params=n,
    )
    if bottom or (bottom is None and grad_norm <= grad_tol):
        _bottom(obj, reading, small, lambda: _ritz(hvp, n, bottom_hvp, rng), eig_rtol)
    reading.num_hvp = obj.num_hvp
    reading.seconds = time.perf_counter() - t0
    return reading


def _bottom(
    obj: ModelObjective,
    reading: CurvatureReading,
    small: bool,
    lanczos: Callable[[], tuple[float, float]],
    eig_rtol: float,
) -> None:
    """The extreme eigenvalues of H itself and the second-order verdict, into ``reading``."""
    if small:
        w = full_spectrum(obj).eigenvalues
        lam_min, lam_max, method = float(w[0]), float(w[-1]), "exact"
    else:
        lam_min, lam_max = lanczos()
        method = "lanczos (smallest Ritz value: an upper bound on λ_min)"
    tol = eigenvalue_tolerance(lam_min, lam_max, eig_rtol, 1e-8)
    verdict, why = verdict_for(
        reading.grad_norm, lam_min, lam_max, float(reading.grad_tol or 0.0), tol
    )
    reading.lambda_min = lam_min
    reading.lambda_max_h = lam_max
    reading.verdict = verdict.value
    reading.explanation = why
    reading.eig_tol = tol
    reading.bottom_method = method


class NoiseScale:
    """The gradient noise scale from windows of consecutive training gradients.

    Call :meth:`add` with each step's gradients during a window of ``k`` steps; :meth:`close`
    ends the window and returns its estimates.

    Args:
        k: steps per window (the "big batch" is ``k·B``).
    """

    def __init__(self, k: int = 8) -> None:
        self.k = k
        self.total: Tensor | None = None
        self.sq_sum = 0.0
        self.count = 0
        self.rows = 0
        self.s_sum = 0.0  # Σ over windows of the tr(Σ) estimates
        self.g_sum = 0.0  # Σ over windows of the |G|² estimates
        self.windows = 0

    @property
    def active(self) -> bool:
        return self.total is not None

    def start(self) -> None:
        self.total, self.sq_sum, self.count, self.rows = None, 0.0, 0, 0
        self.total = torch.zeros(0)

    def add(self, grads: list[Tensor], batch_size: int) -> bool:
        """Add one step's gradients; True when the window is full."""
        flat = torch.cat([g.detach().reshape(-1).float() for g in grads])
        if self.total is None or self.total.numel() == 0:
            self.total = flat.clone()
        else:
            self.total += flat
        self.sq_sum += float(flat.pow(2).sum())
        self.count += 1
        self.rows += int(batch_size)
        return self.count >= self.k

    def close(self) -> dict[str, Any] | None:
        """End the window: its estimates and the running B_simple (``None`` if unusable)."""
        total, k = self.total, self.count
        self.total = None
        if total is None or k < 2 or self.rows < 2 * k:
            return None
        b = self.rows / k  # mean batch size
        small = self.sq_sum / k  # E|G_B|²
        big = float(total.pow(2).sum()) / k**2  # |G_kB|²
        g2 = (k * big - small) / (k - 1)  # |G|²
        s = (small - big) / (1 / b - 1 / (k * b))  # tr(Σ)
        if not (math.isfinite(g2) and math.isfinite(s)):
            return None
        self.s_sum += s
        self.g_sum += g2
        self.windows += 1
        running = self.s_sum / self.g_sum if self.g_sum > 0 else math.inf
        return {
            "batch_size": b,
            "window": k,
            "grad_sq_small": small,
            "grad_sq_big": big,
            "grad_sq": g2,
            "trace_sigma": s,
            "b_simple_window": s / g2 if g2 > 0 else math.inf,
            "b_simple": running,
            "windows": self.windows,
        }
