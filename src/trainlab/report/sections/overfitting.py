"""Section 1: the training framework, overfitting and its remedies (lecture: "General guidance").

The chapter's recipe: look at the training loss first; if it is small but the validation loss is
large, the model overfits. Remedies constrain the model: fewer parameters, early stopping,
regularisation (L2) and dropout. Here a wide MLP is trained on a small stratified subset of the
training images until it overfits, and each remedy is trained with the same data, optimizer and
budget; validation loss decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from trainlab.nn.mlp import mlp
from trainlab.report._models import fit_classifier, n_params, scores, subset
from trainlab.report.context import SectionContext
from trainlab.report.result import Figure, Rendered, Table, Verdict

KEY = "overfitting"
TITLE = "The training framework and overfitting"
CLAIM = (
    "Check the loss on the training data first. If it is small but the loss on validation data "
    "is large, the model overfits: a flexible model fits the training examples, noise included, "
    "and does worse on data it has not seen. Constraining the model helps: fewer parameters, "
    "early stopping, regularisation (an L2 penalty) and dropout each lower the validation loss."
)


@dataclass
class Config:
    """Settings of the overfitting experiment.

    Attributes:
        n_train: training images used (a stratified subset: few examples make overfitting show).
        epochs: training budget of every run.
        batch_size: minibatch size.
        optimizer: optimizer name (registry) and ``lr`` its learning rate.
        big_hidden: hidden widths of the flexible model that overfits.
        small_hidden: hidden widths of the "fewer parameters" remedy.
        patience: early stopping: epochs without a better validation loss before stopping.
        weight_decay: L2 penalty coefficient (added to the gradient as ``weight_decay * w``).
        dropout: dropout probability after each hidden layer.
    """

    n_train: int = 300
    epochs: int = 150
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float = 1e-3
    big_hidden: list[int] = field(default_factory=lambda: [512, 512])
    small_hidden: list[int] = field(default_factory=lambda: [16])
    patience: int = 10
    weight_decay: float = 3e-3
    dropout: float = 0.5


def default_config(quick: bool) -> Config:
    return Config(epochs=60) if quick else Config()


RUNS = ["overfitting model", "fewer parameters", "early stopping", "L2 regularisation", "dropout"]


# --- measurement ----------------------------------------------------------------------------


@dataclass
class Overfitting:
    """What the overfitting experiment measured.

    Attributes:
        n_train, n_val: training and validation images used.
        runs: run name (``RUNS``) -> its numbers (parameters, epochs run, final and best losses).
        curves: run name -> ``{"train_loss": [...], "val_loss": [...]}`` per epoch.
        overfitting_observed: the flexible model's validation loss rose clearly above its best
            while its training loss fell far below it.
        remedy_lowers_val_loss: remedy -> whether it ends below the flexible model's val loss.
        best_remedy: the remedy with the lowest final validation loss.
    """

    n_train: int
    n_val: int
    runs: dict[str, dict[str, Any]]
    curves: dict[str, dict[str, list[float]]]
    overfitting_observed: bool
    remedy_lowers_val_loss: dict[str, bool]
    best_remedy: str

    def numbers(self) -> dict[str, Any]:
        return {
            "n_train": self.n_train,
            "runs": self.runs,
            "overfitting_observed": self.overfitting_observed,
            "remedy_lowers_val_loss": self.remedy_lowers_val_loss,
            "best_remedy": self.best_remedy,
        }


def measure(ctx: SectionContext, cfg: Config) -> Overfitting:
    """Train the flexible model and each remedy on the same small subset.

    Returns:
        The :class:`Overfitting` numbers.
    """
    (x_all, y_all), val = ctx.data.flat()
    train = subset(x_all, y_all, cfg.n_train, ctx.seed)
    runs, curves = {}, {}
    for name, (model_kw, train_kw) in _specs(cfg).items():
        runs[name], curves[name] = _train_run(ctx, cfg, name, model_kw, train_kw, train, val)
    base = runs[RUNS[0]]
    overfits = (
        base["val_loss_rise"] > 0.1 * base["best_val_loss"]
        and base["train_loss"] < 0.5 * base["val_loss"]
    )
    return Overfitting(
        n_train=len(train[1]),
        n_val=len(val[1]),
        runs=runs,
        curves=curves,
        overfitting_observed=overfits,
        remedy_lowers_val_loss={n: runs[n]["val_loss"] < base["val_loss"] for n in RUNS[1:]},
        best_remedy=min(RUNS[1:], key=lambda n: runs[n]["val_loss"]),
    )


def _specs(cfg: Config) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Run name -> (MLP keyword arguments, TrainConfig overrides)."""
    return {
        RUNS[0]: ({"hidden": cfg.big_hidden}, {}),
        RUNS[1]: ({"hidden": cfg.small_hidden}, {}),
        RUNS[2]: ({"hidden": cfg.big_hidden}, {"patience": cfg.patience, "restore_best": True}),
        RUNS[3]: ({"hidden": cfg.big_hidden}, {"weight_decay": cfg.weight_decay}),
        RUNS[4]: ({"hidden": cfg.big_hidden, "dropout": cfg.dropout}, {}),
    }


def _train_run(
    ctx: SectionContext,
    cfg: Config,
    name: str,
    model_kw: dict[str, Any],
    train_kw: dict[str, Any],
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor],
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """One run: its numbers and its per-epoch curves."""
    torch.manual_seed(ctx.seed)  # the same initial weights for every run of the big model
    model = mlp(train[0].shape[1], out_features=10, **model_kw)
    with ctx.step(f"{name}: {n_params(model):,} parameters"):
        hist = fit_classifier(
            ctx,
            model,
            train,
            val,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            optimizer=cfg.optimizer,
            optimizer_kwargs={"lr": cfg.lr},
            **train_kw,
        )
    s = scores(model, train, val)
    vl = list(hist["val_loss"])
    best = min(range(len(vl)), key=vl.__getitem__)
    numbers = {
        "parameters": n_params(model),
        "epochs_run": len(vl),
        "train_loss": s["train_loss"],
        "train_acc": s["train_acc"],
        "val_loss": s["val_loss"],
        "val_acc": s["val_acc"],
        "best_val_loss": vl[best],
        "best_epoch": best + 1,
        "val_loss_rise": s["val_loss"] - vl[best],
    }
    return numbers, {"train_loss": list(hist["train_loss"]), "val_loss": vl}


# --- rendering ------------------------------------------------------------------------------


def render(ctx: SectionContext, cfg: Config, m: Overfitting) -> Rendered:
    """Table, figures, prose and verdict of the overfitting experiment."""
    return Rendered(
        experiment=(
            f"An MLP with hidden layers {cfg.big_hidden} is trained on {m.n_train} training images "
            f"({ctx.data.image_size}x{ctx.data.image_size} pixels, flattened) with "
            f"{cfg.optimizer} (lr {cfg.lr:g}, batch {cfg.batch_size}) for {cfg.epochs} epochs, and "
            f"validated on all {m.n_val} validation images. Each remedy changes one thing: "
            f"hidden layers {cfg.small_hidden}; early stopping with patience {cfg.patience} keeping "
            f"the best epoch; L2 penalty {cfg.weight_decay:g}; dropout {cfg.dropout:g}. All start "
            "from the same seed. The chapter's framework reads the table from the left: a small "
            "training loss rules out model bias and failed optimisation; a validation loss far "
            "above it, and rising while the training loss falls, is overfitting."
        ),
        verdict=verdict(cfg, m),
        tables=[_table(cfg, m)],
        figures=[_curves_figure(ctx, m), _remedies_figure(ctx, m)],
    )


def verdict(cfg: Config, m: Overfitting) -> Verdict:
    """Does the flexible model overfit, and how many remedies lower its validation loss?"""
    base = m.runs[RUNS[0]]
    n_helped = sum(m.remedy_lowers_val_loss.values())
    if m.overfitting_observed:
        best = m.best_remedy
        text = (
            f"The {base['parameters']:,}-parameter MLP overfits: its validation loss rose from "
            f"{base['best_val_loss']:.3f} (epoch {base['best_epoch']}) to {base['val_loss']:.3f} while "
            f"its training loss fell to {base['train_loss']:.2g}; {n_helped} of 4 remedies end with a "
            f"lower validation loss, best {best} ({m.runs[best]['val_loss']:.3f})."
        )
    else:
        text = (
            f"The {base['parameters']:,}-parameter MLP did not overfit in {cfg.epochs} epochs "
            f"(validation loss {base['val_loss']:.3f}, best {base['best_val_loss']:.3f}); "
            f"{n_helped} of 4 remedies still lowered it."
        )
    return Verdict(text, _agrees(m.overfitting_observed, n_helped))


def _agrees(overfits: bool, n_helped: int) -> bool | None:
    if not overfits or n_helped <= 1:
        return False
    return True if n_helped == 4 else None


def _table(cfg: Config, m: Overfitting) -> Table:
    helped = m.remedy_lowers_val_loss
    rows = []
    for i, name in enumerate(RUNS):
        r = m.runs[name]
        rows.append(
            [name, r["parameters"], r["epochs_run"], r["train_loss"], r["val_loss"]]
            + [r["val_loss"] - r["train_loss"], r["best_val_loss"], r["best_epoch"], r["val_acc"]]
            + ["reference" if i == 0 else helped[name]]
        )
    return Table(
        caption=f"{m.n_train} training images, {cfg.epochs} epochs at most; losses are mean "
        "cross-entropy of the weights each run ends with (early stopping keeps its best epoch).",
        columns=[
            "run",
            "parameters",
            "epochs",
            "train loss",
            "val loss",
            "gap (val − train)",
            "best val loss",
            "best epoch",
            "val accuracy",
            "lower val loss than the overfitting model",
        ],
        rows=rows,
        formats={
            "train loss": ".4f",
            "val loss": ".4f",
            "gap (val − train)": ".4f",
            "best val loss": ".4f",
            "val accuracy": ".1%",
        },
        mark_columns=["lower val loss than the overfitting model"],
    )


def _curves_figure(ctx: SectionContext, m: Overfitting) -> Figure:
    from trainlab.report.figures import plot_curves, subplots

    base, curves = m.runs[RUNS[0]], m.curves[RUNS[0]]
    fig, axes = subplots(1)
    ax = axes[0, 0]
    plot_curves(
        ax,
        {"training loss": curves["train_loss"], "validation loss": curves["val_loss"]},
        title="The overfitting model",
        log_y=True,
    )
    ax.axvline(base["best_epoch"], color="grey", ls=":", lw=1)
    ax.annotate(
        f"best validation loss\n(epoch {base['best_epoch']})",
        (base["best_epoch"], base["best_val_loss"]),
        xytext=(10, 25),
        textcoords="offset points",
        fontsize=8.5,
        arrowprops={"arrowstyle": "->", "lw": 0.8},
    )
    return ctx.save_figure(
        fig,
        "curves",
        "Training and validation loss of the flexible model: the "
        "training loss keeps falling, the validation loss turns up (log scale).",
        width=620,
    )


def _remedies_figure(ctx: SectionContext, m: Overfitting) -> Figure:
    from trainlab.report.figures import plot_curves, subplots

    fig, axes = subplots(1, width=7.0)
    plot_curves(
        axes[0, 0],
        {name: c["val_loss"] for name, c in m.curves.items()},
        title="Validation loss with each remedy",
        ylabel="validation loss",
        styles={RUNS[0]: {"color": "black", "lw": 2.2}},
    )
    return ctx.save_figure(
        fig,
        "remedies",
        "Validation loss per epoch of the overfitting model and "
        "each remedy (early stopping's line ends where it stopped).",
        width=760,
    )
