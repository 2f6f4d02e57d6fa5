"""Section 5: momentum (lecture: "Batch and momentum").

The lecture's momentum keeps the previous movement: ``m = λm − ηg``, ``θ = θ + m``
(:class:`trainlab.optim.Momentum`). Like a ball rolling downhill, it can carry on past a local
minimum or a saddle point where plain gradient descent stops. Measured twice: on a two-parameter
surface with a shallow local minimum beside a deeper one, and on the digits with an MLP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from trainlab.nn.mlp import mlp
from trainlab.report._models import fit_classifier, loss_and_accuracy, subset
from trainlab.report.context import SectionContext
from trainlab.report.result import Figure, Rendered, Table, Verdict
from trainlab.report.surfaces import Surface, double_well, trajectory

KEY = "momentum"
TITLE = "Momentum"
CLAIM = (
    "Gradient descent stops where the gradient is zero, at a local minimum or a saddle point. "
    "Momentum adds the previous movement to each update (m = λm − ηg, θ = θ + m), so like a "
    "ball rolling downhill it can keep going past a small dip and reach a better minimum, and it "
    "moves faster along consistent slopes."
)


@dataclass
class Config:
    """Settings of the momentum experiment.

    Attributes:
        tilt: tilt of the double well (how much deeper the left minimum is).
        start: starting point on the surface.
        steps: updates on the surface.
        lr: learning rate η, the same with and without momentum (surface and data).
        momentum: λ of the momentum run.
        sweep: values of λ tried on the surface for the table.
        epochs: epochs on the data; batch_size and hidden describe the MLP run.
        max_train: at most this many training images (a stratified subset), which bounds the
            time on larger data sets such as MNIST.
    """

    tilt: float = 0.3
    start: list[float] = field(default_factory=lambda: [2.0, 1.5])
    steps: int = 300
    lr: float = 0.01
    momentum: float = 0.9
    sweep: list[float] = field(default_factory=lambda: [0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95])
    epochs: int = 25
    batch_size: int = 64
    hidden: list[int] = field(default_factory=lambda: [128])
    max_train: int = 2000


def default_config(quick: bool) -> Config:
    return Config(epochs=8) if quick else Config()


# --- measurement ----------------------------------------------------------------------------


@dataclass
class MomentumRuns:
    """What the momentum experiment measured.

    Attributes:
        surface: the double well.
        sweep: λ -> the path on the surface (``path``, ``losses``), the minimum it ends in
            (``end``, or ``"diverged"``), ``final_loss`` and ``final_point``.
        n_train: training images of the run on the data.
        data: run name (``run_names``) -> its λ, final training and validation loss, accuracy.
        curves: run name -> ``{"train_loss": [...], "val_acc": [...]}`` per epoch.
        escaped_local_minimum: gradient descent ends in the local minimum, momentum in the
            global one.
        momentum_lower_training_loss: momentum ends with the lower training loss on the data.
    """

    surface: Surface
    sweep: dict[float, dict[str, Any]]
    n_train: int
    data: dict[str, dict[str, float]]
    curves: dict[str, dict[str, list[float]]]
    escaped_local_minimum: bool
    momentum_lower_training_loss: bool

    @property
    def reaches_global(self) -> list[float]:
        """The values of λ whose path ends in the global minimum."""
        return [lam for lam, e in self.sweep.items() if e["end"] == "global minimum"]

    def numbers(self) -> dict[str, Any]:
        local, best = self.surface.minima["local minimum"], self.surface.minima["global minimum"]
        return {
            "surface": self.surface.formula,
            "local_minimum": list(local),
            "global_minimum": list(best),
            "loss_local_minimum": self.surface.loss(local),
            "loss_global_minimum": self.surface.loss(best),
            "sweep": {
                str(lam): {k: v for k, v in e.items() if k not in ("path", "losses")}
                for lam, e in self.sweep.items()
            },
            "momentum_reaches_global_for": self.reaches_global,
            "data": self.data,
            "escaped_local_minimum": self.escaped_local_minimum,
            "momentum_lower_training_loss": self.momentum_lower_training_loss,
        }


def run_names(cfg: Config) -> dict[str, float]:
    """The two runs, gradient descent and momentum: name -> λ."""
    return {"gradient descent (λ = 0)": 0.0, f"momentum (λ = {cfg.momentum:g})": cfg.momentum}


def measure(ctx: SectionContext, cfg: Config) -> MomentumRuns:
    """Run every λ on the double well, then λ = 0 and ``cfg.momentum`` on the data.

    Returns:
        The :class:`MomentumRuns` numbers.
    """
    surface = double_well(cfg.tilt)
    sweep = {
        lam: surface_run(surface, cfg, lam) for lam in sorted(set(cfg.sweep) | {0.0, cfg.momentum})
    }
    (x_all, y_all), val = ctx.data.flat()
    train = subset(x_all, y_all, cfg.max_train, ctx.seed)
    torch.manual_seed(ctx.seed)
    init = mlp(train[0].shape[1], cfg.hidden, 10).state_dict()
    data, curves = {}, {}
    for name, lam in run_names(cfg).items():
        data[name], curves[name] = _data_run(ctx, cfg, name, lam, init, train, val)
    (plain, mom), (d_plain, d_mom) = (sweep[0.0], sweep[cfg.momentum]), data.values()
    return MomentumRuns(
        surface=surface,
        sweep=sweep,
        n_train=len(train[1]),
        data=data,
        curves=curves,
        escaped_local_minimum=plain["end"] == "local minimum" and mom["end"] == "global minimum",
        momentum_lower_training_loss=d_mom["train_loss"] < d_plain["train_loss"],
    )


def surface_run(surface: Surface, cfg: Config, lam: float) -> dict[str, Any]:
    """``cfg.steps`` of momentum ``lam`` from ``cfg.start``, and where they end."""
    path, losses = trajectory(
        surface, cfg.start, "momentum", {"lr": cfg.lr, "momentum": lam}, cfg.steps
    )
    where = surface.nearest_minimum(path[-1]) if losses[-1] < float("inf") else "diverged"
    return {
        "path": path,
        "losses": losses,
        "end": where,
        "final_loss": float(losses[-1]),
        "final_point": path[-1].tolist(),
    }


def _data_run(
    ctx: SectionContext,
    cfg: Config,
    name: str,
    lam: float,
    init: dict[str, Tensor],
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor],
) -> tuple[dict[str, float], dict[str, list[float]]]:
    model = mlp(train[0].shape[1], cfg.hidden, 10)
    model.load_state_dict(init)
    with ctx.step(f"digits, {name}"):
        hist = fit_classifier(
            ctx,
            model,
            train,
            val,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            optimizer="momentum",
            optimizer_kwargs={"lr": cfg.lr, "momentum": lam},
        )
    train_loss, _ = loss_and_accuracy(model, *train)
    val_loss, val_acc = loss_and_accuracy(model, *val)
    numbers = {"momentum": lam, "train_loss": train_loss, "val_loss": val_loss, "val_acc": val_acc}
    return numbers, {"train_loss": hist["train_loss"], "val_acc": hist["val_acc"]}


# --- rendering ------------------------------------------------------------------------------


def render(ctx: SectionContext, cfg: Config, m: MomentumRuns) -> Rendered:
    """Tables, figures, prose and verdict of the momentum experiment."""
    reach = m.reaches_global
    return Rendered(
        experiment=(
            f"On the surface {m.surface.formula}, trainlab's lecture-form momentum optimizer runs "
            f"{cfg.steps} steps from ({cfg.start[0]:g}, {cfg.start[1]:g}) with η = {cfg.lr:g} for "
            f"several λ (λ = 0 is plain gradient descent). On the data, an MLP (hidden "
            f"{cfg.hidden}) trains for {cfg.epochs} epochs on {m.n_train:,} training images with "
            f"λ = 0 and λ = {cfg.momentum:g} from the same initial weights."
        ),
        verdict=verdict(ctx, cfg, m),
        tables=_tables(cfg, m),
        figures=[_surface_figure(ctx, cfg, m), _data_figure(ctx, cfg, m)],
        notes=[
            f"Momentum values that reach the global minimum here: "
            f"{', '.join(f'{v:g}' for v in reach) or 'none'}."
        ],
    )


def verdict(ctx: SectionContext, cfg: Config, m: MomentumRuns) -> Verdict:
    """Does momentum roll past the local minimum, and does it train the MLP faster?"""
    plain, mom = m.sweep[0.0], m.sweep[cfg.momentum]
    d_plain, d_mom = m.data.values()
    text = (
        f"From ({cfg.start[0]:g}, {cfg.start[1]:g}) gradient descent ends in the "
        f"{plain['end']} (L = {plain['final_loss']:.3f}) and momentum λ = {cfg.momentum:g} in the "
        f"{mom['end']} (L = {mom['final_loss']:.3f}); on {ctx.data.noun} momentum ends at training loss "
        f"{d_mom['train_loss']:.4f} against {d_plain['train_loss']:.4f} after {cfg.epochs} epochs."
    )
    escaped, faster = m.escaped_local_minimum, m.momentum_lower_training_loss
    return Verdict(text, True if (escaped and faster) else (None if (escaped or faster) else False))


def _tables(cfg: Config, m: MomentumRuns) -> list[Table]:
    surface = m.surface
    local, best = surface.minima["local minimum"], surface.minima["global minimum"]
    sweep_rows = [
        [lam, e["final_loss"], e["end"], e["path"][-1][0], e["path"][-1][1]]
        for lam, e in m.sweep.items()
    ]
    data_rows = [[name, d["train_loss"], d["val_loss"], d["val_acc"]] for name, d in m.data.items()]
    return [
        Table(
            caption=f"Where {cfg.steps} steps from ({cfg.start[0]:g}, {cfg.start[1]:g}) end, for "
            f"each λ (η = {cfg.lr:g}); local minimum L = {surface.loss(local):.3f}, global "
            f"L = {surface.loss(best):.3f}.",
            columns=["momentum λ", "final loss", "ends in", "w1", "w2"],
            rows=sweep_rows,
            formats={"final loss": ".4f", "w1": ".3f", "w2": ".3f"},
        ),
        Table(
            caption=f"The digits after {cfg.epochs} epochs.",
            columns=["run", "train loss", "val loss", "val accuracy"],
            rows=data_rows,
            formats={"train loss": ".4f", "val loss": ".4f", "val accuracy": ".1%"},
        ),
    ]


def _surface_figure(ctx: SectionContext, cfg: Config, m: MomentumRuns) -> Figure:
    from trainlab.report.figures import legend, subplots
    from trainlab.report.surfaces import draw_surface

    surface, (plain_name, mom_name) = m.surface, run_names(cfg)
    plain, mom = m.sweep[0.0], m.sweep[cfg.momentum]
    fig, axes = subplots(2, width=5.4, height=4.2)
    paths = {plain_name: plain["path"], mom_name: mom["path"]}
    draw_surface(axes[0, 0], surface, paths, title=f"{cfg.steps} steps, η = {cfg.lr:g}", every=3)
    ax = axes[0, 1]
    ax.plot(plain["losses"], label=plain_name)
    ax.plot(mom["losses"], label=mom_name)
    lo = surface.loss(surface.minima["global minimum"])
    hi = surface.loss(surface.minima["local minimum"])
    ax.axhline(hi, color="grey", ls=":", lw=1)
    ax.axhline(lo, color="grey", ls="--", lw=1)
    ax.set_ylim(lo - 0.3 * (hi - lo), hi + 1.5 * (hi - lo))  # the start is far above: zoom in
    ax.set(title="Loss along the path (zoomed on the minima)", xlabel="step", ylabel="L(w)")
    legend(ax)
    return ctx.save_figure(
        fig,
        "surface",
        f"Left: {surface.formula}, with the paths of gradient descent and momentum "
        "from the black square. Right: the loss along each path (dotted: local minimum, dashed: "
        "global minimum).",
        width=900,
    )


def _data_figure(ctx: SectionContext, cfg: Config, m: MomentumRuns) -> Figure:
    from trainlab.report.figures import plot_curves, subplots

    fig, axes = subplots(2, width=4.6, height=3.4)
    plot_curves(
        axes[0, 0],
        {k: c["train_loss"] for k, c in m.curves.items()},
        title="Training loss",
        log_y=True,
    )
    plot_curves(
        axes[0, 1],
        {k: c["val_acc"] for k, c in m.curves.items()},
        title="Validation accuracy",
        ylabel="accuracy",
    )
    return ctx.save_figure(
        fig,
        "training",
        f"The MLP (hidden {cfg.hidden}) on {ctx.data.noun}, "
        f"η = {cfg.lr:g}, batch {cfg.batch_size}, same initial weights.",
        width=820,
    )
