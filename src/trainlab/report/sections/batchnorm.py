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
from trainlab.report._models import cross_entropy, loss_and_accuracy, n_params, subset
from trainlab.report.context import SectionContext
from trainlab.report.figures import plot_curves, subplots
from trainlab.report.result import SectionResult, Table, Verdict

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


def run(ctx: SectionContext, cfg: Config) -> SectionResult:
    from trainlab.nn import lenet
    from trainlab.train import accuracy, fit

    (x_all, y_all), (x_val, y_val) = ctx.data.lenet()
    x_tr, y_tr = subset(x_all, y_all, cfg.max_train, ctx.seed)
    torch.manual_seed(ctx.seed)
    base = lenet(bn="scratch")
    runs: dict[str, dict[str, Any]] = {}
    hists = {}
    for label, bn in VARIANTS.items():
        torch.manual_seed(ctx.seed)
        model = lenet(bn=bn)
        # The same conv/linear weights for every variant; BN layers start at γ = 1, β = 0.
        model.load_state_dict(
            {k: v for k, v in base.state_dict().items() if k in model.state_dict()}
        )
        tc = ctx.train_config(
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            optimizer=cfg.optimizer,
            optimizer_kwargs={"lr": cfg.lr},
            restore_best=False,
        )
        with ctx.step(f"LeNet {label}: {cfg.epochs} epochs"):
            hist = fit(
                model, cross_entropy, (x_tr, y_tr), (x_val, y_val), tc, metrics={"acc": accuracy}
            )
        train_loss, _ = loss_and_accuracy(model, x_tr, y_tr)
        val_loss, val_acc = loss_and_accuracy(model, x_val, y_val)
        times = sorted(hist["time_s"])
        hists[label] = hist
        runs[label] = {
            "parameters": n_params(model),
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "epoch_time_s": times[len(times) // 2],
            "train_curve": hist["train_loss"],
            "val_acc_curve": hist["val_acc"],
        }

    sweep: dict[str, dict[str, float]] = {"without BN": {}, "trainlab BN": {}}
    with ctx.step(f"learning-rate sweep {cfg.sweep_lrs}, {cfg.sweep_epochs} epochs each"):
        for label in sweep:
            for lr in cfg.sweep_lrs:
                torch.manual_seed(ctx.seed)
                model = lenet(bn=VARIANTS[label])
                model.load_state_dict(
                    {k: v for k, v in base.state_dict().items() if k in model.state_dict()}
                )
                tc = ctx.train_config(
                    epochs=cfg.sweep_epochs,
                    batch_size=cfg.batch_size,
                    optimizer=cfg.optimizer,
                    optimizer_kwargs={"lr": lr},
                    restore_best=False,
                )
                try:
                    fit(model, cross_entropy, (x_tr, y_tr), None, tc)
                    sweep[label][str(lr)] = loss_and_accuracy(model, x_tr, y_tr)[0]
                except TrainingDiverged:
                    sweep[label][str(lr)] = math.inf
    trains = {
        k: [float(lr) for lr, v in d.items() if v < cfg.trains_below] for k, d in sweep.items()
    }

    with ctx.step("equivalence of trainlab's and PyTorch's BN"):
        checks = equivalence(x_tr[: cfg.check_batch], y_tr[: cfg.check_batch], ctx.seed)
    same = all(
        c["max_abs_diff"] <= (cfg.tol_float64 if c["dtype"] == "float64" else cfg.tol_float32)
        for c in checks
    )
    worst = {
        dt: max(c["max_abs_diff"] for c in checks if c["dtype"] == dt)
        for dt in ("float32", "float64")
    }
    curve_gap = max(
        abs(a - b)
        for a, b in zip(runs["trainlab BN"]["train_curve"], runs["PyTorch BN"]["train_curve"])
    )

    plain, ours, theirs = runs["without BN"], runs["trainlab BN"], runs["PyTorch BN"]
    faster = ours["train_loss"] < plain["train_loss"] and theirs["train_loss"] < plain["train_loss"]
    wider = len(trains["trainlab BN"]) > len(trains["without BN"])
    n_lr = len(cfg.sweep_lrs)
    text = (
        f"After {cfg.epochs} epochs batch norm takes LeNet's training loss from "
        f"{plain['train_loss']:.3f} to {ours['train_loss']:.3f} (validation accuracy "
        f"{plain['val_acc']:.1%} to {ours['val_acc']:.1%}) and trains at "
        f"{len(trains['trainlab BN'])} of {n_lr} learning rates from {min(cfg.sweep_lrs):g} to "
        f"{max(cfg.sweep_lrs):g} (without BN: {len(trains['without BN'])}), and trainlab's BN "
        f"matches PyTorch's to {worst['float32']:.1e} in float32 and {worst['float64']:.1e} in "
        "float64."
    )
    score = [faster, wider, same]
    agrees = True if all(score) else (None if any(score) else False)
    numbers = {
        "runs": runs,
        "lr_sweep_final_train_loss": sweep,
        "lr_sweep_trains_at": trains,
        "bn_trains_at_more_learning_rates": wider,
        "equivalence": checks,
        "same_numbers": same,
        "max_abs_diff": worst,
        "training_curve_max_abs_diff": curve_gap,
        "bn_trains_faster": faster,
    }
    size = ctx.data.image_size
    size_note = "28x28 images" if size == 28 else f"{size}x{size} images resized into 28x28"
    tables = [
        Table(
            caption=f"LeNet-5 (sigmoid) on {size_note}, {cfg.optimizer} lr {cfg.lr:g}, batch {cfg.batch_size}, {cfg.epochs} epochs, same "
            "initial weights. Time per epoch is the median over epochs.",
            columns=[
                "variant",
                "parameters",
                "train loss",
                "val loss",
                "val accuracy",
                "s / epoch",
            ],
            rows=[
                [
                    k,
                    v["parameters"],
                    v["train_loss"],
                    v["val_loss"],
                    v["val_acc"],
                    v["epoch_time_s"],
                ]
                for k, v in runs.items()
            ],
            formats={
                "train loss": ".4f",
                "val loss": ".4f",
                "val accuracy": ".1%",
                "s / epoch": ".3f",
            },
        ),
        Table(
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
                [
                    float(lr),
                    sweep["without BN"][lr],
                    sweep["trainlab BN"][lr],
                    sweep["without BN"][lr] < cfg.trains_below,
                    sweep["trainlab BN"][lr] < cfg.trains_below,
                ]
                for lr in sweep["without BN"]
            ],
            formats={"learning rate": "g", "without BN": ".4f", "trainlab BN": ".4f"},
            mark_columns=["trains without BN", "trains with BN"],
        ),
        Table(
            caption=f"trainlab's BN against PyTorch's: LeNet with identical weights on one batch of "
            f"{cfg.check_batch} training images; largest absolute difference of each quantity "
            f"(tolerance {cfg.tol_float32:g} in float32, {cfg.tol_float64:g} in float64).",
            columns=["dtype", "mode", "quantity", "max abs diff", "same"],
            rows=[
                [
                    c["dtype"],
                    c["mode"],
                    c["quantity"],
                    c["max_abs_diff"],
                    c["max_abs_diff"]
                    <= (cfg.tol_float64 if c["dtype"] == "float64" else cfg.tol_float32),
                ]
                for c in checks
            ],
            formats={"max abs diff": ".2e"},
            mark_columns=["same"],
        ),
    ]
    fig, axes = subplots(2, width=4.6, height=3.4)
    plot_curves(
        axes[0, 0],
        {k: h["train_loss"] for k, h in hists.items()},
        title="Training loss",
        log_y=True,
        styles={"PyTorch BN": {"ls": "--", "lw": 2.4}},
    )
    plot_curves(
        axes[0, 1],
        {k: h["val_acc"] for k, h in hists.items()},
        title="Validation accuracy",
        ylabel="accuracy",
        styles={"PyTorch BN": {"ls": "--", "lw": 2.4}},
    )
    figure = ctx.save_figure(
        fig,
        "training",
        "LeNet without BN, with trainlab's BN and with PyTorch's "
        "BN (dashed; it lies on top of trainlab's).",
        width=820,
    )
    return SectionResult(
        number=ctx.number,
        key=KEY,
        title=TITLE,
        claim=CLAIM,
        experiment=(
            "LeNet-5 as in d2l (sigmoid activations, average pooling; batch norm after every "
            f"convolution and hidden fully connected layer) trains for {cfg.epochs} epochs on "
            f"{len(y_tr):,} training images with "
            f"{cfg.optimizer} (lr {cfg.lr:g}, batch {cfg.batch_size}) without BN, with trainlab's "
            "from-scratch BN and with PyTorch's, from the same initial weights. The equivalence "
            "check copies one network's weights into the other and compares outputs, loss, every "
            "parameter's gradient and the running statistics after one training-mode forward "
            "pass, then the outputs in evaluation mode."
        ),
        figures=[figure],
        tables=tables,
        verdict=Verdict(text, agrees),
        numbers=numbers,
        notes=[
            f"The training curves of the two BN networks differ by at most {curve_gap:.1e} over "
            f"{cfg.epochs} epochs (float32 rounding accumulates across updates).",
            f"Time per epoch: trainlab's BN {ours['epoch_time_s']:.3f} s, PyTorch's "
            f"{theirs['epoch_time_s']:.3f} s ({ours['epoch_time_s'] / theirs['epoch_time_s']:.2f}x), "
            f"without BN {plain['epoch_time_s']:.3f} s (timings vary with the machine's load).",
        ],
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
