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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from trainlab.nn.mlp import mlp
from trainlab.report._models import cross_entropy, fit_classifier, loss_and_accuracy, subset
from trainlab.report.context import SectionContext
from trainlab.report.result import Figure, Rendered, Table, Verdict

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


# --- measurement ----------------------------------------------------------------------------


@dataclass
class BatchSizes:
    """What the batch-size experiment measured.

    Attributes:
        n_train: training images.
        sizes: the batch sizes, ascending (capped at ``n_train``).
        device: the device type the updates were timed on (``"cpu"``, ``"cuda"``, ``"mps"``).
        per_batch_size: batch size -> its numbers (timings, gradient noise, losses, accuracies,
            and the same for the equal-updates budget).
        curves: batch size -> training loss per epoch.
        update_time_ratio_large_small: time per update of the largest batch over the smallest.
        same_update_time_up_to_batch: the largest batch whose update takes at most
            ``same_update_ratio`` times the smallest batch's.
        agrees: the chapter's aspect (``CHAPTER_TABLE``) -> whether the measurement agrees
            (``None``: a tie).
        equal_updates_small_better_optimisation: with equal updates, the smallest batch ends
            with a lower training loss than the largest.
    """

    n_train: int
    sizes: list[int]
    device: str
    per_batch_size: dict[int, dict[str, Any]]
    curves: dict[int, list[float]]
    update_time_ratio_large_small: float
    same_update_time_up_to_batch: int
    agrees: dict[str, bool | None]
    equal_updates_small_better_optimisation: bool

    @property
    def small(self) -> dict[str, Any]:
        return self.per_batch_size[self.sizes[0]]

    @property
    def large(self) -> dict[str, Any]:
        return self.per_batch_size[self.sizes[-1]]

    def numbers(self) -> dict[str, Any]:
        return {
            "n_train": self.n_train,
            "per_batch_size": self.per_batch_size,
            "update_time_ratio_large_small": self.update_time_ratio_large_small,
            "same_update_time_up_to_batch": self.same_update_time_up_to_batch,
            "agrees": self.agrees,
            "equal_updates_small_better_optimisation": self.equal_updates_small_better_optimisation,
        }


def measure(ctx: SectionContext, cfg: Config) -> BatchSizes:
    """Time, measure gradient noise and train with every batch size from the same weights.

    Returns:
        The :class:`BatchSizes` numbers.
    """
    from trainlab.device import resolve_device

    (x_all, y_all), val = ctx.data.flat()
    train = subset(x_all, y_all, cfg.max_train, ctx.seed)
    n = len(train[1])
    sizes = sorted({min(b, n) for b in cfg.batch_sizes})
    torch.manual_seed(ctx.seed)
    init = mlp(train[0].shape[1], cfg.hidden, 10).state_dict()

    def fresh() -> nn.Module:
        model = mlp(train[0].shape[1], cfg.hidden, 10)
        model.load_state_dict(init)
        return model

    device = resolve_device(ctx.config.device)  # time updates where training runs
    on_device = (train[0].to(device), train[1].to(device))
    full_grad = _gradient(fresh(), *train)
    per: dict[int, dict[str, Any]] = {}
    curves: dict[int, list[float]] = {}
    for b in sizes:
        with ctx.step(f"batch {b}: timing, gradient noise and {cfg.epochs} epochs"):
            update_s = _time_update(fresh().to(device), *on_device, b, cfg, ctx.seed)
            noise = _gradient_noise(fresh(), *train, b, full_grad, cfg.noise_samples, ctx.seed)
            trained, curves[b] = _train_both_budgets(ctx, cfg, fresh, b, train, val)
        per[b] = {
            "batch_size": b,
            "updates_per_epoch": -(-n // b),
            "time_per_update_ms": update_s * 1e3,
            "time_per_epoch_s": trained.pop("time_per_epoch_s"),
            "gradient_noise": noise,
            "relative_gradient_noise": noise / float(full_grad.square().sum()),
            **trained,
        }
    return _compare(cfg, n, sizes, device.type, per, curves)


def _train_both_budgets(
    ctx: SectionContext,
    cfg: Config,
    fresh: Callable[[], nn.Module],
    b: int,
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor],
) -> tuple[dict[str, Any], list[float]]:
    """Train with batch ``b`` for ``cfg.epochs`` epochs, then for ``cfg.equal_updates`` updates."""
    model = fresh()
    common: dict[str, Any] = {
        "batch_size": b,
        "optimizer": cfg.optimizer,
        "optimizer_kwargs": {"lr": cfg.lr},
    }
    hist = fit_classifier(ctx, model, train, val, epochs=cfg.epochs, **common)
    train_loss, train_acc = loss_and_accuracy(model, *train)
    val_loss, val_acc = loss_and_accuracy(model, *val)
    # The same number of updates: large batches get many more epochs.
    model = fresh()
    fit_classifier(ctx, model, _Updates(*train, b, cfg.equal_updates, ctx.seed), epochs=1, **common)
    eq_train_loss, _ = loss_and_accuracy(model, *train)
    _, eq_val_acc = loss_and_accuracy(model, *val)
    epoch_times = sorted(hist["time_s"])
    numbers = {
        "time_per_epoch_s": epoch_times[len(epoch_times) // 2],
        "train_loss": train_loss,
        "train_acc": train_acc,
        "val_loss": val_loss,
        "val_acc": val_acc,
        "equal_updates": cfg.equal_updates,
        "equal_updates_epochs": cfg.equal_updates * b / len(train[1]),
        "equal_updates_train_loss": eq_train_loss,
        "equal_updates_val_acc": eq_val_acc,
    }
    return numbers, hist["train_loss"]


def _compare(
    cfg: Config,
    n: int,
    sizes: list[int],
    device: str,
    per: dict[int, dict[str, Any]],
    curves: dict[int, list[float]],
) -> BatchSizes:
    """The smallest batch against the largest, row by row of the chapter's table."""
    small, large = per[sizes[0]], per[sizes[-1]]
    ratio = large["time_per_update_ms"] / small["time_per_update_ms"]
    limit = cfg.same_update_ratio * small["time_per_update_ms"]
    same_upto = max(b for b in sizes if per[b]["time_per_update_ms"] <= limit)
    agrees = [
        ratio <= cfg.same_update_ratio,
        small["time_per_epoch_s"] > large["time_per_epoch_s"],
        small["gradient_noise"] > large["gradient_noise"],
        small["train_loss"] < large["train_loss"],
        None if small["val_acc"] == large["val_acc"] else small["val_acc"] > large["val_acc"],
    ]
    return BatchSizes(
        n_train=n,
        sizes=sizes,
        device=device,
        per_batch_size=per,
        curves=curves,
        update_time_ratio_large_small=ratio,
        same_update_time_up_to_batch=same_upto,
        agrees={row[0]: ok for row, ok in zip(CHAPTER_TABLE, agrees)},
        equal_updates_small_better_optimisation=(
            small["equal_updates_train_loss"] < large["equal_updates_train_loss"]
        ),
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


# --- rendering ------------------------------------------------------------------------------


def render(ctx: SectionContext, cfg: Config, m: BatchSizes) -> Rendered:
    """Tables, figures, prose and verdict of the batch-size experiment."""
    return Rendered(
        experiment=(
            f"An MLP (hidden {cfg.hidden}) on {m.n_train} training images is trained with each "
            f"batch size in {m.sizes} for {cfg.epochs} epochs from the same initial weights with "
            f"{cfg.optimizer} (lr {cfg.lr:g}). Time per update is the median of "
            f"{cfg.timing_repeats} timed updates; gradient noise is estimated from "
            f"{cfg.noise_samples} minibatch gradients per batch size at the initial weights. "
            "'Optimisation' is the final training loss, 'generalisation' the validation accuracy. "
            f"A second budget gives every batch size {cfg.equal_updates} updates instead (columns "
            "marked 2nd)."
        ),
        verdict=verdict(cfg, m),
        tables=[_chapter_table(cfg, m), _detail_table(m)],
        figures=[_figure_costs(ctx, m), _figure_training(ctx, m)],
        notes=_notes(cfg, m),
    )


def verdict(cfg: Config, m: BatchSizes) -> Verdict:
    """How many of the chapter's five rows hold, smallest batch against largest."""
    sizes, ratio = m.sizes, m.update_time_ratio_large_small
    n_agree = sum(1 for v in m.agrees.values() if v)
    disagree = [a for a, v in m.agrees.items() if v is False]
    where = "this GPU" if m.device == "cuda" else f"this {m.device.upper()}"
    text = (
        f"{n_agree} of the chapter's 5 rows hold on {where} (batch {sizes[0]} vs {sizes[-1]}, "
        f"{cfg.epochs} epochs each)"
        + (f"; not {', '.join(disagree)}" if disagree else "")
        + (
            f" - an update of batch {sizes[-1]} takes {ratio:.1f}x as long as one of batch {sizes[0]}"
            if not m.agrees["time for one update"]
            else ""
        )
        + "."
    )
    return Verdict(text, True if n_agree == 5 else (None if n_agree >= 3 else False))


def _chapter_table(cfg: Config, m: BatchSizes) -> Table:
    small, large, sizes = m.small, m.large, m.sizes
    measured = [
        (
            f"{small['time_per_update_ms']:.3g} ms",
            f"{large['time_per_update_ms']:.3g} ms ({m.update_time_ratio_large_small:.1f}x)",
        ),
        (f"{small['time_per_epoch_s']:.3g} s", f"{large['time_per_epoch_s']:.3g} s"),
        (f"{small['gradient_noise']:.3g}", f"{large['gradient_noise']:.3g}"),
        (f"loss {small['train_loss']:.4f}", f"loss {large['train_loss']:.4f}"),
        (f"accuracy {small['val_acc']:.1%}", f"accuracy {large['val_acc']:.1%}"),
    ]
    return Table(
        caption=f"The chapter's table beside the measurements (smallest batch {sizes[0]}, "
        f"largest {sizes[-1]}; {m.n_train} training images, {cfg.optimizer} lr {cfg.lr:g}, "
        f"{cfg.epochs} epochs).",
        columns=[
            "aspect",
            "chapter: small batch",
            f"measured: batch {sizes[0]}",
            "chapter: large batch",
            f"measured: batch {sizes[-1]}",
            "agrees",
        ],
        rows=[
            [aspect, ws, ms, wl, ml, m.agrees[aspect]]
            for (aspect, ws, wl), (ms, ml) in zip(CHAPTER_TABLE, measured)
        ],
        mark_columns=["agrees"],
    )


def _detail_table(m: BatchSizes) -> Table:
    keys = ["batch_size", "updates_per_epoch", "time_per_update_ms", "time_per_epoch_s"]
    keys += ["gradient_noise", "relative_gradient_noise", "train_loss", "val_acc"]
    keys += ["equal_updates_epochs", "equal_updates_train_loss", "equal_updates_val_acc"]
    return Table(
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
        rows=[[p[k] for k in keys] for p in m.per_batch_size.values()],
        formats={
            "ms / update": ".3g",
            "s / epoch": ".3g",
            "train loss": ".4f",
            "val accuracy": ".1%",
            "epochs (2nd budget)": ".3g",
            "train loss (2nd)": ".4f",
            "val accuracy (2nd)": ".1%",
        },
    )


def _notes(cfg: Config, m: BatchSizes) -> list[str]:
    small, large, sizes, device = m.small, m.large, m.sizes, m.device
    return [
        f"With the same number of updates instead of the same epochs (second budget: "
        f"{cfg.equal_updates} updates each), batch {sizes[0]} ends with training loss "
        f"{small['equal_updates_train_loss']:.4f} and batch {sizes[-1]} with "
        f"{large['equal_updates_train_loss']:.4f}: "
        + (
            "small batches still optimise better."
            if m.equal_updates_small_better_optimisation
            else "large batches optimise better per update; the chapter's advantage of small "
            "batches is one of more updates per epoch."
        ),
        f"Time per update stays within {cfg.same_update_ratio:g}x of batch {sizes[0]} up to batch "
        f"{m.same_update_time_up_to_batch} here ({device.upper()}). The chapter's 'same time per "
        "update' assumes a GPU that processes a batch's examples in parallel"
        + ("." if device == "cuda" else "; a CPU thread does them one after another."),
    ]


def _figure_costs(ctx: SectionContext, m: BatchSizes) -> Figure:
    from trainlab.report.figures import PALETTE, legend, subplots

    per, sizes, n = m.per_batch_size, m.sizes, m.n_train
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
        theory = [scale * (1 / b - 1 / n) for b in bs]
        ax.loglog(bs, theory, "--", color="grey", lw=1, label="(1/B - 1/N) scaling")
        legend(ax)
    ax.set(title="Gradient noise E||g_B - g||²", xlabel="batch size", ylabel="squared norm")
    return ctx.save_figure(
        fig,
        "costs",
        "Cost and noise per batch size (log-log). The full batch has "
        "no gradient noise and is left off the right panel.",
        width=900,
    )


def _figure_training(ctx: SectionContext, m: BatchSizes) -> Figure:
    from trainlab.report.figures import PALETTE, legend, subplots

    per, sizes = m.per_batch_size, m.sizes
    fig, axes = subplots(2, width=4.6, height=3.4)
    ax = axes[0, 0]
    for i, b in enumerate(sizes):
        curve = m.curves[b]
        ax.plot(range(1, len(curve) + 1), curve, color=PALETTE[i % len(PALETTE)], label=f"B={b}")
    ax.set(title="Training loss per epoch", xlabel="epoch", ylabel="training loss", yscale="log")
    legend(ax)
    ax = axes[0, 1]
    ax.semilogx(sizes, [per[b]["train_acc"] for b in sizes], "o-", label="training accuracy")
    ax.semilogx(sizes, [per[b]["val_acc"] for b in sizes], "s-", label="validation accuracy")
    ax.set(title="Optimisation and generalisation", xlabel="batch size", ylabel="accuracy")
    legend(ax)
    return ctx.save_figure(
        fig,
        "training",
        "Training with each batch size for the same number of "
        "epochs: training loss, and final training and validation accuracy.",
        width=820,
    )
