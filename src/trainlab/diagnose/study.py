"""The lecture's empirical study: where training stalls, how often is it a saddle point?

The lecture trains many networks until the gradient vanishes - by minimising the gradient norm
``‖∇L‖²`` after some ordinary training - and plots each point's *minimum ratio* (the share of
positive Hessian eigenvalues) against its training loss. Points with a ratio below 1 are saddles:
true local minima turn out to be rare, most stalls still have directions of negative curvature.

:func:`critical_point_study` repeats it on small tanh MLPs fitting a fixed 2-D regression task:

1. up to ``train_steps`` of Adam on the loss (each network stops at its own seeded step count, so
   the runs reach different regions);
2. ``gnorm_steps`` of Adam on ``‖∇L‖²`` (the lecture's way towards a point where ``∇L = 0``,
   whatever its kind: minimising the gradient norm is drawn to saddles as much as to minima);
3. ``polish_steps`` of Levenberg-Marquardt on the equation ``∇L(θ) = 0``, which ends in Newton's
   method and so converges fast to the nearby critical point of any kind: the gradient vanishes
   to ~1e-15 rather than ~1e-3, and the second-order test is not blurred by a leftover gradient;
4. :func:`~trainlab.diagnose.classify.classify` on each network (exact float64 spectrum).

The loss is the MSE plus ``½ · weight_decay · ‖θ‖²`` (default 1e-2). Without the penalty many
stalls of a tanh network lie on valleys that slope gently towards infinite weights: the gradient
is small there but never vanishes, and no method reaches a critical point. The penalty makes the
critical points bounded and isolated; a network whose gradient still does not vanish is reported
as "not a critical point" and left out of the shares.

All networks run as one batched computation (:mod:`trainlab.diagnose._batched`) on one CPU thread
(for tensors this small, more threads only add synchronisation), so 40 networks take a few
seconds. Everything is seeded: the same config gives the same points.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from trainlab._threads import torch_threads
from trainlab.config import to_dict
from trainlab.diagnose import _batched
from trainlab.diagnose.classify import Verdict, classify
from trainlab.diagnose.hvp import ModelObjective


@dataclass
class StudyConfig:
    """Settings of :func:`critical_point_study` (the defaults run in a few seconds)."""

    n_networks: int = 40
    hidden: list[int] = field(default_factory=lambda: [6])
    activation: str = "tanh"  # "tanh" | "sigmoid"
    in_features: int = 2
    n_samples: int = 64
    noise: float = 0.1
    weight_decay: float = 1e-2  # the loss is MSE + ½ · weight_decay · ‖θ‖²
    train_steps: int = 300  # most Adam steps on the loss; each network draws its own count
    lr: float = 0.03
    gnorm_steps: int = 200  # Adam steps on ‖∇L‖²
    gnorm_lr: float = 3e-3
    polish_steps: int = 150  # Levenberg-Marquardt steps on ∇L = 0
    grad_tol: float = 1e-8  # a point counts as critical when ‖∇L‖ ≤ grad_tol
    eig_rtol: float = 1e-6
    eig_atol: float = 1e-10
    seed: int = 0

    @classmethod
    def quick(cls, **overrides: Any) -> StudyConfig:
        """A smaller study for smoke runs and ``--quick`` reports (about a second)."""
        base = cls(n_networks=16, train_steps=150, gnorm_steps=100, polish_steps=100)
        return replace(base, **overrides)


@dataclass
class StudyPoint:
    """One network's stall: its loss, gradient, curvature and verdict."""

    index: int
    train_steps: int
    loss: float  # the objective analysed: MSE + ½ · weight_decay · ‖θ‖²
    mse: float
    grad_norm: float
    min_ratio: float
    lambda_min: float
    lambda_max: float
    n_negative: int
    verdict: str

    @property
    def critical(self) -> bool:
        return self.verdict != Verdict.NOT_CRITICAL.value


@dataclass
class StudyResult:
    """The points of :func:`critical_point_study` with its config; ``summary()`` counts verdicts."""

    points: list[StudyPoint]
    config: StudyConfig
    seconds: float = 0.0
    num_params: int = 0
    parameters: Tensor | None = field(default=None, repr=False)  # (N, n) where each network ended

    def objective(self, index: int) -> ModelObjective:
        """Network ``index`` at its stall, ready for :func:`~trainlab.diagnose.escape.escape`.

        Args:
            index: the network (``points[index].index``).

        Returns:
            A float64 :class:`~trainlab.diagnose.hvp.ModelObjective` of the study's loss (MSE plus
            the weight-decay penalty) on the study's data, at that network's parameters.
        """
        if self.parameters is None:
            raise ValueError("this result holds no parameters (it was loaded from JSON)")
        c = self.config
        x, y = study_data(c)
        net = _batched.build_mlp(c.in_features, c.hidden, c.activation).double()
        obj = ModelObjective(
            net, torch.nn.functional.mse_loss, x, y.unsqueeze(1), weight_decay=c.weight_decay
        )
        obj.set_point(self.parameters[index])
        return obj

    def saddles(self) -> list[StudyPoint]:
        """The points classified as saddle points."""
        return [p for p in self.points if p.verdict == Verdict.SADDLE.value]

    def summary(self) -> dict[str, Any]:
        """Counts by verdict, and the shares of saddles and minima among the critical points."""
        counts = {v.value: 0 for v in Verdict}
        for p in self.points:
            counts[p.verdict] += 1
        crit = [p for p in self.points if p.critical]
        nan = float("nan")
        return {
            "n_networks": len(self.points),
            "n_critical": len(crit),
            "counts": counts,
            "saddle_share": counts[Verdict.SADDLE.value] / len(crit) if crit else nan,
            "minimum_share": counts[Verdict.LOCAL_MINIMUM.value] / len(crit) if crit else nan,
            "mean_min_ratio": float(np.mean([p.min_ratio for p in crit])) if crit else nan,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": to_dict(self.config),
            "num_params": self.num_params,
            "seconds": round(self.seconds, 3),
            "summary": self.summary(),
            "points": [dict(vars(p)) for p in self.points],
        }

    def __str__(self) -> str:
        s = self.summary()
        c = self.config
        arch = "-".join(map(str, [c.in_features, *c.hidden, 1]))
        lines = [
            f"Critical-point study: {s['n_networks']} MLPs {arch} ({c.activation}, "
            f"{self.num_params} parameters), {c.n_samples} samples, weight decay "
            f"{c.weight_decay:g}, {self.seconds:.1f} s",
            f"  {'#':>3}  {'loss':>9}  {'‖∇L‖':>8}  {'min ratio':>9}  {'λ_min':>10}  verdict",
        ]
        for p in self.points:
            lines.append(
                f"  {p.index:>3}  {p.loss:>9.5f}  {p.grad_norm:>8.1e}  {p.min_ratio:>9.3f}  "
                f"{p.lambda_min:>+10.2e}  {p.verdict}"
            )
        lines.append("  " + ", ".join(f"{k}: {v}" for k, v in s["counts"].items() if v))
        if s["n_critical"]:
            lines.append(
                f"  of {s['n_critical']} critical points {s['saddle_share']:.0%} are saddle points, "
                f"{s['minimum_share']:.0%} local minima; mean minimum ratio {s['mean_min_ratio']:.3f}"
            )
        return "\n".join(lines)


def study_data(config: StudyConfig) -> tuple[Tensor, Tensor]:
    """The fixed task: ``x ~ N(0, I)``, ``y = sin(aᵀx) + ½cos(bᵀx) + noise``, standardised.

    Returns:
        ``x (n_samples, in_features)`` and ``y (n_samples,)``, float64.
    """
    g = torch.Generator().manual_seed(config.seed)
    x = torch.randn(config.n_samples, config.in_features, generator=g, dtype=torch.float64)
    a = torch.randn(config.in_features, generator=g, dtype=torch.float64) * 1.5
    b = torch.randn(config.in_features, generator=g, dtype=torch.float64) * 1.5
    y = torch.sin(x @ a) + 0.5 * torch.cos(x @ b)
    y = y + config.noise * torch.randn(config.n_samples, generator=g, dtype=torch.float64)
    return x, (y - y.mean()) / y.std()


def critical_point_study(
    n_networks: int | None = None, config: StudyConfig | None = None, **overrides: Any
) -> StudyResult:
    """Train small networks until the gradient vanishes; record minimum ratio against loss.

    Args:
        n_networks: how many networks (overrides ``config.n_networks``).
        config: the settings (default :class:`StudyConfig`; ``StudyConfig.quick()`` is smaller).
        **overrides: individual settings, e.g. ``seed=1``, ``hidden=[8]``.

    Returns:
        :class:`StudyResult`; ``print`` it for a table, :func:`plot_study` draws the lecture's plot.
    """
    cfg = replace(config or StudyConfig(), **overrides)
    if n_networks is not None:
        cfg = replace(cfg, n_networks=n_networks)
    if cfg.activation not in _batched.SMOOTH_ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {sorted(_batched.SMOOTH_ACTIVATIONS)}, got {cfg.activation!r}"
        )
    if cfg.n_networks < 1:
        raise ValueError("n_networks must be at least 1")
    t0 = time.perf_counter()
    with torch_threads(1):
        x, y = study_data(cfg)
        f = _Batch(x, y, cfg)
        rng = np.random.default_rng(cfg.seed)
        seeds = rng.integers(0, 2**31 - 1, size=cfg.n_networks)
        steps = rng.integers(0, cfg.train_steps + 1, size=cfg.n_networks)
        theta = _batched.init_params(
            cfg.n_networks, cfg.in_features, cfg.hidden, seeds.tolist(), torch.float64
        )
        theta = _train(f, theta, steps, cfg.lr)
        theta = _minimise_grad_norm(f, theta, cfg.gnorm_steps, cfg.gnorm_lr)
        theta = _levenberg_marquardt(f, theta, cfg.polish_steps)
        mse = _batched.losses(theta, x, y, cfg.in_features, cfg.hidden, cfg.activation)
        net = _batched.build_mlp(cfg.in_features, cfg.hidden, cfg.activation).double()
        obj = ModelObjective(
            net, torch.nn.functional.mse_loss, x, y.unsqueeze(1), weight_decay=cfg.weight_decay
        )
        points = []
        for i in range(cfg.n_networks):
            obj.set_point(theta[i])
            r = classify(obj, grad_tol=cfg.grad_tol, eig_rtol=cfg.eig_rtol, eig_atol=cfg.eig_atol)
            assert r.counts is not None
            points.append(
                StudyPoint(i, int(steps[i]), r.loss, float(mse[i]), r.grad_norm, r.min_ratio,
                           r.lambda_min, r.lambda_max, r.counts["negative"], r.verdict.value)
            )  # fmt: skip
    return StudyResult(points, cfg, time.perf_counter() - t0, theta.shape[1], theta)


class _Batch:
    """The study's loss for all networks at once, and its batched gradient."""

    def __init__(self, x: Tensor, y: Tensor, cfg: StudyConfig) -> None:
        self.x, self.y, self.cfg = x, y, cfg

    def losses(self, theta: Tensor) -> Tensor:
        c = self.cfg
        return _batched.losses(
            theta, self.x, self.y, c.in_features, c.hidden, c.activation, c.weight_decay
        )

    def grad(self, theta: Tensor, create_graph: bool = False) -> Tensor:
        """Each network's gradient ``(N, n)``: networks are independent, so grad of the sum."""
        with torch.enable_grad():
            t = theta if theta.requires_grad else theta.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.losses(t).sum(), t, create_graph=create_graph)
        return g


def _train(f: _Batch, theta: Tensor, steps: np.ndarray, lr: float) -> Tensor:
    """Adam on the loss; network ``i`` stops after ``steps[i]`` steps (its rows are frozen after)."""
    theta = theta.clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    stop = torch.as_tensor(steps)
    for t in range(int(steps.max(initial=0))):
        g = f.grad(theta)
        theta.grad = g * (stop > t).to(g.dtype).unsqueeze(1)  # finished networks do not move
        opt.step()
    return theta.detach()


def _minimise_grad_norm(f: _Batch, theta: Tensor, steps: int, lr: float) -> Tensor:
    """Adam on ``Σᵢ ‖∇Lᵢ‖²`` (double backward): descends towards critical points of every kind."""
    theta = theta.clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    for _ in range(steps):
        g = f.grad(theta, create_graph=True)
        (theta.grad,) = torch.autograd.grad((g**2).sum(), theta)
        opt.step()
    return theta.detach()


def _levenberg_marquardt(f: _Batch, theta: Tensor, steps: int) -> Tensor:
    """Levenberg-Marquardt on ``∇L(θ) = 0`` for all networks at once, with a damping per network.

    The residual is the gradient ``g`` and its Jacobian the Hessian ``H``, so a step solves
    ``(H² + μI) s = −H g``; it is kept only if ``‖∇L‖`` falls (then ``μ`` shrinks, else it grows).
    As ``μ → 0`` this is Newton's method, which converges fast to the nearest critical point of
    any kind - a saddle as readily as a minimum.
    """
    theta = theta.clone()
    n_net, n = theta.shape
    mu = torch.full((n_net,), 1e-3, dtype=theta.dtype)
    eye = torch.eye(n, dtype=theta.dtype)
    for _ in range(steps):
        leaf = theta.detach().requires_grad_(True)
        with torch.enable_grad():
            g = f.grad(leaf, create_graph=True)
            h = _batched.hessians(g, leaf)  # (N, n, n)
        g, theta = g.detach(), leaf.detach()
        gnorm = g.norm(dim=1)
        if float(gnorm.max()) < 1e-13:
            break
        hg = (h @ g.unsqueeze(2)).squeeze(2)  # (N, n)
        step = -torch.linalg.solve(h @ h + mu.view(-1, 1, 1) * eye, hg)
        cand = theta + step
        better = f.grad(cand).norm(dim=1) < gnorm
        theta = torch.where(better.unsqueeze(1), cand, theta)
        mu = torch.where(better, mu / 3, mu * 4).clamp(1e-12, 1e6)
    return theta.detach()


def plot_study(result: StudyResult, path: str | Path) -> None:
    """Save the lecture's plot: minimum ratio against training loss, one marker per network.

    Args:
        result: from :func:`critical_point_study`.
        path: the image file (``.png``, ``.pdf``, ``.svg``).
    """
    from trainlab.diagnose._plot import save_study_plot

    s = result.summary()
    c = s["counts"]
    title = (
        f"{s['n_networks']} networks: {c['saddle point']} saddle points, "
        f"{c['local minimum']} local minima, {c['not a critical point']} not critical"
    )
    save_study_plot(
        path,
        [p.loss for p in result.points],
        [p.min_ratio for p in result.points],
        [p.verdict for p in result.points],
        title,
    )
