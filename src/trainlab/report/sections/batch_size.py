"""Section 4: small versus large batches (lecture: "Batch and momentum").

The chapter's table compares small and large batches on five counts: time for one update, time
for one epoch, gradient noise, optimisation and generalisation. Each is measured here over a range
of batch sizes with the same model, initial weights, optimizer, learning rate and number of epochs:

* time per update: median wall time of one forward + backward + step (after warm-up);
* time per epoch: median of the Trainer's measured epoch times;
* gradient noise: at the initial weights, the mean squared distance between minibatch gradients
  and the full-batch gradient, E||g_B - g||^2 (the trace of the minibatch gradient's covariance,
  which sampling theory puts at (1/B - 1/N) times the per-example value);
* optimisation: the training loss after the same number of epochs;
* generalisation: the validation accuracy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from trainlab.report._models import cross_entropy, loss_and_accuracy, mlp, subset
from trainlab.report.context import SectionContext
from trainlab.report.figures import PALETTE, subplots
from trainlab.report.result import SectionResult, Table, Verdict

KEY = "batch_size"
TITLE = "Batch size"
CLAIM = (
    "Small and large batches trade speed against noise. Time for one update: the same for small "
    "and large batches, thanks to parallel computing, unless the batch is too large. Time for one "
    "epoch: small batches are slower (more updates per epoch), large batches faster. Gradient: "
    "noisy with small batches, stable with large ones. Optimisation: small batches are better (the "
    "noise helps). Generalisation: small batches are better."
)

# (aspect, chapter's word for small batches, for large batches)
CHAPTER_TABLE = [
    ("time for one update", "same (no parallel computing)", "same (unless the batch is too large)"),
    ("time for one epoch", "slower", "faster"),
    ("gradient", "noisy", "stable"),
    ("optimisation", "better", "worse"),
    ("generalisation", "better", "worse"),
]


@dataclass
class Config:
    """Settings of the batch-size experiment.

    Attributes:
        batch_sizes: the batch sizes compared (capped at the number of training images).
        epochs: the same number of epochs for every batch size.
        optimizer: optimizer name and ``lr``, the same for every batch size.
        hidden: hidden widths of the MLP.
        max_train: at most this many training images (a stratified subset), to bound the time of
            batch size 1 on larger data sets.
        timing_repeats: updates timed per batch size (the median is reported).
        noise_samples: minibatch gradients drawn per batch size for the noise estimate.
        same_update_ratio: "the same time per update" means at most this ratio.
        equal_updates: a second budget: about this many updates for every batch size (so large
            batches get many more epochs), to separate "fewer updates" from "noisier updates".
    """

    batch_sizes: list[int] = field(default_factory=lambda: [1, 4, 16, 64, 256, 1024])
    epochs: int = 20
    optimizer: str = "sgd"
    lr: float = 0.05
    hidden: list[int] = field(default_factory=lambda: [128])
    max_train: int = 2000
    timing_repeats: int = 30
    noise_samples: int = 64
    same_update_ratio: float = 2.0
    equal_updates: int = 400


def default_config(quick: bool) -> Config:
    if quick:
        return Config(
            batch_sizes=[1, 16, 128, 1024],
            epochs=6,
            timing_repeats=15,
            noise_samples=24,
            equal_updates=150,
        )
    return Config()


def run(ctx: SectionContext, cfg: Config) -> SectionResult:
    from trainlab.train import accuracy, fit

    (x_all, y_all), (x_val, y_val) = ctx.data.flat()
    x_tr, y_tr = subset(x_all, y_all, cfg.max_train, ctx.seed)
    n = len(y_tr)
    sizes = sorted({min(b, n) for b in cfg.batch_sizes})
    torch.manual_seed(ctx.seed)
    init = mlp(x_tr.shape[1], cfg.hidden).state_dict()

    def fresh() -> nn.Module:
        model = mlp(x_tr.shape[1], cfg.hidden)
        model.load_state_dict(init)
        return model

    from trainlab.device import resolve_device

    device = resolve_device(ctx.config.device)  # time updates where training runs
    x_dev, y_dev = x_tr.to(device), y_tr.to(device)
    full_grad = _gradient(fresh(), x_tr, y_tr)
    per: dict[int, dict[str, Any]] = {}
    curves: dict[int, list[float]] = {}
    for b in sizes:
        with ctx.step(f"batch {b}: timing, gradient noise and {cfg.epochs} epochs"):
            update_s = _time_update(fresh().to(device), x_dev, y_dev, b, cfg, ctx.seed)
            noise = _gradient_noise(fresh(), x_tr, y_tr, b, full_grad, cfg.noise_samples, ctx.seed)
            model = fresh()
            tc = ctx.train_config(
                epochs=cfg.epochs,
                batch_size=b,
                optimizer=cfg.optimizer,
                optimizer_kwargs={"lr": cfg.lr},
                restore_best=False,
            )
            hist = fit(
                model, cross_entropy, (x_tr, y_tr), (x_val, y_val), tc, metrics={"acc": accuracy}
            )
            train_loss, train_acc = loss_and_accuracy(model, x_tr, y_tr)
            val_loss, val_acc = loss_and_accuracy(model, x_val, y_val)
            # The same number of updates: large batches get many more epochs.
            model = fresh()
            fit(
                model,
                cross_entropy,
                _Updates(x_tr, y_tr, b, cfg.equal_updates, ctx.seed),
                None,
                ctx.train_config(
                    epochs=1,
                    batch_size=b,
                    optimizer=cfg.optimizer,
                    optimizer_kwargs={"lr": cfg.lr},
                    restore_best=False,
                ),
            )
            eq_train_loss, _ = loss_and_accuracy(model, x_tr, y_tr)
            _, eq_val_acc = loss_and_accuracy(model, x_val, y_val)
        epoch_times = sorted(hist["time_s"])
        per[b] = {
            "batch_size": b,
            "updates_per_epoch": -(-n // b),
            "time_per_update_ms": update_s * 1e3,
            "time_per_epoch_s": epoch_times[len(epoch_times) // 2],
            "gradient_noise": noise,
            "relative_gradient_noise": noise / float(full_grad.square().sum()),
            "train_loss": train_loss,
            "train_acc": train_acc,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "equal_updates": cfg.equal_updates,
            "equal_updates_epochs": cfg.equal_updates * b / n,
            "equal_updates_train_loss": eq_train_loss,
            "equal_updates_val_acc": eq_val_acc,
        }
        curves[b] = hist["train_loss"]

    small, large = per[sizes[0]], per[sizes[-1]]
    ratio = large["time_per_update_ms"] / small["time_per_update_ms"]
    same_upto = max(
        b
        for b in sizes
        if per[b]["time_per_update_ms"] <= cfg.same_update_ratio * small["time_per_update_ms"]
    )
    measured = [
        (
            f"{small['time_per_update_ms']:.3g} ms",
            f"{large['time_per_update_ms']:.3g} ms ({ratio:.1f}x)",
            ratio <= cfg.same_update_ratio,
        ),
        (
            f"{small['time_per_epoch_s']:.3g} s",
            f"{large['time_per_epoch_s']:.3g} s",
            small["time_per_epoch_s"] > large["time_per_epoch_s"],
        ),
        (
            f"{small['gradient_noise']:.3g}",
            f"{large['gradient_noise']:.3g}",
            small["gradient_noise"] > large["gradient_noise"],
        ),
        (
            f"loss {small['train_loss']:.4f}",
            f"loss {large['train_loss']:.4f}",
            small["train_loss"] < large["train_loss"],
        ),
        (
            f"accuracy {small['val_acc']:.1%}",
            f"accuracy {large['val_acc']:.1%}",
            None if small["val_acc"] == large["val_acc"] else small["val_acc"] > large["val_acc"],
        ),
    ]
    chapter_rows = [
        [aspect, ws, ms, wl, ml, ok]
        for (aspect, ws, wl), (ms, ml, ok) in zip(CHAPTER_TABLE, measured)
    ]
    agree = {CHAPTER_TABLE[i][0]: measured[i][2] for i in range(len(measured))}
    n_agree = sum(1 for v in agree.values() if v)
    detail_rows = [
        [
            p["batch_size"],
            p["updates_per_epoch"],
            p["time_per_update_ms"],
            p["time_per_epoch_s"],
            p["gradient_noise"],
            p["relative_gradient_noise"],
            p["train_loss"],
            p["val_acc"],
            p["equal_updates_epochs"],
            p["equal_updates_train_loss"],
            p["equal_updates_val_acc"],
        ]
        for p in per.values()
    ]
    disagree = [a for a, v in agree.items() if v is False]
    where = "this GPU" if device.type == "cuda" else f"this {device.type.upper()}"
    text = (
        f"{n_agree} of the chapter's 5 rows hold on {where} (batch {sizes[0]} vs {sizes[-1]}, "
        f"{cfg.epochs} epochs each)"
        + (f"; not {', '.join(disagree)}" if disagree else "")
        + (
            f" - an update of batch {sizes[-1]} takes {ratio:.1f}x as long as one of batch {sizes[0]}"
            if not agree["time for one update"]
            else ""
        )
        + "."
    )
    verdict = Verdict(text, True if n_agree == 5 else (None if n_agree >= 3 else False))
    numbers = {
        "n_train": n,
        "per_batch_size": per,
        "update_time_ratio_large_small": ratio,
        "same_update_time_up_to_batch": same_upto,
        "agrees": agree,
    }
    tables = [
        Table(
            caption=f"The chapter's table beside the measurements (smallest batch {sizes[0]}, "
            f"largest {sizes[-1]}; {n} training images, {cfg.optimizer} lr {cfg.lr:g}, "
            f"{cfg.epochs} epochs).",
            columns=[
                "aspect",
                "chapter: small batch",
                f"measured: batch {sizes[0]}",
                "chapter: large batch",
                f"measured: batch {sizes[-1]}",
                "agrees",
            ],
            rows=chapter_rows,
            mark_columns=["agrees"],
        ),
        Table(
            caption="Every batch size. Gradient noise is E||g_B - g||^2 at the initial weights; "
            "relative noise divides it by ||g||^2.",
            columns=[
                "batch size",
                "updates / epoch",
                "ms / update",
                "s / epoch",
                "gradient noise",
                "relative noise",
                "train loss",
                "val accuracy",
                "epochs (2nd budget)",
                "train loss (2nd)",
                "val accuracy (2nd)",
            ],
            rows=detail_rows,
            formats={
                "ms / update": ".3g",
                "s / epoch": ".3g",
                "train loss": ".4f",
                "val accuracy": ".1%",
                "epochs (2nd budget)": ".3g",
                "train loss (2nd)": ".4f",
                "val accuracy (2nd)": ".1%",
            },
        ),
    ]
    figs = [_figure_costs(ctx, per, sizes, n), _figure_training(ctx, per, curves, sizes)]
    eq_small_better = small["equal_updates_train_loss"] < large["equal_updates_train_loss"]
    numbers["equal_updates_small_better_optimisation"] = eq_small_better
    notes = [
        f"With the same number of updates instead of the same epochs (second budget: "
        f"{cfg.equal_updates} updates each), batch {sizes[0]} ends with training loss "
        f"{small['equal_updates_train_loss']:.4f} and batch {sizes[-1]} with "
        f"{large['equal_updates_train_loss']:.4f}: "
        + (
            "small batches still optimise better."
            if eq_small_better
            else "large batches optimise better per update; the chapter's advantage of small batches is "
            "one of more updates per epoch."
        ),
        f"Time per update stays within {cfg.same_update_ratio:g}x of batch {sizes[0]} up to batch "
        f"{same_upto} here ({device.type.upper()}). The chapter's 'same time per update' assumes a "
        "GPU that processes a batch's examples in parallel"
        + ("." if device.type == "cuda" else "; a CPU thread does them one after another."),
    ]
    return SectionResult(
        number=ctx.number,
        key=KEY,
        title=TITLE,
        claim=CLAIM,
        experiment=(
            f"An MLP (hidden {cfg.hidden}) on {n} training images is trained with each batch size "
            f"in {sizes} for {cfg.epochs} epochs from the same initial weights with {cfg.optimizer} "
            f"(lr {cfg.lr:g}). Time per update is the median of {cfg.timing_repeats} timed updates; "
            f"gradient noise is estimated from {cfg.noise_samples} minibatch gradients per batch "
            "size at the initial weights. 'Optimisation' is the final training loss, "
            "'generalisation' the validation accuracy. A second budget gives every batch size "
            f"{cfg.equal_updates} updates instead (columns marked 2nd)."
        ),
        figures=figs,
        tables=tables,
        verdict=verdict,
        numbers=numbers,
        notes=notes,
    )


class _Updates:
    """Exactly ``updates`` shuffled minibatches of ``b`` rows (new permutation after each pass)."""

    def __init__(self, x: Tensor, y: Tensor, b: int, updates: int, seed: int) -> None:
        self.x, self.y, self.b, self.updates, self.seed = x, y, b, updates, seed

    def __len__(self) -> int:
        return self.updates

    def __iter__(self) -> Any:
        g = torch.Generator().manual_seed(self.seed)
        n, done = len(self.y), 0
        while True:
            perm = torch.randperm(n, generator=g)
            for i in range(0, n, self.b):
                idx = perm[i : i + self.b]
                yield self.x[idx], self.y[idx]
                done += 1
                if done == self.updates:
                    return


def _gradient(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    model.zero_grad()
    cross_entropy(model(x), y).backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]).detach()


def _gradient_noise(
    model: nn.Module, x: Tensor, y: Tensor, b: int, full: Tensor, samples: int, seed: int
) -> float:
    """Mean of ||g_B - g||^2 over ``samples`` minibatches drawn without replacement."""
    if b >= len(y):
        return 0.0
    g = torch.Generator().manual_seed(seed + b)
    total = 0.0
    for _ in range(samples):
        idx = torch.randperm(len(y), generator=g)[:b]
        total += float((_gradient(model, x[idx], y[idx]) - full).square().sum())
    return total / samples


def _time_update(model: nn.Module, x: Tensor, y: Tensor, b: int, cfg: Config, seed: int) -> float:
    """Median seconds of one forward + backward + optimizer step on a batch of ``b`` rows."""
    from trainlab.optim import create_optimizer

    opt = create_optimizer(cfg.optimizer, model.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(seed)
    batches = [torch.randint(len(y), (b,), generator=g) for _ in range(cfg.timing_repeats + 3)]
    # GPU kernels run asynchronously: wait for them before reading the clock
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    times = []
    for i, idx in enumerate(batches):
        xb, yb = x[idx.to(x.device)], y[idx.to(y.device)]
        sync()
        t0 = time.perf_counter()
        loss = cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()
        if i >= 3:  # the first updates pay for allocation
            times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def _figure_costs(
    ctx: SectionContext, per: dict[int, dict[str, Any]], sizes: list[int], n: int
) -> Any:
    fig, axes = subplots(3, width=3.9, height=3.3)
    ax = axes[0, 0]
    ax.loglog(sizes, [per[b]["time_per_update_ms"] for b in sizes], "o-", color=PALETTE[0])
    ax.set(title="Time for one update", xlabel="batch size", ylabel="ms")
    ax = axes[0, 1]
    ax.loglog(sizes, [per[b]["time_per_epoch_s"] for b in sizes], "o-", color=PALETTE[1])
    ax.set(title="Time for one epoch", xlabel="batch size", ylabel="s")
    ax = axes[0, 2]
    bs = [b for b in sizes if per[b]["gradient_noise"] > 0]
    if bs:
        noise = [per[b]["gradient_noise"] for b in bs]
        ax.loglog(bs, noise, "o-", color=PALETTE[2], label="measured")
        scale = noise[0] / (1 / bs[0] - 1 / n)
        ax.loglog(
            bs,
            [scale * (1 / b - 1 / n) for b in bs],
            "--",
            color="grey",
            lw=1,
            label="(1/B - 1/N) scaling",
        )
        ax.legend()
    ax.set(title="Gradient noise E||g_B - g||²", xlabel="batch size", ylabel="squared norm")
    return ctx.save_figure(
        fig,
        "costs",
        "Cost and noise per batch size (log-log). The full batch has "
        "no gradient noise and is left off the right panel.",
        width=900,
    )


def _figure_training(
    ctx: SectionContext,
    per: dict[int, dict[str, Any]],
    curves: dict[int, list[float]],
    sizes: list[int],
) -> Any:
    fig, axes = subplots(2, width=4.6, height=3.4)
    ax = axes[0, 0]
    for i, b in enumerate(sizes):
        ax.plot(
            range(1, len(curves[b]) + 1), curves[b], color=PALETTE[i % len(PALETTE)], label=f"B={b}"
        )
    ax.set(title="Training loss per epoch", xlabel="epoch", ylabel="training loss", yscale="log")
    ax.legend()
    ax = axes[0, 1]
    ax.semilogx(sizes, [per[b]["train_acc"] for b in sizes], "o-", label="training accuracy")
    ax.semilogx(sizes, [per[b]["val_acc"] for b in sizes], "s-", label="validation accuracy")
    ax.set(title="Optimisation and generalisation", xlabel="batch size", ylabel="accuracy")
    ax.legend()
    return ctx.save_figure(
        fig,
        "training",
        "Training with each batch size for the same number of "
        "epochs: training loss, and final training and validation accuracy.",
        width=820,
    )
