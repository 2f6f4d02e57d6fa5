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

from trainlab.report._models import fit_classifier, subset
from trainlab.report.context import SectionContext, readable
from trainlab.report.result import Figure, Rendered, SectionUnavailable, Table, Verdict

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


# --- measurement ----------------------------------------------------------------------------


@dataclass
class CriticalPoints:
    """What the critical-point section measured.

    Attributes:
        study: the :class:`trainlab.diagnose.StudyResult` of the empirical study.
        spearman_loss_vs_min_ratio: rank correlation of loss and minimum ratio over the study's
            critical points (NaN with fewer than three).
        n_inputs, n_samples: the saddle MLP's input width and the images it is analysed on.
        saddle: the :class:`trainlab.diagnose.CriticalPointReport` of the zero-weight MLP.
        escape: the :class:`trainlab.diagnose.EscapeResult` of the step along ``u_min``.
        small_step: the smallest downhill trial step that lowers the loss visibly.
        gd_from_saddle, gd_from_escaped_point: full-batch gradient-descent losses per step.
    """

    study: Any
    spearman_loss_vs_min_ratio: float
    n_inputs: int
    n_samples: int
    saddle: Any
    escape: Any
    small_step: dict[str, float]
    gd_from_saddle: list[float]
    gd_from_escaped_point: list[float]

    @property
    def saddles_dominate(self) -> bool:
        """The study found critical points, and more than half of them are saddle points."""
        return any(p.critical for p in self.study.points) and (
            self.study.summary()["saddle_share"] > 0.5
        )

    @property
    def escaped(self) -> bool:
        """The zero-weight MLP is a saddle point and the step along ``u_min`` lowered the loss."""
        return bool(self.saddle.is_saddle and self.escape.decreased)

    def numbers(self) -> dict[str, Any]:
        return {
            "study": self.study.to_dict(),
            "spearman_loss_vs_min_ratio": self.spearman_loss_vs_min_ratio,
            "saddle": {
                **self.saddle.to_dict(),
                "escape": self.escape.to_dict(),
                "small_step": self.small_step,
                "gd_from_saddle": self.gd_from_saddle,
                "gd_from_escaped_point": self.gd_from_escaped_point,
            },
        }


def _diagnose() -> Any:
    try:
        import trainlab.diagnose as diagnose
    except ImportError as e:  # the diagnose package is not part of this build
        raise SectionUnavailable(f"trainlab.diagnose is not available ({e})") from None
    return diagnose


def measure(ctx: SectionContext, cfg: Config) -> CriticalPoints:
    """Run the critical-point study, then the saddle escape on the digits.

    Returns:
        The :class:`CriticalPoints` numbers.

    Raises:
        SectionUnavailable: :mod:`trainlab.diagnose` cannot be imported.
    """
    diagnose = _diagnose()
    study_cfg = (
        diagnose.StudyConfig.quick(seed=ctx.seed)
        if cfg.study_quick
        else diagnose.StudyConfig(seed=ctx.seed)
    )
    with ctx.step(f"critical-point study, {cfg.n_networks} networks"):
        study = diagnose.critical_point_study(cfg.n_networks, config=study_cfg)
    crit = [p for p in study.points if p.critical]
    rho = (
        _spearman([p.loss for p in crit], [p.min_ratio for p in crit])
        if len(crit) > 2
        else math.nan
    )
    (x_all, y_all), _ = ctx.data.flat()
    x, y = subset(x_all, y_all, cfg.escape_samples, ctx.seed)
    x = x.double()
    saddle_net = _zero_mlp(x.shape[1], cfg.escape_hidden, y)
    obj = diagnose.ModelObjective(saddle_net, torch.nn.functional.cross_entropy, x, y)
    with ctx.step(f"Hessian of the zero-weight MLP ({obj.num_params:,} parameters)"):
        report = diagnose.classify(obj)
        esc = diagnose.escape(obj, report=report)
    escaped_net = _zero_mlp(x.shape[1], cfg.escape_hidden, y)
    obj.write_to(escaped_net, esc.point)
    with ctx.step(
        f"gradient descent from the saddle and from the escaped point, {cfg.train_steps} steps"
    ):
        curve_saddle = _descend(ctx, saddle_net, x, y, cfg)
        curve_escaped = _descend(ctx, escaped_net, x, y, cfg)
    return CriticalPoints(
        study=study,
        spearman_loss_vs_min_ratio=rho,
        n_inputs=x.shape[1],
        n_samples=len(y),
        saddle=report,
        escape=esc,
        small_step=_small_step(esc.trials),
        gd_from_saddle=curve_saddle,
        gd_from_escaped_point=curve_escaped,
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
    """Full-batch gradient descent, in float64 on the CPU (exact there; MPS has no float64)."""
    hist = fit_classifier(
        ctx,
        net,
        (x, y),
        device="cpu",
        epochs=cfg.train_steps,
        batch_size=len(y),
        optimizer="sgd",
        optimizer_kwargs={"lr": cfg.lr},
        shuffle=False,
    )
    return hist["train_loss"]


def _small_step(trials: list[dict[str, float]]) -> dict[str, float]:
    """The downhill trial with the smallest step that still lowers the loss by a visible amount."""
    down = sorted((t for t in trials if t["step"] >= 0.05), key=lambda t: (t["step"], t["loss"]))
    return down[0] if down else trials[0]


def _spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    r = spearmanr(a, b).statistic
    return float(r) if np.isfinite(r) else math.nan


# --- rendering ------------------------------------------------------------------------------


def render(ctx: SectionContext, cfg: Config, m: CriticalPoints) -> Rendered:
    """Tables, figures, prose and verdict of the critical-point section."""
    n_networks = m.study.summary()["n_networks"]
    return Rendered(
        experiment=(
            f"The study (trainlab.diagnose) trains {n_networks} small tanh MLPs on a fixed "
            "2-D regression task, drives each to a point where the gradient vanishes (minimising "
            "the gradient norm, then Newton-like polishing) and classifies it by its exact Hessian "
            "spectrum.\n\n"
            f"The escape uses {ctx.data.noun}: a tanh MLP {m.n_inputs}-{cfg.escape_hidden}-10 with "
            "all weights zero and the output bias at the log class frequencies has an exactly zero "
            f"gradient on {m.n_samples} training images. Its exact Hessian is computed, the loss is "
            "measured along the eigenvector of the most negative eigenvalue (both signs, a range "
            "of step lengths) and compared with the second-order prediction; then full-batch "
            f"gradient descent (lr {cfg.lr:g}) runs {cfg.train_steps} steps from the saddle and "
            "from the escaped point."
        ),
        verdict=verdict(ctx, cfg, m),
        tables=[_study_table(m), _saddle_table(ctx, cfg, m)],
        figures=[_study_figure(ctx, m), _escape_figure(ctx, m)],
    )


def verdict(ctx: SectionContext, cfg: Config, m: CriticalPoints) -> Verdict:
    """Are most critical points saddles, and does the step along ``u_min`` escape the saddle?"""
    summary, report, esc = m.study.summary(), m.saddle, m.escape
    text = (
        f"Of {summary['n_critical']} critical points the study found, {summary['saddle_share']:.0%} are "
        f"saddle points and {summary['minimum_share']:.0%} local minima; on {ctx.data.noun} the zero-weight "
        f"MLP is a {report.verdict.value} (λ_min = {report.lambda_min:+.3f}), and a step along its "
        f"eigenvector takes the loss from {esc.loss_before:.3f} to {esc.loss_after:.3f}, where "
        f"{cfg.train_steps} gradient-descent steps from the saddle end at {m.gd_from_saddle[-1]:.3f}."
    )
    both, either = m.saddles_dominate and m.escaped, m.saddles_dominate or m.escaped
    return Verdict(text, True if both else (None if either else False))


def _study_table(m: CriticalPoints) -> Table:
    summary = m.study.summary()
    n_crit = summary["n_critical"]
    return Table(
        caption=f"The study: {summary['n_networks']} networks ({m.study.num_params} parameters "
        f"each; mean minimum ratio at the critical points {summary['mean_min_ratio']:.3f}; "
        f"Spearman correlation of loss and minimum ratio {m.spearman_loss_vs_min_ratio:+.2f}).",
        columns=["verdict", "networks", "share of critical points"],
        rows=[
            [k, v, v / n_crit if n_crit and k != "not a critical point" else None]
            for k, v in summary["counts"].items()
        ],
        formats={"share of critical points": ".0%"},
    )


def _saddle_table(ctx: SectionContext, cfg: Config, m: CriticalPoints) -> Table:
    report, esc, small = m.saddle, m.escape, m.small_step
    counts = (
        " / ".join(str(report.counts[k]) for k in ("positive", "negative", "flat"))
        if report.counts
        else "-"
    )
    return Table(
        caption=f"The saddle on {ctx.data.noun}: tanh MLP {m.n_inputs}-{cfg.escape_hidden}-10 with "
        f"all weights zero, {m.n_samples} training images.",
        columns=["quantity", "value"],
        rows=[
            ["parameters", report.num_params],
            ["loss", report.loss],
            ["gradient norm", report.grad_norm],
            ["λ_min", report.lambda_min],
            ["λ_max", report.lambda_max],
            ["eigenvalues + / − / flat", counts],
            ["minimum ratio", report.min_ratio],
            ["verdict", report.verdict.value],
            [f"loss after a step of ‖u‖ = {small['step']:.3g}", small["loss"]],
            ["  second-order prediction", small["predicted"]],
            [f"loss after the best step (‖u‖ = {esc.step:.3g})", esc.loss_after],
            [f"GD from the saddle, after {cfg.train_steps} steps", m.gd_from_saddle[-1]],
            [
                f"GD from the escaped point, after {cfg.train_steps} steps",
                m.gd_from_escaped_point[-1],
            ],
        ],
    )


def _study_figure(ctx: SectionContext, m: CriticalPoints) -> Figure:
    file = ctx.figure_file("study")
    _diagnose().plot_study(m.study, ctx.out_dir / file)
    readable(ctx.out_dir / file)
    return Figure(
        file=file,
        width=640,
        caption=(
            "The lecture's plot, measured: each network's minimum ratio (share of positive Hessian "
            "eigenvalues) against its training loss, coloured by verdict."
        ),
    )


def _escape_figure(ctx: SectionContext, m: CriticalPoints) -> Figure:
    from trainlab.report.figures import PALETTE, legend, subplots

    esc, saddle, escaped = m.escape, m.gd_from_saddle, m.gd_from_escaped_point
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
    legend(ax)
    ax = axes[0, 1]
    ax.plot(range(1, len(saddle) + 1), saddle, label="from the saddle")
    ax.plot(range(1, len(escaped) + 1), escaped, label="from the escaped point")
    ax.set(title="Full-batch gradient descent", xlabel="step", ylabel="training loss")
    legend(ax)
    return ctx.save_figure(
        fig,
        "escape",
        "Left: the loss along the eigenvector of the most negative "
        "Hessian eigenvalue and its quadratic prediction (dotted: the loss at the "
        "saddle). Right: gradient descent cannot leave the saddle; from the escaped "
        "point it trains.",
        width=820,
    )
