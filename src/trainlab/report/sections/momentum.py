"""Section 5: momentum (lecture: "Batch and momentum").

The lecture's momentum keeps the previous movement: ``m = λm − ηg``, ``θ = θ + m``
(:class:`trainlab.optim.Momentum`). Like a ball rolling downhill, it can carry on past a local
minimum or a saddle point where plain gradient descent stops. Measured twice: on a two-parameter
surface with a shallow local minimum beside a deeper one, and on the digits with an MLP.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from trainlab.report._models import cross_entropy, loss_and_accuracy, mlp, subset
from trainlab.report.context import SectionContext
from trainlab.report.figures import plot_curves, subplots
from trainlab.report.result import SectionResult, Table, Verdict
from trainlab.report.surfaces import double_well, draw_surface, trajectory

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


def run(ctx: SectionContext, cfg: Config) -> SectionResult:
    from trainlab.train import accuracy, fit

    surface = double_well(cfg.tilt)
    local, best = surface.minima["local minimum"], surface.minima["global minimum"]
    sweep_rows, ends = [], {}
    for lam in sorted(set(cfg.sweep) | {0.0, cfg.momentum}):
        path, losses = trajectory(
            surface, cfg.start, "momentum", {"lr": cfg.lr, "momentum": lam}, cfg.steps
        )
        where = surface.nearest_minimum(path[-1]) if losses[-1] < float("inf") else "diverged"
        ends[lam] = {
            "path": path,
            "losses": losses,
            "end": where,
            "final_loss": float(losses[-1]),
            "final_point": path[-1].tolist(),
        }
        sweep_rows.append([lam, float(losses[-1]), where, path[-1][0], path[-1][1]])
    plain, mom = ends[0.0], ends[cfg.momentum]

    # The same comparison on data.
    (x_all, y_all), (x_val, y_val) = ctx.data.flat()
    x_tr, y_tr = subset(x_all, y_all, cfg.max_train, ctx.seed)
    torch.manual_seed(ctx.seed)
    init = mlp(x_tr.shape[1], cfg.hidden).state_dict()
    hists, data_rows, data_numbers = {}, [], {}
    runs = {"gradient descent (λ = 0)": 0.0, f"momentum (λ = {cfg.momentum:g})": cfg.momentum}
    for name, lam in runs.items():
        model = mlp(x_tr.shape[1], cfg.hidden)
        model.load_state_dict(init)
        tc = ctx.train_config(
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            optimizer="momentum",
            optimizer_kwargs={"lr": cfg.lr, "momentum": lam},
            restore_best=False,
        )
        with ctx.step(f"digits, {name}"):
            hists[name] = fit(
                model, cross_entropy, (x_tr, y_tr), (x_val, y_val), tc, metrics={"acc": accuracy}
            )
        train_loss, _ = loss_and_accuracy(model, x_tr, y_tr)
        val_loss, val_acc = loss_and_accuracy(model, x_val, y_val)
        data_numbers[name] = {
            "momentum": lam,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_acc": val_acc,
        }
        data_rows.append([name, train_loss, val_loss, val_acc])
    (n_plain, d_plain), (n_mom, d_mom) = data_numbers.items()

    escaped = plain["end"] == "local minimum" and mom["end"] == "global minimum"
    faster = d_mom["train_loss"] < d_plain["train_loss"]
    reach = [lam for lam, e in ends.items() if e["end"] == "global minimum"]
    text = (
        f"From ({cfg.start[0]:g}, {cfg.start[1]:g}) gradient descent ends in the "
        f"{plain['end']} (L = {plain['final_loss']:.3f}) and momentum λ = {cfg.momentum:g} in the "
        f"{mom['end']} (L = {mom['final_loss']:.3f}); on {ctx.data.noun} momentum ends at training loss "
        f"{d_mom['train_loss']:.4f} against {d_plain['train_loss']:.4f} after {cfg.epochs} epochs."
    )
    verdict = Verdict(
        text, True if (escaped and faster) else (None if (escaped or faster) else False)
    )
    numbers = {
        "surface": surface.formula,
        "local_minimum": list(local),
        "global_minimum": list(best),
        "loss_local_minimum": surface.loss(local),
        "loss_global_minimum": surface.loss(best),
        "sweep": {
            str(lam): {k: v for k, v in e.items() if k not in ("path", "losses")}
            for lam, e in ends.items()
        },
        "momentum_reaches_global_for": reach,
        "data": data_numbers,
        "escaped_local_minimum": escaped,
        "momentum_lower_training_loss": faster,
    }

    fig, axes = subplots(2, width=5.4, height=4.2)
    draw_surface(
        axes[0, 0],
        surface,
        {
            "gradient descent (λ = 0)": plain["path"],
            f"momentum (λ = {cfg.momentum:g})": mom["path"],
        },
        title=f"{cfg.steps} steps, η = {cfg.lr:g}",
        every=3,
    )
    ax = axes[0, 1]
    ax.plot(plain["losses"], label="gradient descent (λ = 0)")
    ax.plot(mom["losses"], label=f"momentum (λ = {cfg.momentum:g})")
    ax.axhline(surface.loss(local), color="grey", ls=":", lw=1)
    ax.axhline(surface.loss(best), color="grey", ls="--", lw=1)
    lo, hi = surface.loss(best), surface.loss(local)
    ax.set_ylim(
        lo - 0.3 * (hi - lo), hi + 1.5 * (hi - lo)
    )  # the start is far above; zoom on the minima
    ax.set(title="Loss along the path (zoomed on the minima)", xlabel="step", ylabel="L(w)")
    ax.legend()
    fig_surface = ctx.save_figure(
        fig,
        "surface",
        f"Left: {surface.formula}, with the paths of gradient descent and momentum "
        "from the black square. Right: the loss along each path (dotted: local minimum, dashed: "
        "global minimum).",
        width=900,
    )
    fig2, axes2 = subplots(2, width=4.6, height=3.4)
    plot_curves(
        axes2[0, 0],
        {k: h["train_loss"] for k, h in hists.items()},
        title="Training loss",
        log_y=True,
    )
    plot_curves(
        axes2[0, 1],
        {k: h["val_acc"] for k, h in hists.items()},
        title="Validation accuracy",
        ylabel="accuracy",
    )
    fig_data = ctx.save_figure(
        fig2,
        "training",
        f"The MLP (hidden {cfg.hidden}) on {ctx.data.noun}, "
        f"η = {cfg.lr:g}, batch {cfg.batch_size}, same initial weights.",
        width=820,
    )
    tables = [
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
    return SectionResult(
        number=ctx.number,
        key=KEY,
        title=TITLE,
        claim=CLAIM,
        experiment=(
            f"On the surface {surface.formula}, trainlab's lecture-form momentum optimizer runs "
            f"{cfg.steps} steps from ({cfg.start[0]:g}, {cfg.start[1]:g}) with η = {cfg.lr:g} for "
            f"several λ (λ = 0 is plain gradient descent). On the data, an MLP (hidden {cfg.hidden}) "
            f"trains for {cfg.epochs} epochs on {len(y_tr):,} training images with λ = 0 and λ = {cfg.momentum:g} from the same "
            "initial weights."
        ),
        figures=[fig_surface, fig_data],
        tables=tables,
        verdict=verdict,
        numbers=numbers,
        notes=[
            f"Momentum values that reach the global minimum here: "
            f"{', '.join(f'{v:g}' for v in reach) or 'none'}."
        ],
    )
