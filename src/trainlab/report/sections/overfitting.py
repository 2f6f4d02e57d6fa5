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

from trainlab.report._models import cross_entropy, loss_and_accuracy, mlp, n_params, subset
from trainlab.report.context import SectionContext
from trainlab.report.figures import plot_curves, subplots
from trainlab.report.result import SectionResult, Table, Verdict

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


def run(ctx: SectionContext, cfg: Config) -> SectionResult:
    from trainlab.train import accuracy, fit

    (x_all, y_all), (x_val, y_val) = ctx.data.flat()
    x_tr, y_tr = subset(x_all, y_all, cfg.n_train, ctx.seed)
    n_in = x_tr.shape[1]
    specs: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
        # name: (model kwargs, TrainConfig overrides)
        RUNS[0]: ({"hidden": cfg.big_hidden}, {}),
        RUNS[1]: ({"hidden": cfg.small_hidden}, {}),
        RUNS[2]: ({"hidden": cfg.big_hidden}, {"patience": cfg.patience, "restore_best": True}),
        RUNS[3]: ({"hidden": cfg.big_hidden}, {"weight_decay": cfg.weight_decay}),
        RUNS[4]: ({"hidden": cfg.big_hidden, "dropout": cfg.dropout}, {}),
    }
    rows, curves, hists = [], {}, {}
    numbers: dict[str, Any] = {"n_train": len(y_tr), "runs": {}}
    for name, (model_kw, train_kw) in specs.items():
        torch.manual_seed(ctx.seed)  # the same initial weights for every run of the big model
        model = mlp(n_in, **model_kw)
        tc = ctx.train_config(
            **{
                "epochs": cfg.epochs,
                "batch_size": cfg.batch_size,
                "optimizer": cfg.optimizer,
                "optimizer_kwargs": {"lr": cfg.lr},
                "restore_best": False,
                **train_kw,
            }
        )
        with ctx.step(f"{name}: {n_params(model):,} parameters"):
            hist = fit(
                model, cross_entropy, (x_tr, y_tr), (x_val, y_val), tc, metrics={"acc": accuracy}
            )
        train_loss, train_acc = loss_and_accuracy(model, x_tr, y_tr)
        val_loss, val_acc = loss_and_accuracy(model, x_val, y_val)
        vl = hist["val_loss"]
        best = min(range(len(vl)), key=vl.__getitem__)
        run_numbers = {
            "parameters": n_params(model),
            "epochs_run": len(vl),
            "train_loss": train_loss,
            "train_acc": train_acc,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "best_val_loss": vl[best],
            "best_epoch": best + 1,
            "val_loss_rise": val_loss - vl[best],
        }
        numbers["runs"][name] = run_numbers
        hists[name] = hist
        curves[name] = vl
        rows.append(
            [
                name,
                run_numbers["parameters"],
                run_numbers["epochs_run"],
                train_loss,
                val_loss,
                val_loss - train_loss,
                vl[best],
                best + 1,
                val_acc,
            ]
        )

    base = numbers["runs"][RUNS[0]]
    overfits = (
        base["val_loss_rise"] > 0.1 * base["best_val_loss"]
        and base["train_loss"] < 0.5 * base["val_loss"]
    )
    helped = {n: numbers["runs"][n]["val_loss"] < base["val_loss"] for n in RUNS[1:]}
    best_remedy = min(RUNS[1:], key=lambda n: numbers["runs"][n]["val_loss"])
    numbers.update(
        {
            "overfitting_observed": overfits,
            "remedy_lowers_val_loss": helped,
            "best_remedy": best_remedy,
        }
    )

    figs = [_curves_figure(ctx, hists[RUNS[0]], base), _remedies_figure(ctx, curves)]
    table = Table(
        caption=f"{len(y_tr)} training images, {cfg.epochs} epochs at most; losses are mean "
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
        rows=[r + (["reference"] if i == 0 else [helped[str(r[0])]]) for i, r in enumerate(rows)],
        formats={
            "train loss": ".4f",
            "val loss": ".4f",
            "gap (val − train)": ".4f",
            "best val loss": ".4f",
            "val accuracy": ".1%",
        },
        mark_columns=["lower val loss than the overfitting model"],
    )
    n_helped = sum(helped.values())
    if overfits:
        text = (
            f"The {base['parameters']:,}-parameter MLP overfits: its validation loss rose from "
            f"{base['best_val_loss']:.3f} (epoch {base['best_epoch']}) to {base['val_loss']:.3f} while "
            f"its training loss fell to {base['train_loss']:.2g}; {n_helped} of 4 remedies end with a "
            f"lower validation loss, best {best_remedy} ({numbers['runs'][best_remedy]['val_loss']:.3f})."
        )
    else:
        text = (
            f"The {base['parameters']:,}-parameter MLP did not overfit in {cfg.epochs} epochs "
            f"(validation loss {base['val_loss']:.3f}, best {base['best_val_loss']:.3f}); "
            f"{n_helped} of 4 remedies still lowered it."
        )
    return SectionResult(
        number=ctx.number,
        key=KEY,
        title=TITLE,
        claim=CLAIM,
        experiment=(
            f"An MLP with hidden layers {cfg.big_hidden} is trained on {len(y_tr)} training images "
            f"({ctx.data.image_size}x{ctx.data.image_size} pixels, flattened) with "
            f"{cfg.optimizer} (lr {cfg.lr:g}, batch {cfg.batch_size}) for {cfg.epochs} epochs, and "
            f"validated on all {len(y_val)} validation images. Each remedy changes one thing: "
            f"hidden layers {cfg.small_hidden}; early stopping with patience {cfg.patience} keeping "
            f"the best epoch; L2 penalty {cfg.weight_decay:g}; dropout {cfg.dropout:g}. All start "
            "from the same seed. The chapter's framework reads the table from the left: a small "
            "training loss rules out model bias and failed optimisation; a validation loss far "
            "above it, and rising while the training loss falls, is overfitting."
        ),
        figures=figs,
        tables=[table],
        verdict=Verdict(text, _agrees(overfits, n_helped)),
        numbers=numbers,
    )


def _agrees(overfits: bool, n_helped: int) -> bool | None:
    if not overfits or n_helped <= 1:
        return False
    return True if n_helped == 4 else None


def _curves_figure(ctx: SectionContext, hist: Any, base: dict[str, Any]) -> Any:
    fig, axes = subplots(1)
    ax = axes[0, 0]
    plot_curves(
        ax,
        {"training loss": hist["train_loss"], "validation loss": hist["val_loss"]},
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


def _remedies_figure(ctx: SectionContext, curves: dict[str, list[float]]) -> Any:
    fig, axes = subplots(1, width=7.0)
    plot_curves(
        axes[0, 0],
        curves,
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
