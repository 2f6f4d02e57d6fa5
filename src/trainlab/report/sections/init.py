"""Section 2: weight initialisation (Glorot & Bengio 2010; He et al. 2015).

A deep MLP's activations keep their spread through the layers only if each layer's weights have
the right variance: N(0, 1) makes them saturate (sigmoid, tanh) or explode (ReLU), N(0, 0.01²)
makes them vanish, Xavier's 2/(fan_in + fan_out) suits tanh and He's 2/fan_in suits ReLU. Measured
here with :func:`trainlab.nn.activation_variances` at initialisation on a batch of real digits, and
by training each combination of scheme and activation with the same optimizer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from trainlab.errors import ConfigError, TrainingDiverged
from trainlab.nn.mlp import ACTIVATIONS, mlp
from trainlab.report._models import fit_classifier, loss_and_accuracy, subset
from trainlab.report.context import SectionContext
from trainlab.report.result import Figure, Rendered, Table, Verdict

KEY = "init"
TITLE = "Initialisation"
CLAIM = (
    "How the weights start decides whether a deep network trains. Drawn from N(0, 1) they make "
    "activations saturate (sigmoid, tanh) or explode (ReLU); from N(0, 0.01²) the signal vanishes "
    "layer by layer. Xavier initialisation (variance 2/(fan_in + fan_out)) keeps the variance of "
    "activations roughly constant through the layers for tanh, He initialisation (2/fan_in) does "
    "so for ReLU, and networks started that way train well."
)

# label -> (registered initializer, kwargs)
SCHEMES: dict[str, tuple[str, dict[str, Any]]] = {
    "N(0, 1)": ("normal", {"std": 1.0}),
    "N(0, 0.01²)": ("normal", {"std": 0.01}),
    "Xavier normal": ("xavier_normal", {}),
    "Xavier uniform": ("xavier_uniform", {}),
    "He normal": ("he_normal", {}),
}
# how the verdict names an activation of trainlab.nn.mlp.ACTIVATIONS (default: its name)
ACT_LABELS = {"relu": "ReLU"}
NAIVE = ("N(0, 1)", "N(0, 0.01²)")


@dataclass
class Config:
    """Settings of the initialisation experiment.

    Attributes:
        depth: hidden layers of the MLP, each ``width`` wide.
        activations: activation functions compared.
        schemes: initialisation schemes compared (labels of ``SCHEMES``).
        epochs, batch_size, optimizer, lr: the training run of every combination.
        variance_batch: validation images forwarded to measure activation variances.
        max_train: at most this many training images (a stratified subset), which bounds the
            time on larger data sets such as MNIST.
    """

    depth: int = 8
    width: int = 256
    activations: list[str] = field(default_factory=lambda: ["sigmoid", "tanh", "relu"])
    schemes: list[str] = field(default_factory=lambda: list(SCHEMES))
    epochs: int = 15
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.05
    variance_batch: int = 512
    max_train: int = 2000


def default_config(quick: bool) -> Config:
    return Config(depth=6, width=128, epochs=4) if quick else Config()


# --- measurement ----------------------------------------------------------------------------


@dataclass
class Initialisation:
    """What the initialisation experiment measured.

    Attributes:
        n_train, n_probe: training images, and validation images forwarded for the variances.
        results: activation -> scheme label -> the run's numbers (per-layer variances at
            initialisation, training curve, final loss and accuracy, divergence, saturation).
        best_training_loss: activation -> the scheme with the lowest final training loss.
        scaled_best, naive_best: for tanh and ReLU, the lowest training loss of the scaled
            schemes (Xavier, He) and of the naive ones (N(0, 1), N(0, 0.01²)); inf if all diverged.
        scaled_init_beats_naive: activation -> ``scaled_best < naive_best``.
    """

    n_train: int
    n_probe: int
    results: dict[str, dict[str, dict[str, Any]]]
    best_training_loss: dict[str, str]
    scaled_best: dict[str, float]
    naive_best: dict[str, float]
    scaled_init_beats_naive: dict[str, bool]

    def numbers(self) -> dict[str, Any]:
        return {
            "results": self.results,
            "best_training_loss": self.best_training_loss,
            "scaled_init_beats_naive": self.scaled_init_beats_naive,
        }


def measure(ctx: SectionContext, cfg: Config) -> Initialisation:
    """Measure activation variances at initialisation and train every (activation, scheme).

    Returns:
        The :class:`Initialisation` numbers.

    Raises:
        ConfigError: an unknown scheme or activation.
    """
    unknown = [s for s in cfg.schemes if s not in SCHEMES]
    if unknown:
        raise ConfigError(f"unknown scheme(s) {unknown}; choose from {list(SCHEMES)}")
    for act in cfg.activations:
        ACTIVATIONS.get(act)  # a ConfigError that lists the known names
    (x_all, y_all), val = ctx.data.flat()
    train = subset(x_all, y_all, cfg.max_train, ctx.seed)
    probe = val[0][: cfg.variance_batch]
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for act in cfg.activations:
        with ctx.step(f"{act}: {len(cfg.schemes)} schemes, {cfg.epochs} epochs each"):
            results[act] = {
                label: _measure_one(ctx, cfg, act, label, train, val, probe)
                for label in cfg.schemes
            }
    scaled, naive = {}, {}
    for act in ("tanh", "relu"):
        if act in results:
            r = results[act]
            scaled[act] = min((_loss(r[k]) for k in r if k not in NAIVE), default=math.inf)
            naive[act] = min((_loss(r[k]) for k in r if k in NAIVE), default=math.inf)
    return Initialisation(
        n_train=len(train[1]),
        n_probe=len(probe),
        results=results,
        best_training_loss={act: _best(r, "train_loss") for act, r in results.items()},
        scaled_best=scaled,
        naive_best=naive,
        scaled_init_beats_naive={act: scaled[act] < naive[act] for act in scaled},
    )


def _measure_one(
    ctx: SectionContext,
    cfg: Config,
    act: str,
    label: str,
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor],
    probe: Tensor,
) -> dict[str, Any]:
    """One (activation, scheme): variances at initialisation, then a training run."""
    from trainlab.nn import activation_variances, init_weights

    scheme, kwargs = SCHEMES[label]
    torch.manual_seed(ctx.seed)
    model = init_weights(mlp(train[0].shape[1], [cfg.width] * cfg.depth, 10, act), scheme, **kwargs)
    variances = activation_variances(model, probe)
    saturated = _saturated_share(model, probe, act)
    diverged = False
    try:
        hist = fit_classifier(
            ctx,
            model,
            train,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            optimizer=cfg.optimizer,
            optimizer_kwargs={"lr": cfg.lr},
        )
        curve = hist["train_loss"]
        train_loss, _ = loss_and_accuracy(model, *train)
        _, val_acc = loss_and_accuracy(model, *val)
    except TrainingDiverged:
        diverged, curve, train_loss, val_acc = True, [], math.nan, math.nan
    first, last = variances[0], variances[-1]
    return {
        "variances": variances,
        "first_layer_variance": first,
        "last_layer_variance": last,
        "log10_last_over_first": _log10_ratio(last, first),
        "train_curve": curve,
        "train_loss": train_loss,
        "val_acc": val_acc,
        "diverged": diverged,
        "saturated_last_layer": saturated,
    }


def _loss(r: dict[str, Any]) -> float:
    return math.inf if r["diverged"] or not math.isfinite(r["train_loss"]) else r["train_loss"]


@torch.no_grad()
def _saturated_share(model: torch.nn.Module, x: torch.Tensor, act: str) -> float | None:
    """Share of the last hidden layer's outputs within 1 % of the activation's limits."""
    if act not in ("sigmoid", "tanh"):
        return None
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Sigmoid, torch.nn.Tanh))]
    out: list[torch.Tensor] = []
    handle = layers[-1].register_forward_hook(lambda _m, _i, o: out.append(o))
    try:
        model(x)
    finally:
        handle.remove()
    a = out[0]
    sat = (a < 0.01) | (a > 0.99) if act == "sigmoid" else a.abs() > 0.99
    return float(sat.float().mean())


def _log10_ratio(last: float, first: float) -> float:
    if first <= 0 or not math.isfinite(first):
        return math.nan
    if last <= 0:
        return -math.inf
    if not math.isfinite(last):
        return math.inf
    return math.log10(last / first)


def _best(runs: dict[str, dict[str, Any]], key: str) -> str:
    finite = {k: v[key] for k, v in runs.items() if math.isfinite(v[key])}
    return min(finite, key=finite.__getitem__) if finite else ""


# --- rendering ------------------------------------------------------------------------------


def render(ctx: SectionContext, cfg: Config, m: Initialisation) -> Rendered:
    """Table, figures, prose and verdict of the initialisation experiment."""
    return Rendered(
        experiment=(
            f"An MLP with {cfg.depth} hidden layers of {cfg.width} units (biases zero) is "
            f"initialised with each scheme and each activation ({', '.join(cfg.activations)}). "
            f"The variance of every hidden layer's activations is measured on {m.n_probe} "
            f"validation images; then each network trains for {cfg.epochs} epochs on {m.n_train:,} "
            "training images with "
            f"{cfg.optimizer} (lr {cfg.lr:g}, batch {cfg.batch_size}) from that initialisation."
        ),
        verdict=verdict(cfg, m),
        tables=[_table(cfg, m)],
        figures=[_variance_figure(ctx, m), _training_figure(ctx, cfg, m)],
        notes=_notes(cfg, m),
    )


def verdict(cfg: Config, m: Initialisation) -> Verdict:
    """Do Xavier/He train tanh/ReLU networks better than N(0, σ²), and keep the variance?"""
    checks, acts = m.scaled_init_beats_naive, list(m.scaled_init_beats_naive)
    text = (
        (
            f"After {cfg.epochs} epochs Xavier/He reach training loss "
            + " and ".join(f"{_fmt_loss(m.scaled_best[a])} ({ACT_LABELS.get(a, a)})" for a in acts)
            + " while the best N(0, σ²) reaches "
            + " and ".join(_fmt_loss(m.naive_best[a]) for a in acts)
        )
        if acts
        else "No tanh or ReLU run was configured"
    )
    relu = m.results.get("relu", {})
    if "He normal" in relu and "N(0, 0.01²)" in relu:
        he, small = relu["He normal"], relu["N(0, 0.01²)"]
        text += (
            f", and He keeps the ReLU activation variance within a factor "
            f"{10 ** abs(he['log10_last_over_first']):.2g} over {cfg.depth} layers where "
            f"N(0, 0.01²) shrinks it by a factor "
            + f"{10 ** -small['log10_last_over_first']:.0e}".replace("e+", "e")
        )
    n_ok = sum(checks.values())
    agrees = (True if n_ok == len(checks) else None if n_ok else False) if checks else None
    return Verdict(text + ".", agrees)


def _fmt_loss(v: float) -> str:
    return "divergence" if math.isinf(v) else f"{v:.3f}"


def _table(cfg: Config, m: Initialisation) -> Table:
    rows = [
        [act, label, r["first_layer_variance"], r["last_layer_variance"]]
        + [r["log10_last_over_first"], r["saturated_last_layer"]]
        + ([r["train_loss"], r["val_acc"]] if not r["diverged"] else ["diverged", None])
        for act, runs in m.results.items()
        for label, r in runs.items()
    ]
    return Table(
        caption=f"Per activation and scheme: activation variance after the first and the last of "
        f"{cfg.depth} hidden layers at initialisation, and the result of {cfg.epochs} epochs of "
        f"{cfg.optimizer} (lr {cfg.lr:g}). 'diverged' means the loss overflowed.",
        columns=[
            "activation",
            "initialisation",
            "variance, layer 1",
            f"variance, layer {cfg.depth}",
            "log10 ratio",
            f"saturated, layer {cfg.depth}",
            "train loss",
            "val accuracy",
        ],
        rows=rows,
        formats={
            "log10 ratio": "+.1f",
            f"saturated, layer {cfg.depth}": ".0%",
            "train loss": ".4f",
            "val accuracy": ".1%",
        },
    )


def _notes(cfg: Config, m: Initialisation) -> list[str]:
    notes = []
    best = m.best_training_loss
    if "sigmoid" in m.results and best.get("sigmoid"):
        b = best["sigmoid"]
        notes.append(
            f"With sigmoid the best training loss after {cfg.epochs} epochs is "
            f"{m.results['sigmoid'][b]['train_loss']:.3f} ({b}): this deep sigmoid network trains "
            "slowly with every scheme (as Glorot and Bengio observed)."
        )
    sat = [
        f"{act} {label}: {r['saturated_last_layer']:.0%}"
        for act, runs in m.results.items()
        for label, r in runs.items()
        if r["saturated_last_layer"] is not None and r["saturated_last_layer"] > 0.5
    ]
    if sat:
        notes.append(
            "More than half the units of the last hidden layer are saturated (gradient "
            "near zero) at initialisation in: " + "; ".join(sat) + ". Their variance looks "
            "steady only because the outputs are stuck near the activation's limits."
        )
    return notes


def _variance_figure(ctx: SectionContext, m: Initialisation) -> Figure:
    from trainlab.report.figures import PALETTE, legend_below, subplots

    fig, axes = subplots(len(m.results), width=3.9, height=3.3)
    for ax, (act, runs) in zip(axes[0], m.results.items()):
        for i, (label, r) in enumerate(runs.items()):
            v = [x if math.isfinite(x) and x > 0 else float("nan") for x in r["variances"]]
            ax.semilogy(
                range(1, len(v) + 1), v, "o-", ms=3, color=PALETTE[i % len(PALETTE)], label=label
            )
        ax.set(title=f"{act}", xlabel="hidden layer", ylabel="activation variance")
    legend_below(fig, source=axes[0, 0])
    return ctx.save_figure(
        fig,
        "variance",
        "Variance of each hidden layer's activations at "
        "initialisation, on real digits (log scale).",
        width=900,
    )


def _training_figure(ctx: SectionContext, cfg: Config, m: Initialisation) -> Figure:
    from trainlab.report.figures import PALETTE, legend_below, subplots

    fig, axes = subplots(len(m.results), width=3.9, height=3.3)
    for ax, (act, runs) in zip(axes[0], m.results.items()):
        for i, (label, r) in enumerate(runs.items()):
            color = PALETTE[i % len(PALETTE)]
            if r["train_curve"]:
                curve = r["train_curve"]
                ax.semilogy(range(1, len(curve) + 1), curve, color=color, label=label)
            else:  # keep the colour in the legend for a diverged run
                ax.plot([], [], color=color, label=label)
        ax.set(title=f"{act}", xlabel="epoch", ylabel="training loss")
    legend_below(fig, source=axes[0, -1])
    return ctx.save_figure(
        fig,
        "training",
        f"Training loss per epoch ({cfg.optimizer}, lr "
        f"{cfg.lr:g}; log scale); a missing line diverged.",
        width=900,
    )
