"""Section 7: batch normalisation (Ioffe & Szegedy 2015; lecture: "Batch normalization").

LeNet-5 in d2l's form (sigmoid activations) trains without batch norm, with trainlab's
from-scratch :class:`trainlab.nn.BatchNorm` and with PyTorch's ``nn.BatchNorm1d/2d``, from the
same initial weights with the same optimizer. Then the proof that the two batch norms compute the
same function: both networks get identical weights and one identical batch, and their outputs,
gradients and running statistics are compared in float32 and float64, in training and in
evaluation mode.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from trainlab.errors import TrainingDiverged
from trainlab.report._models import (
    cross_entropy,
    fit_classifier,
    loss_and_accuracy,
    n_params,
    subset,
)
from trainlab.report.context import SectionContext
from trainlab.report.result import Figure, Rendered, Table, Verdict

KEY = "batchnorm"
TITLE = "Batch normalisation"
CLAIM = (
    "Normalising each layer's inputs over the batch (then scaling and shifting them with learned "
    "γ and β) makes the error surface less rugged, so the network trains faster and tolerates "
    "larger learning rates; at test time the running mean and variance collected during training "
    "replace the batch statistics."
)

VARIANTS = {"without BN": "none", "trainlab BN": "scratch", "PyTorch BN": "torch"}


@dataclass
class Config:
    """Settings of the batch-norm experiment.

    Attributes:
        epochs, batch_size, optimizer, lr: the training run of every variant (d2l's LeNet uses
            SGD with a large learning rate).
        check_batch: images in the batch of the equivalence check.
        tol_float32, tol_float64: the largest absolute difference that counts as "the same".
        sweep_lrs, sweep_epochs: the learning-rate sweep, without BN and with trainlab's BN.
        trains_below: a run of the sweep "trains" when its final training loss is below this
            (chance level is ln 10 = 2.30).
        max_train: at most this many training images (a stratified subset), which bounds the
            time on larger data sets such as MNIST.
    """

    epochs: int = 20
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.9
    check_batch: int = 64
    tol_float32: float = 1e-4
    tol_float64: float = 1e-10
    sweep_lrs: list[float] = field(default_factory=lambda: [0.03, 0.3, 3.0, 30.0])
    sweep_epochs: int = 8
    trains_below: float = 1.7
    max_train: int = 2000


def default_config(quick: bool) -> Config:
    return Config(epochs=5, sweep_lrs=[0.3, 3.0], sweep_epochs=3) if quick else Config()


# --- measurement ----------------------------------------------------------------------------


@dataclass
class BatchNormRuns:
    """What the batch-norm experiment measured.

    Attributes:
        n_train: training images.
        runs: variant (``VARIANTS``) -> parameters, final losses and accuracy, median epoch
            time, and the training-loss and validation-accuracy curves.
        lr_sweep_final_train_loss: ``"without BN"`` / ``"trainlab BN"`` -> learning rate (as a
            string) -> final training loss (inf where training diverged).
        lr_sweep_trains_at: the same keys -> the learning rates whose run trains.
        equivalence: the records of :func:`equivalence`.
        same_numbers: every difference of the equivalence check is within its tolerance.
        max_abs_diff: dtype -> the largest difference of the equivalence check.
        training_curve_max_abs_diff: the largest gap between the two BN networks' training curves.
    """

    n_train: int
    runs: dict[str, dict[str, Any]]
    lr_sweep_final_train_loss: dict[str, dict[str, float]]
    lr_sweep_trains_at: dict[str, list[float]]
    equivalence: list[dict[str, Any]]
    same_numbers: bool
    max_abs_diff: dict[str, float]
    training_curve_max_abs_diff: float

    @property
    def bn_trains_faster(self) -> bool:
        """Both BN networks end with a lower training loss than the one without BN."""
        plain = self.runs["without BN"]["train_loss"]
        return all(self.runs[k]["train_loss"] < plain for k in ("trainlab BN", "PyTorch BN"))

    @property
    def bn_trains_at_more_learning_rates(self) -> bool:
        trains = self.lr_sweep_trains_at
        return len(trains["trainlab BN"]) > len(trains["without BN"])

    def numbers(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "lr_sweep_final_train_loss": self.lr_sweep_final_train_loss,
            "lr_sweep_trains_at": self.lr_sweep_trains_at,
            "bn_trains_at_more_learning_rates": self.bn_trains_at_more_learning_rates,
            "equivalence": self.equivalence,
            "same_numbers": self.same_numbers,
            "max_abs_diff": self.max_abs_diff,
            "training_curve_max_abs_diff": self.training_curve_max_abs_diff,
            "bn_trains_faster": self.bn_trains_faster,
        }


def tolerance(cfg: Config, dtype: str) -> float:
    """The largest difference that counts as "the same" in ``dtype``."""
    return cfg.tol_float64 if dtype == "float64" else cfg.tol_float32


def measure(ctx: SectionContext, cfg: Config) -> BatchNormRuns:
    """Train LeNet without and with either BN, sweep the learning rate, check equivalence.

    Returns:
        The :class:`BatchNormRuns` numbers.
    """
    from trainlab.nn import lenet

    (x_all, y_all), val = ctx.data.lenet()
    train = subset(x_all, y_all, cfg.max_train, ctx.seed)
    torch.manual_seed(ctx.seed)
    weights = lenet(bn="scratch").state_dict()
    runs = {label: _train_variant(ctx, cfg, label, weights, train, val) for label in VARIANTS}
    with ctx.step(f"learning-rate sweep {cfg.sweep_lrs}, {cfg.sweep_epochs} epochs each"):
        sweep = {
            label: {
                str(lr): _sweep_run(ctx, cfg, label, lr, weights, train) for lr in cfg.sweep_lrs
            }
            for label in ("without BN", "trainlab BN")
        }
    with ctx.step("equivalence of trainlab's and PyTorch's BN"):
        checks = equivalence(train[0][: cfg.check_batch], train[1][: cfg.check_batch], ctx.seed)
    ours, theirs = runs["trainlab BN"]["train_curve"], runs["PyTorch BN"]["train_curve"]
    return BatchNormRuns(
        n_train=len(train[1]),
        runs=runs,
        lr_sweep_final_train_loss=sweep,
        lr_sweep_trains_at={
            k: [float(lr) for lr, v in d.items() if v < cfg.trains_below] for k, d in sweep.items()
        },
        equivalence=checks,
        same_numbers=all(c["max_abs_diff"] <= tolerance(cfg, c["dtype"]) for c in checks),
        max_abs_diff={
            dt: max(c["max_abs_diff"] for c in checks if c["dtype"] == dt)
            for dt in ("float32", "float64")
        },
        training_curve_max_abs_diff=max(abs(a - b) for a, b in zip(ours, theirs)),
    )


def _lenet(ctx: SectionContext, label: str, weights: dict[str, Tensor]) -> torch.nn.Module:
    """LeNet with ``label``'s batch norm and the shared conv/linear weights (BN: γ = 1, β = 0)."""
    from trainlab.nn import lenet

    torch.manual_seed(ctx.seed)
    model = lenet(bn=VARIANTS[label])
    model.load_state_dict({k: v for k, v in weights.items() if k in model.state_dict()})
    return model


def _train_variant(
    ctx: SectionContext,
    cfg: Config,
    label: str,
    weights: dict[str, Tensor],
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor],
) -> dict[str, Any]:
    model = _lenet(ctx, label, weights)
    with ctx.step(f"LeNet {label}: {cfg.epochs} epochs"):
        hist = fit_classifier(
            ctx,
            model,
            train,
            val,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            optimizer=cfg.optimizer,
            optimizer_kwargs={"lr": cfg.lr},
        )
    train_loss, _ = loss_and_accuracy(model, *train)
    val_loss, val_acc = loss_and_accuracy(model, *val)
    times = sorted(hist["time_s"])
    return {
        "parameters": n_params(model),
        "train_loss": train_loss,
        "val_loss": val_loss,
        "val_acc": val_acc,
        "epoch_time_s": times[len(times) // 2],
        "train_curve": hist["train_loss"],
        "val_acc_curve": hist["val_acc"],
    }


def _sweep_run(
    ctx: SectionContext,
    cfg: Config,
    label: str,
    lr: float,
    weights: dict[str, Tensor],
    train: tuple[Tensor, Tensor],
) -> float:
    """Final training loss after ``cfg.sweep_epochs`` at learning rate ``lr`` (inf: diverged)."""
    model = _lenet(ctx, label, weights)
    try:
        fit_classifier(
            ctx,
            model,
            train,
            epochs=cfg.sweep_epochs,
            batch_size=cfg.batch_size,
            optimizer=cfg.optimizer,
            optimizer_kwargs={"lr": lr},
        )
    except TrainingDiverged:
        return math.inf
    return loss_and_accuracy(model, *train)[0]


# --- rendering ------------------------------------------------------------------------------


def render(ctx: SectionContext, cfg: Config, m: BatchNormRuns) -> Rendered:
    """Tables, figure, prose and verdict of the batch-norm experiment."""
    ours, theirs, plain = (
        m.runs[k]["epoch_time_s"] for k in ("trainlab BN", "PyTorch BN", "without BN")
    )
    return Rendered(
        experiment=(
            "LeNet-5 as in d2l (sigmoid activations, average pooling; batch norm after every "
            f"convolution and hidden fully connected layer) trains for {cfg.epochs} epochs on "
            f"{m.n_train:,} training images with "
            f"{cfg.optimizer} (lr {cfg.lr:g}, batch {cfg.batch_size}) without BN, with trainlab's "
            "from-scratch BN and with PyTorch's, from the same initial weights. The equivalence "
            "check copies one network's weights into the other and compares outputs, loss, every "
            "parameter's gradient and the running statistics after one training-mode forward "
            "pass, then the outputs in evaluation mode."
        ),
        verdict=verdict(cfg, m),
        tables=[_runs_table(ctx, cfg, m), _sweep_table(cfg, m), _equivalence_table(cfg, m)],
        figures=[_training_figure(ctx, m)],
        notes=[
            f"The training curves of the two BN networks differ by at most "
            f"{m.training_curve_max_abs_diff:.1e} over {cfg.epochs} epochs (float32 rounding "
            "accumulates across updates).",
            f"Time per epoch: trainlab's BN {ours:.3f} s, PyTorch's {theirs:.3f} s "
            f"({ours / theirs:.2f}x), without BN {plain:.3f} s (timings vary with the machine's "
            "load).",
        ],
    )


def verdict(cfg: Config, m: BatchNormRuns) -> Verdict:
    """Does BN train faster, at more learning rates, and match PyTorch's numbers?"""
    plain, ours = m.runs["without BN"], m.runs["trainlab BN"]
    trains, worst = m.lr_sweep_trains_at, m.max_abs_diff
    text = (
        f"After {cfg.epochs} epochs batch norm takes LeNet's training loss from "
        f"{plain['train_loss']:.3f} to {ours['train_loss']:.3f} (validation accuracy "
        f"{plain['val_acc']:.1%} to {ours['val_acc']:.1%}) and trains at "
        f"{len(trains['trainlab BN'])} of {len(cfg.sweep_lrs)} learning rates from "
        f"{min(cfg.sweep_lrs):g} to {max(cfg.sweep_lrs):g} (without BN: "
        f"{len(trains['without BN'])}), and trainlab's BN matches PyTorch's to "
        f"{worst['float32']:.1e} in float32 and {worst['float64']:.1e} in float64."
    )
    score = [m.bn_trains_faster, m.bn_trains_at_more_learning_rates, m.same_numbers]
    return Verdict(text, True if all(score) else (None if any(score) else False))


def _runs_table(ctx: SectionContext, cfg: Config, m: BatchNormRuns) -> Table:
    size = ctx.data.image_size
    size_note = "28x28 images" if size == 28 else f"{size}x{size} images resized into 28x28"
    keys = ["parameters", "train_loss", "val_loss", "val_acc", "epoch_time_s"]
    return Table(
        caption=f"LeNet-5 (sigmoid) on {size_note}, {cfg.optimizer} lr {cfg.lr:g}, batch "
        f"{cfg.batch_size}, {cfg.epochs} epochs, same initial weights. Time per epoch is the "
        "median over epochs.",
        columns=["variant", "parameters", "train loss", "val loss", "val accuracy", "s / epoch"],
        rows=[[k] + [v[key] for key in keys] for k, v in m.runs.items()],
        formats={
            "train loss": ".4f",
            "val loss": ".4f",
            "val accuracy": ".1%",
            "s / epoch": ".3f",
        },
    )


def _sweep_table(cfg: Config, m: BatchNormRuns) -> Table:
    sweep = m.lr_sweep_final_train_loss
    plain, ours = sweep["without BN"], sweep["trainlab BN"]
    return Table(
        caption=f"Learning-rate sweep: final training loss after {cfg.sweep_epochs} epochs "
        f"({cfg.optimizer}, same initial weights); 'trains' means below {cfg.trains_below:g}.",
        columns=[
            "learning rate",
            "without BN",
            "trainlab BN",
            "trains without BN",
            "trains with BN",
        ],
        rows=[
            [float(lr), plain[lr], ours[lr]]
            + [plain[lr] < cfg.trains_below, ours[lr] < cfg.trains_below]
            for lr in plain
        ],
        formats={"learning rate": "g", "without BN": ".4f", "trainlab BN": ".4f"},
        mark_columns=["trains without BN", "trains with BN"],
    )


def _equivalence_table(cfg: Config, m: BatchNormRuns) -> Table:
    return Table(
        caption=f"trainlab's BN against PyTorch's: LeNet with identical weights on one batch of "
        f"{cfg.check_batch} training images; largest absolute difference of each quantity "
        f"(tolerance {cfg.tol_float32:g} in float32, {cfg.tol_float64:g} in float64).",
        columns=["dtype", "mode", "quantity", "max abs diff", "same"],
        rows=[
            [c["dtype"], c["mode"], c["quantity"], c["max_abs_diff"]]
            + [c["max_abs_diff"] <= tolerance(cfg, c["dtype"])]
            for c in m.equivalence
        ],
        formats={"max abs diff": ".2e"},
        mark_columns=["same"],
    )


def _training_figure(ctx: SectionContext, m: BatchNormRuns) -> Figure:
    from trainlab.report.figures import plot_curves, subplots

    fig, axes = subplots(2, width=4.6, height=3.4)
    dashed = {"PyTorch BN": {"ls": "--", "lw": 2.4}}
    plot_curves(
        axes[0, 0],
        {k: r["train_curve"] for k, r in m.runs.items()},
        title="Training loss",
        log_y=True,
        styles=dashed,
    )
    plot_curves(
        axes[0, 1],
        {k: r["val_acc_curve"] for k, r in m.runs.items()},
        title="Validation accuracy",
        ylabel="accuracy",
        styles=dashed,
    )
    return ctx.save_figure(
        fig,
        "training",
        "LeNet without BN, with trainlab's BN and with PyTorch's "
        "BN (dashed; it lies on top of trainlab's).",
        width=820,
    )


def equivalence(x: Tensor, y: Tensor, seed: int) -> list[dict[str, Any]]:
    """Compare LeNet with trainlab's BN and with PyTorch's BN on identical weights and batch.

    Returns:
        One record per (dtype, mode, quantity): ``max_abs_diff`` between the two networks.
    """
    from trainlab.nn import lenet

    torch.manual_seed(seed)
    ours32 = lenet(bn="scratch")
    theirs32 = lenet(bn="torch")
    theirs32.load_state_dict(ours32.state_dict())
    out: list[dict[str, Any]] = []
    for dtype in (torch.float32, torch.float64):
        ours, theirs = copy.deepcopy(ours32).to(dtype), copy.deepcopy(theirs32).to(dtype)
        xb = x.to(dtype)
        name = str(dtype).replace("torch.", "")

        def add(mode: str, quantity: str, a: Tensor, b: Tensor, name: str = name) -> None:
            out.append(
                {
                    "dtype": name,
                    "mode": mode,
                    "quantity": quantity,
                    "max_abs_diff": float((a.detach() - b.detach()).abs().max()),
                }
            )

        ours.train()
        theirs.train()
        xa, xb2 = xb.clone().requires_grad_(True), xb.clone().requires_grad_(True)
        oa, ob = ours(xa), theirs(xb2)
        la, lb = cross_entropy(oa, y), cross_entropy(ob, y)
        la.backward()
        lb.backward()
        add("train", "outputs", oa, ob)
        add("train", "loss", la, lb)
        assert xa.grad is not None and xb2.grad is not None
        add("train", "input gradient", xa.grad, xb2.grad)
        pa, pb = dict(ours.named_parameters()), dict(theirs.named_parameters())
        add(
            "train",
            "parameter gradients",
            _cat([pa[k].grad for k in pa]),
            _cat([pb[k].grad for k in pa]),
        )
        ba, bb = dict(ours.named_buffers()), dict(theirs.named_buffers())
        keys = [k for k in ba if "running" in k]
        add(
            "train",
            "running mean and variance",
            _cat([ba[k] for k in keys]),
            _cat([bb[k] for k in keys]),
        )
        ours.eval()
        theirs.eval()
        with torch.no_grad():
            add("eval", "outputs", ours(xb), theirs(xb))
    return out


def _cat(ts: list[Any]) -> Tensor:
    return torch.cat([t.flatten() for t in ts if t is not None])
