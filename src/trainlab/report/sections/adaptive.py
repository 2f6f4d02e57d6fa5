"""Section 6: adaptive learning rates and warm-up (lecture: "Adaptive learning rate").

On a convex but ill-conditioned loss no single learning rate suits both directions: one small
enough for the steep direction crawls along the flat one. Adagrad (Duchi et al. 2011), RMSProp
(Hinton's lecture 6e) and Adam (Kingma & Ba 2015) divide each parameter's step by a running size
of its gradients. Warm-up (He et al. 2016; Vaswani et al. 2017; Liu et al. 2020, RAdam) starts
with a small learning rate while those statistics are still poor. Measured on a two-parameter bowl
whose condition number is 1000 and on the digits, each optimizer with and without warm-up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from trainlab.errors import ConfigError, TrainingDiverged
from trainlab.nn.mlp import mlp
from trainlab.report._models import fit_classifier, loss_and_accuracy, subset
from trainlab.report.context import SectionContext
from trainlab.report.result import Figure, Rendered, Table, Verdict
from trainlab.report.surfaces import Surface, elongated_bowl, trajectory

KEY = "adaptive"
TITLE = "Adaptive learning rates and warm-up"
CLAIM = (
    "Training can stall although the gradient is not small: on an error surface that is steep in "
    "one direction and flat in another, a learning rate small enough for the steep direction "
    "barely moves along the flat one. Giving every parameter its own learning rate, divided by "
    "the root mean square of its past gradients (Adagrad; RMSProp weights recent gradients "
    "more; Adam adds momentum), fixes this. Learning-rate warm-up, small steps first while those "
    "statistics are unreliable, is part of the recipe for training with Adam."
)

NAMES = {"sgd": "SGD", "adagrad": "Adagrad", "rmsprop": "RMSProp", "adam": "Adam"}


@dataclass
class Config:
    """Settings of the adaptive-learning-rate experiment.

    Attributes:
        optimizers: registered optimizer names compared (the first is the non-adaptive baseline).
        surface_lr: learning rate of each optimizer on the bowl (SGD's is just under 2/b, the
            largest that converges in the steep direction).
        surface_a, surface_b: curvatures of the bowl along w1 and w2.
        start, steps: the bowl's starting point and number of updates.
        target_loss: "converged" on the bowl means a loss below this.
        data_lr: learning rate of each optimizer on the data.
        epochs, batch_size, hidden: the run on the data.
        warmup_fraction: share of the updates spent warming up linearly (schedule "warmup").
        max_train: at most this many training images (a stratified subset), which bounds the
            time on larger data sets such as MNIST.
    """

    optimizers: list[str] = field(default_factory=lambda: ["sgd", "adagrad", "rmsprop", "adam"])
    surface_lr: dict[str, float] = field(
        default_factory=lambda: {"sgd": 0.19, "adagrad": 1.0, "rmsprop": 0.1, "adam": 0.3}
    )
    surface_a: float = 0.01
    surface_b: float = 10.0
    start: list[float] = field(default_factory=lambda: [-10.0, 1.0])
    steps: int = 300
    target_loss: float = 1e-3
    data_lr: dict[str, float] = field(
        default_factory=lambda: {"sgd": 0.05, "adagrad": 0.05, "rmsprop": 3e-3, "adam": 3e-3}
    )
    epochs: int = 20
    batch_size: int = 64
    hidden: list[int] = field(default_factory=lambda: [256, 256, 256])
    warmup_fraction: float = 0.1
    max_train: int = 2000


def default_config(quick: bool) -> Config:
    return Config(epochs=6) if quick else Config()


def _label(name: str) -> str:
    return NAMES.get(name, name)


# --- measurement ----------------------------------------------------------------------------


@dataclass
class AdaptiveRuns:
    """What the adaptive-learning-rate experiment measured.

    Attributes:
        surface: the elongated bowl.
        surface_warmup_steps: warm-up length on the bowl.
        paths: run label (``"Adam"``, ``"Adam + warm-up"``, ...) -> optimizer, warm-up, lr, the
            ``path`` and ``losses`` on the bowl, ``final_loss`` and ``steps_to_target``.
        n_train: training images of the runs on the data.
        runs: run label -> optimizer, warm-up, lr, first-epoch and final losses, accuracy, and
            the training and validation curves on the data (NaN and empty when it diverged).
        best_on_data: the run with the lowest final validation loss.
        adaptive_beats_sgd_on_surface: the baseline never reaches the target loss on the bowl and
            every adaptive optimizer does.
        adaptive_beats_sgd_on_data: every adaptive optimizer ends below the baseline's val loss.
        warmup_lowers_val_loss, warmup_lowers_first_epoch_loss: optimizer label -> whether its
            warm-up run ends with a lower validation loss / has a lower first-epoch loss.
    """

    surface: Surface
    surface_warmup_steps: int
    paths: dict[str, dict[str, Any]]
    n_train: int
    runs: dict[str, dict[str, Any]]
    best_on_data: str
    adaptive_beats_sgd_on_surface: bool
    adaptive_beats_sgd_on_data: bool
    warmup_lowers_val_loss: dict[str, bool]
    warmup_lowers_first_epoch_loss: dict[str, bool]

    def numbers(self) -> dict[str, Any]:
        return {
            "surface": self.surface.formula,
            "surface_runs": {
                k: {kk: vv for kk, vv in v.items() if kk not in ("path", "losses")}
                for k, v in self.paths.items()
            },
            "data_runs": self.runs,
            "best_on_data": self.best_on_data,
            "adaptive_beats_sgd_on_surface": self.adaptive_beats_sgd_on_surface,
            "adaptive_beats_sgd_on_data": self.adaptive_beats_sgd_on_data,
            "warmup_lowers_val_loss": self.warmup_lowers_val_loss,
            "warmup_lowers_first_epoch_loss": self.warmup_lowers_first_epoch_loss,
        }


def measure(ctx: SectionContext, cfg: Config) -> AdaptiveRuns:
    """Run every optimizer, with and without warm-up, on the bowl and on the data.

    Returns:
        The :class:`AdaptiveRuns` numbers.

    Raises:
        ConfigError: an optimizer without a learning rate in ``surface_lr`` or ``data_lr``.
    """
    missing = [o for o in cfg.optimizers if o not in cfg.surface_lr or o not in cfg.data_lr]
    if missing:
        raise ConfigError(f"surface_lr and data_lr need a learning rate for {missing}")
    surface = elongated_bowl(cfg.surface_a, cfg.surface_b)
    warmup_steps = max(1, round(cfg.warmup_fraction * cfg.steps))
    paths = surface_runs(cfg, surface, warmup_steps)
    (x_all, y_all), val = ctx.data.flat()
    train = subset(x_all, y_all, cfg.max_train, ctx.seed)
    torch.manual_seed(ctx.seed)
    init = mlp(train[0].shape[1], cfg.hidden, 10).state_dict()
    runs: dict[str, dict[str, Any]] = {}
    for opt in cfg.optimizers:
        with ctx.step(f"digits, {_label(opt)} with and without warm-up"):
            for suffix, sched in (("", "constant"), (" + warm-up", "warmup")):
                runs[_label(opt) + suffix] = _data_run(ctx, cfg, opt, sched, init, train, val)
    return _compare(cfg, surface, warmup_steps, paths, len(train[1]), runs)


def surface_runs(cfg: Config, surface: Surface, warmup_steps: int) -> dict[str, dict[str, Any]]:
    """Every optimizer on the bowl, without and with ``warmup_steps`` of linear warm-up."""
    schedules = {"": ("constant", {}), " + warm-up": ("warmup", {"warmup_steps": warmup_steps})}
    paths: dict[str, dict[str, Any]] = {}
    for opt in cfg.optimizers:
        for suffix, (sched, skw) in schedules.items():
            path, losses = trajectory(
                surface, cfg.start, opt, {"lr": cfg.surface_lr[opt]}, cfg.steps, sched, skw
            )
            hit = np.flatnonzero(losses < cfg.target_loss)
            paths[_label(opt) + suffix] = {
                "optimizer": opt,
                "warmup": bool(suffix),
                "lr": cfg.surface_lr[opt],
                "path": path,
                "losses": losses,
                "final_loss": float(losses[-1]),
                "steps_to_target": int(hit[0]) if len(hit) else None,
            }
    return paths


def _data_run(
    ctx: SectionContext,
    cfg: Config,
    opt: str,
    sched: str,
    init: dict[str, Tensor],
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor],
) -> dict[str, Any]:
    """One optimizer with one schedule on the data, from the shared initial weights."""
    model = mlp(train[0].shape[1], cfg.hidden, 10)
    model.load_state_dict(init)
    skw = {}
    if sched == "warmup":
        steps = cfg.epochs * -(-len(train[1]) // cfg.batch_size)
        skw = {"warmup_steps": max(1, round(cfg.warmup_fraction * steps))}
    try:
        hist = fit_classifier(
            ctx,
            model,
            train,
            val,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            optimizer=opt,
            optimizer_kwargs={"lr": cfg.data_lr[opt]},
            scheduler=sched,
            scheduler_kwargs=skw,
        )
        train_loss, _ = loss_and_accuracy(model, *train)
        val_loss, val_acc = loss_and_accuracy(model, *val)
        curve, vcurve = hist["train_loss"], hist["val_loss"]
    except TrainingDiverged:
        train_loss = val_loss = val_acc = math.nan
        curve, vcurve = [], []
    return {
        "optimizer": opt,
        "warmup": sched == "warmup",
        "lr": cfg.data_lr[opt],
        "first_epoch_train_loss": curve[0] if curve else math.nan,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "val_acc": val_acc,
        "train_curve": curve,
        "val_curve": vcurve,
    }


def _compare(
    cfg: Config,
    surface: Surface,
    warmup_steps: int,
    paths: dict[str, dict[str, Any]],
    n_train: int,
    runs: dict[str, dict[str, Any]],
) -> AdaptiveRuns:
    """The adaptive optimizers against the baseline, and warm-up against none."""
    base = _label(cfg.optimizers[0])
    adaptive = [_label(o) for o in cfg.optimizers[1:]]
    surface_ok = paths[base]["steps_to_target"] is None and all(
        paths[k]["steps_to_target"] is not None for k in adaptive
    )
    finite = (k for k in runs if math.isfinite(runs[k]["val_loss"]))
    return AdaptiveRuns(
        surface=surface,
        surface_warmup_steps=warmup_steps,
        paths=paths,
        n_train=n_train,
        runs=runs,
        best_on_data=min(finite, key=lambda k: runs[k]["val_loss"]),
        adaptive_beats_sgd_on_surface=surface_ok,
        adaptive_beats_sgd_on_data=all(
            _finite_less(runs[k]["val_loss"], runs[base]["val_loss"]) for k in adaptive
        ),
        warmup_lowers_val_loss={
            k: _finite_less(runs[k + " + warm-up"]["val_loss"], runs[k]["val_loss"])
            for k in [base, *adaptive]
        },
        warmup_lowers_first_epoch_loss={
            k: _finite_less(
                runs[k + " + warm-up"]["first_epoch_train_loss"], runs[k]["first_epoch_train_loss"]
            )
            for k in [base, *adaptive]
        },
    )


def _finite_less(a: float, b: float) -> bool:
    if not math.isfinite(a):
        return False
    return not math.isfinite(b) or a < b


# --- rendering ------------------------------------------------------------------------------


def render(ctx: SectionContext, cfg: Config, m: AdaptiveRuns) -> Rendered:
    """Tables, figures, prose and verdict of the adaptive-learning-rate experiment."""
    warm_first, warm_helps = m.warmup_lowers_first_epoch_loss, m.warmup_lowers_val_loss
    return Rendered(
        experiment=(
            f"The bowl {m.surface.formula} is {cfg.surface_b / cfg.surface_a:g} times steeper "
            "across than along its valley. Each optimizer "
            f"({', '.join(_label(o) for o in cfg.optimizers)}; trainlab's PyTorch-form "
            "implementations) runs from the same point with a learning rate that suits it, with "
            f"and without linear warm-up over the first {cfg.warmup_fraction:.0%} of the steps. "
            f"On {ctx.data.noun}, an MLP (hidden {cfg.hidden}) trains for {cfg.epochs} epochs on "
            f"{m.n_train:,} training images from the same initial weights with each optimizer, "
            "with and without warm-up."
        ),
        verdict=verdict(ctx, cfg, m),
        tables=_tables(cfg, m),
        figures=[_surface_figure(ctx, cfg, m), _data_figure(ctx, cfg, m)],
        notes=[
            "Warm-up lowered the first epoch's training loss for "
            + (", ".join(k for k, v in warm_first.items() if v) or "no optimizer")
            + " and the final validation loss for "
            + (", ".join(k for k, v in warm_helps.items() if v) or "none")
            + ". On a convex bowl warm-up can only slow convergence down; its purpose is the "
            "start of training deep networks."
        ],
    )


def verdict(ctx: SectionContext, cfg: Config, m: AdaptiveRuns) -> Verdict:
    """Do adaptive optimizers beat the baseline on the bowl and the data, and does warm-up help?"""
    base = _label(cfg.optimizers[0])
    reached = {_label(o): m.paths[_label(o)]["steps_to_target"] for o in cfg.optimizers[1:]}
    got = {k: v for k, v in reached.items() if v is not None}
    runs, best = m.runs, m.best_on_data
    n_warm, n_opt = sum(m.warmup_lowers_val_loss.values()), len(m.warmup_lowers_val_loss)
    text = (
        f"On the bowl {base} is still at loss {m.paths[base]['final_loss']:.3g} after {cfg.steps} steps"
        + (
            f" while {_and(list(got))} get below {cfg.target_loss:g} in "
            f"{_and([str(v) for v in got.values()])} steps"
            if got
            else ""
        )
        + (
            f" ({_and([k for k in reached if k not in got])} never)"
            if len(got) < len(reached)
            else ""
        )
        + f"; on {ctx.data.noun} {best} ends with the lowest validation loss "
        f"({runs[best]['val_loss']:.3f}, {base} {runs[base]['val_loss']:.3f}) and warm-up lowers "
        f"it for {n_warm} of {n_opt} optimizers."
    )
    score = [m.adaptive_beats_sgd_on_surface, m.adaptive_beats_sgd_on_data, 2 * n_warm >= n_opt]
    return Verdict(text, True if all(score) else (None if any(score) else False))


def _and(items: list[str]) -> str:
    if not items:
        return ""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _tables(cfg: Config, m: AdaptiveRuns) -> list[Table]:
    return [
        Table(
            caption=f"The bowl {m.surface.formula}: {cfg.steps} steps from "
            f"({cfg.start[0]:g}, {cfg.start[1]:g}); warm-up is linear over the first "
            f"{m.surface_warmup_steps} steps.",
            columns=["optimizer", "lr", "final loss", f"steps to loss < {cfg.target_loss:g}"],
            rows=[[k, v["lr"], v["final_loss"], v["steps_to_target"]] for k, v in m.paths.items()],
            formats={"lr": "g", "final loss": ".3g"},
        ),
        Table(
            caption=f"The digits: MLP (hidden {cfg.hidden}), {cfg.epochs} epochs, batch "
            f"{cfg.batch_size}; warm-up is linear over the first {cfg.warmup_fraction:.0%} of the "
            "updates.",
            columns=[
                "optimizer",
                "lr",
                "train loss, epoch 1",
                "final train loss",
                "val loss",
                "val accuracy",
            ],
            rows=[
                [k, v["lr"], v["first_epoch_train_loss"], v["train_loss"]]
                + [v["val_loss"], v["val_acc"]]
                for k, v in m.runs.items()
            ],
            formats={
                "lr": "g",
                "train loss, epoch 1": ".3f",
                "final train loss": ".4f",
                "val loss": ".4f",
                "val accuracy": ".1%",
            },
        ),
    ]


def _legend(fig: Any, cfg: Config) -> None:
    from matplotlib.lines import Line2D

    from trainlab.report.figures import PALETTE, legend_below

    handles = [
        Line2D([], [], color=PALETTE[i % len(PALETTE)], lw=2) for i in range(len(cfg.optimizers))
    ]
    handles += [
        Line2D([], [], color="black", lw=1.5),
        Line2D([], [], color="black", lw=1.5, ls="--"),
    ]
    labels = [_label(o) for o in cfg.optimizers] + ["without warm-up", "with warm-up"]
    legend_below(fig, handles, labels, ncol=len(labels))


def _surface_figure(ctx: SectionContext, cfg: Config, m: AdaptiveRuns) -> Figure:
    from trainlab.report.figures import PALETTE, subplots
    from trainlab.report.surfaces import draw_surface

    fig, axes = subplots(3, width=4.4, height=3.6)
    plain = {k: v["path"] for k, v in m.paths.items() if not v["warmup"]}
    warm = {k: v["path"] for k, v in m.paths.items() if v["warmup"]}
    styles = {
        k: {"color": PALETTE[cfg.optimizers.index(v["optimizer"]) % len(PALETTE)]}
        for k, v in m.paths.items()
    }
    kw: dict[str, Any] = {"every": 2, "legend": None, "styles": styles}
    draw_surface(axes[0, 0], m.surface, plain, title="Without warm-up", **kw)
    draw_surface(axes[0, 1], m.surface, warm, title="With warm-up", **kw)
    ax = axes[0, 2]
    for i, opt in enumerate(cfg.optimizers):
        for k, v in m.paths.items():
            if v["optimizer"] == opt:
                ax.semilogy(
                    np.maximum(v["losses"], 1e-16),
                    color=PALETTE[i % len(PALETTE)],
                    ls="--" if v["warmup"] else "-",
                    label=k,
                )
    ax.axhline(cfg.target_loss, color="grey", ls=":", lw=1)
    ax.set(title="Loss per step", xlabel="step", ylabel="L(w)")
    _legend(fig, cfg)
    return ctx.save_figure(
        fig,
        "surface",
        f"Paths on {m.surface.formula} (note the unequal axes: the "
        "valley is long and narrow) and the loss per step (dashed: with warm-up; "
        f"dotted line: loss {cfg.target_loss:g}).",
        width=960,
    )


def _data_figure(ctx: SectionContext, cfg: Config, m: AdaptiveRuns) -> Figure:
    from trainlab.report.figures import PALETTE, subplots

    fig, axes = subplots(2, width=4.6, height=3.5)
    for j, key in enumerate(("train_curve", "val_curve")):
        ax = axes[0, j]
        for i, opt in enumerate(cfg.optimizers):
            for k, v in m.runs.items():
                if v["optimizer"] == opt and v[key]:
                    ax.semilogy(
                        range(1, len(v[key]) + 1),
                        v[key],
                        color=PALETTE[i % len(PALETTE)],
                        ls="--" if v["warmup"] else "-",
                        label=k,
                    )
        title = "Training loss" if j == 0 else "Validation loss"
        ax.set(title=title, xlabel="epoch", ylabel="loss")
    _legend(fig, cfg)
    return ctx.save_figure(
        fig,
        "training",
        f"The digits: the MLP (hidden {cfg.hidden}) with each optimizer (dashed: with warm-up).",
        width=860,
    )
