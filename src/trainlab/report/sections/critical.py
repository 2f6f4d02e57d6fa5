"""Section 3: critical points - local minima or saddle points? (lecture: "Local minimum and saddle point").

Where the gradient vanishes, the Hessian tells a local minimum (all eigenvalues positive) from a
saddle point (some negative). Two measurements with :mod:`trainlab.diagnose`:

* the lecture's empirical study (:func:`~trainlab.diagnose.critical_point_study`): many small
  networks driven to points where the gradient vanishes, each point's *minimum ratio* (share of
  positive Hessian eigenvalues) against its training loss;
* one saddle escape on the digits: an MLP whose weights are all zero (output bias at the log class
  frequencies) has an exactly zero gradient, so gradient descent cannot leave it; the Hessian has
  negative eigenvalues, and a step along the eigenvector of the most negative one
  (:func:`~trainlab.diagnose.escape`) lowers the loss, after which training proceeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from trainlab.report._models import subset
from trainlab.report.context import SectionContext
from trainlab.report.figures import PALETTE, subplots
from trainlab.report.result import Figure, SectionResult, SectionUnavailable, Table, Verdict

KEY = "critical"
TITLE = "Critical points: local minima and saddle points"
CLAIM = (
    "When training stalls the gradient is close to zero, at a local minimum or at a saddle point. "
    "The Hessian tells them apart: at a saddle point some eigenvalues are negative, and moving "
    "along such an eigenvector lowers the loss (L(θ + u) ≈ L(θ) + ½ λ‖u‖² with λ < 0). In "
    "empirical studies most points where training stalls are saddle points: the minimum ratio "
    "(the share of positive eigenvalues) stays below 1, so true local minima are rare."
)


@dataclass
class Config:
    """Settings of the critical-point section.

    Attributes:
        n_networks: networks in the study; ``study_quick`` uses the study's smaller preset.
        escape_hidden: hidden units of the digits MLP of the saddle escape (tanh).
        escape_samples: training images the saddle is analysed on (full batch).
        train_steps: full-batch gradient-descent steps from the saddle and from the escaped point.
        lr: their learning rate.
    """

    n_networks: int = 40
    study_quick: bool = False
    escape_hidden: int = 12
    escape_samples: int = 512
    train_steps: int = 150
    lr: float = 0.5


def default_config(quick: bool) -> Config:
    if quick:
        return Config(
            n_networks=16, study_quick=True, escape_hidden=8, escape_samples=256, train_steps=80
        )
    return Config()


def run(ctx: SectionContext, cfg: Config) -> SectionResult:
    try:
        from trainlab.diagnose import (
            ModelObjective,
            StudyConfig,
            classify,
            critical_point_study,
            escape,
            plot_study,
        )
    except ImportError as e:  # the diagnose package is not part of this build
        raise SectionUnavailable(f"trainlab.diagnose is not available ({e})") from None

    study_cfg = StudyConfig.quick(seed=ctx.seed) if cfg.study_quick else StudyConfig(seed=ctx.seed)
    with ctx.step(f"critical-point study, {cfg.n_networks} networks"):
        study = critical_point_study(cfg.n_networks, config=study_cfg)
    summary = study.summary()
    file = f"{ctx.number}-critical-study.png"
    plot_study(study, ctx.out_dir / file)
    study_fig = Figure(
        file=file,
        width=640,
        caption=(
            "The lecture's plot, measured: each network's minimum ratio (share of positive Hessian "
            "eigenvalues) against its training loss, coloured by verdict."
        ),
    )
    crit = [p for p in study.points if p.critical]
    rho = (
        _spearman([p.loss for p in crit], [p.min_ratio for p in crit])
        if len(crit) > 2
        else math.nan
    )

    # One saddle escape on real digits.
    (x_all, y_all), _ = ctx.data.flat()
    x, y = subset(x_all, y_all, cfg.escape_samples, ctx.seed)
    x = x.double()
    saddle_net = _zero_mlp(x.shape[1], cfg.escape_hidden, y)
    obj = ModelObjective(saddle_net, torch.nn.functional.cross_entropy, x, y)
    with ctx.step(f"Hessian of the zero-weight MLP ({obj.num_params:,} parameters)"):
        report = classify(obj)
        esc = escape(obj, report=report)
    small = _small_step(esc.trials)
    escaped_net = _zero_mlp(x.shape[1], cfg.escape_hidden, y)
    obj.write_to(escaped_net, esc.point)
    with ctx.step(
        f"gradient descent from the saddle and from the escaped point, {cfg.train_steps} steps"
    ):
        curve_saddle = _descend(ctx, saddle_net, x, y, cfg)
        curve_escaped = _descend(ctx, escaped_net, x, y, cfg)

    saddles_dominate = bool(crit) and summary["saddle_share"] > 0.5
    escaped = report.is_saddle and esc.decreased
    text = (
        f"Of {summary['n_critical']} critical points the study found, {summary['saddle_share']:.0%} are "
        f"saddle points and {summary['minimum_share']:.0%} local minima; on {ctx.data.noun} the zero-weight "
        f"MLP is a {report.verdict.value} (λ_min = {report.lambda_min:+.3f}), and a step along its "
        f"eigenvector takes the loss from {esc.loss_before:.3f} to {esc.loss_after:.3f}, where "
        f"{cfg.train_steps} gradient-descent steps from the saddle end at {curve_saddle[-1]:.3f}."
    )
    agrees = (
        True
        if (saddles_dominate and escaped)
        else (None if (saddles_dominate or escaped) else False)
    )
    numbers = {
        "study": study.to_dict(),
        "spearman_loss_vs_min_ratio": rho,
        "saddle": {
            **report.to_dict(),
            "escape": esc.to_dict(),
            "small_step": small,
            "gd_from_saddle": curve_saddle,
            "gd_from_escaped_point": curve_escaped,
        },
    }
    c = summary["counts"]
    tables = [
        Table(
            caption=f"The study: {summary['n_networks']} networks ({study.num_params} parameters each; "
            f"mean minimum ratio at the critical points {summary['mean_min_ratio']:.3f}; Spearman "
            f"correlation of loss and minimum ratio {rho:+.2f}).",
            columns=["verdict", "networks", "share of critical points"],
            rows=[
                [
                    k,
                    v,
                    (
                        v / summary["n_critical"]
                        if summary["n_critical"] and k != "not a critical point"
                        else None
                    ),
                ]
                for k, v in c.items()
            ],
            formats={"share of critical points": ".0%"},
        ),
        Table(
            caption=f"The saddle on {ctx.data.noun}: tanh MLP {x.shape[1]}-{cfg.escape_hidden}-10 with all "
            f"weights zero, {len(y)} training images.",
            columns=["quantity", "value"],
            rows=[
                ["parameters", report.num_params],
                ["loss", report.loss],
                ["gradient norm", report.grad_norm],
                ["λ_min", report.lambda_min],
                ["λ_max", report.lambda_max],
                [
                    "eigenvalues + / − / flat",
                    " / ".join(str(report.counts[k]) for k in ("positive", "negative", "flat"))
                    if report.counts
                    else "-",
                ],
                ["minimum ratio", report.min_ratio],
                ["verdict", report.verdict.value],
                [f"loss after a step of ‖u‖ = {small['step']:.3g}", small["loss"]],
                ["  second-order prediction", small["predicted"]],
                [f"loss after the best step (‖u‖ = {esc.step:.3g})", esc.loss_after],
                [f"GD from the saddle, after {cfg.train_steps} steps", curve_saddle[-1]],
                [f"GD from the escaped point, after {cfg.train_steps} steps", curve_escaped[-1]],
            ],
        ),
    ]
    figs = [study_fig, _escape_figure(ctx, esc, curve_saddle, curve_escaped)]
    return SectionResult(
        number=ctx.number,
        key=KEY,
        title=TITLE,
        claim=CLAIM,
        experiment=(
            f"The study (trainlab.diagnose) trains {summary['n_networks']} small tanh MLPs on a fixed "
            "2-D regression task, drives each to a point where the gradient vanishes (minimising "
            "the gradient norm, then Newton-like polishing) and classifies it by its exact Hessian "
            "spectrum.\n\n"
            f"The escape uses {ctx.data.noun}: a tanh MLP {x.shape[1]}-{cfg.escape_hidden}-10 with all "
            "weights zero and the output bias at the log class frequencies has an exactly zero "
            f"gradient on {len(y)} training images. Its exact Hessian is computed, the loss is "
            "measured along the eigenvector of the most negative eigenvalue (both signs, a range "
            "of step lengths) and compared with the second-order prediction; then full-batch "
            f"gradient descent (lr {cfg.lr:g}) runs {cfg.train_steps} steps from the saddle and "
            "from the escaped point."
        ),
        figures=figs,
        tables=tables,
        verdict=Verdict(text, agrees),
        numbers=numbers,
    )


def _zero_mlp(n_in: int, hidden: int, y: torch.Tensor) -> torch.nn.Module:
    """All weights zero, output bias = log class frequencies: a critical point of cross-entropy."""
    out = torch.nn.Linear(hidden, 10)
    net = torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.Tanh(), out).double()
    prior = torch.bincount(y, minlength=10).double().clamp_min(1) / len(y)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        out.bias.copy_(prior.log())
    return net


def _descend(
    ctx: SectionContext, net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: Config
) -> list[float]:
    from trainlab.train import fit

    # float64 on the CPU: the saddle is exact there (and MPS has no float64)
    tc = ctx.train_config(
        device="cpu",
        epochs=cfg.train_steps,
        batch_size=len(y),
        optimizer="sgd",
        optimizer_kwargs={"lr": cfg.lr},
        shuffle=False,
        restore_best=False,
    )
    hist = fit(net, torch.nn.functional.cross_entropy, (x, y), None, tc)
    return hist["train_loss"]


def _small_step(trials: list[dict[str, float]]) -> dict[str, float]:
    """The downhill trial with the smallest step that still lowers the loss by a visible amount."""
    down = sorted((t for t in trials if t["step"] >= 0.05), key=lambda t: (t["step"], t["loss"]))
    return down[0] if down else trials[0]


def _spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    r = spearmanr(a, b).statistic
    return float(r) if np.isfinite(r) else math.nan


def _escape_figure(ctx: SectionContext, esc: Any, saddle: list[float], escaped: list[float]) -> Any:
    fig, axes = subplots(2, width=4.6, height=3.4)
    ax = axes[0, 0]
    trials = sorted((t for t in esc.trials), key=lambda t: t["sign"] * t["step"])
    xs = [t["sign"] * t["step"] for t in trials]
    ax.plot(xs, [t["loss"] for t in trials], "o-", color=PALETTE[0], ms=3, label="measured loss")
    ax.plot(
        xs,
        [t["predicted"] for t in trials],
        "--",
        color=PALETTE[1],
        label="second-order prediction",
    )
    ax.axhline(esc.loss_before, color="grey", ls=":", lw=1)
    ax.set_xscale("symlog", linthresh=0.01)
    lo = min(t["loss"] for t in trials)
    ax.set_ylim(
        lo - 0.3 * (esc.loss_before - lo) - 0.05,
        esc.loss_before + 0.5 * (esc.loss_before - lo) + 0.05,
    )
    ax.set(title="Loss along ±u_min from the saddle", xlabel="signed step ‖u‖", ylabel="loss")
    ax.legend()
    ax = axes[0, 1]
    ax.plot(range(1, len(saddle) + 1), saddle, label="from the saddle")
    ax.plot(range(1, len(escaped) + 1), escaped, label="from the escaped point")
    ax.set(title="Full-batch gradient descent", xlabel="step", ylabel="training loss")
    ax.legend()
    return ctx.save_figure(
        fig,
        "escape",
        "Left: the loss along the eigenvector of the most negative "
        "Hessian eigenvalue and its quadratic prediction (dotted: the loss at the "
        "saddle). Right: gradient descent cannot leave the saddle; from the escaped "
        "point it trains.",
        width=820,
    )
