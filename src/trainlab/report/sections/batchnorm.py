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
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from trainlab.report._models import cross_entropy, loss_and_accuracy, n_params
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
    """

    epochs: int = 20
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.9
    check_batch: int = 64
    tol_float32: float = 1e-4
    tol_float64: float = 1e-10


def default_config(quick: bool) -> Config:
    return Config(epochs=5) if quick else Config()


def run(ctx: SectionContext, cfg: Config) -> SectionResult:
    from trainlab.nn import lenet
    from trainlab.train import accuracy, fit

    (x_tr, y_tr), (x_val, y_val) = ctx.data.lenet()
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
    text = (
        f"After {cfg.epochs} epochs batch norm takes LeNet's training loss from {plain['train_loss']:.3f} "
        f"to {ours['train_loss']:.3f} (validation accuracy {plain['val_acc']:.1%} to {ours['val_acc']:.1%}), "
        f"and trainlab's BN matches PyTorch's to {worst['float32']:.1e} in float32 and "
        f"{worst['float64']:.1e} in float64 at {ours['epoch_time_s'] / theirs['epoch_time_s']:.2f}x its "
        "time per epoch."
    )
    agrees = True if (faster and same) else (None if (faster or same) else False)
    numbers = {
        "runs": runs,
        "equivalence": checks,
        "same_numbers": same,
        "max_abs_diff": worst,
        "training_curve_max_abs_diff": curve_gap,
        "bn_trains_faster": faster,
    }
    tables = [
        Table(
            caption=f"LeNet-5 (sigmoid) on {ctx.data.image_size}x{ctx.data.image_size} images resized to "
            f"28x28, {cfg.optimizer} lr {cfg.lr:g}, batch {cfg.batch_size}, {cfg.epochs} epochs, same "
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
            f"convolution and hidden fully connected layer) trains for {cfg.epochs} epochs with "
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
            f"{cfg.epochs} epochs (float32 rounding accumulates across updates)."
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
