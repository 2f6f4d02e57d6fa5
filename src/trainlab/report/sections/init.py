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

from trainlab.errors import TrainingDiverged
from trainlab.report._models import cross_entropy, loss_and_accuracy, mlp, subset
from trainlab.report.context import SectionContext
from trainlab.report.figures import PALETTE, legend_below, subplots
from trainlab.report.result import SectionResult, Table, Verdict

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
ACT_NAMES = {"relu": "ReLU", "tanh": "tanh", "sigmoid": "sigmoid"}
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


def run(ctx: SectionContext, cfg: Config) -> SectionResult:
    from trainlab.nn import activation_variances, init_weights
    from trainlab.train import fit

    unknown = [s for s in cfg.schemes if s not in SCHEMES]
    if unknown:
        from trainlab.errors import ConfigError

        raise ConfigError(f"unknown scheme(s) {unknown}; choose from {list(SCHEMES)}")
    (x_all, y_all), (x_val, y_val) = ctx.data.flat()
    x_tr, y_tr = subset(x_all, y_all, cfg.max_train, ctx.seed)
    probe = x_val[: cfg.variance_batch]
    results: dict[str, dict[str, dict[str, Any]]] = {}
    rows = []
    for act in cfg.activations:
        results[act] = {}
        with ctx.step(f"{act}: {len(cfg.schemes)} schemes, {cfg.epochs} epochs each"):
            for label in cfg.schemes:
                scheme, kwargs = SCHEMES[label]
                torch.manual_seed(ctx.seed)
                model = init_weights(
                    mlp(x_tr.shape[1], [cfg.width] * cfg.depth, activation=act), scheme, **kwargs
                )
                variances = activation_variances(model, probe)
                saturated = _saturated_share(model, probe, act)
                tc = ctx.train_config(
                    epochs=cfg.epochs,
                    batch_size=cfg.batch_size,
                    optimizer=cfg.optimizer,
                    optimizer_kwargs={"lr": cfg.lr},
                    restore_best=False,
                )
                diverged = False
                try:
                    hist = fit(model, cross_entropy, (x_tr, y_tr), None, tc)
                    curve = hist["train_loss"]
                    train_loss, _ = loss_and_accuracy(model, x_tr, y_tr)
                    _, val_acc = loss_and_accuracy(model, x_val, y_val)
                except TrainingDiverged:
                    diverged, curve, train_loss, val_acc = True, [], math.nan, math.nan
                first, last = variances[0], variances[-1]
                spread = _log10_ratio(last, first)
                results[act][label] = {
                    "variances": variances,
                    "first_layer_variance": first,
                    "last_layer_variance": last,
                    "log10_last_over_first": spread,
                    "train_curve": curve,
                    "train_loss": train_loss,
                    "val_acc": val_acc,
                    "diverged": diverged,
                    "saturated_last_layer": saturated,
                }
                rows.append(
                    [
                        act,
                        label,
                        first,
                        last,
                        spread,
                        saturated,
                        train_loss if not diverged else "diverged",
                        val_acc if not diverged else None,
                    ]
                )

    best_train = {act: _best(r, "train_loss") for act, r in results.items()}
    checks, scaled_best, naive_best = {}, {}, {}
    for act in ("tanh", "relu"):
        if act not in results:
            continue
        r = results[act]
        scaled_best[act] = min((_loss(r[k]) for k in r if k not in NAIVE), default=math.inf)
        naive_best[act] = min((_loss(r[k]) for k in r if k in NAIVE), default=math.inf)
        checks[act] = scaled_best[act] < naive_best[act]
    n_ok = sum(checks.values())
    acts = list(checks)
    text = (
        (
            f"After {cfg.epochs} epochs Xavier/He reach training loss "
            + " and ".join(f"{_fmt_loss(scaled_best[a])} ({ACT_NAMES.get(a, a)})" for a in acts)
            + " while the best N(0, σ²) reaches "
            + " and ".join(_fmt_loss(naive_best[a]) for a in acts)
        )
        if acts
        else "No tanh or ReLU run was configured"
    )
    if "relu" in results and "He normal" in results["relu"] and "N(0, 0.01²)" in results["relu"]:
        he, small = results["relu"]["He normal"], results["relu"]["N(0, 0.01²)"]
        text += (
            f", and He keeps the ReLU activation variance within a factor "
            f"{10 ** abs(he['log10_last_over_first']):.2g} over {cfg.depth} layers where "
            f"N(0, 0.01²) shrinks it by a factor "
            + f"{10 ** -small['log10_last_over_first']:.0e}".replace("e+", "e")
        )
    text += "."
    agrees = (True if n_ok == len(checks) else None if n_ok else False) if checks else None
    numbers = {
        "results": results,
        "best_training_loss": best_train,
        "scaled_init_beats_naive": checks,
    }
    figs = [_variance_figure(ctx, cfg, results), _training_figure(ctx, cfg, results)]
    table = Table(
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
    return SectionResult(
        number=ctx.number,
        key=KEY,
        title=TITLE,
        claim=CLAIM,
        experiment=(
            f"An MLP with {cfg.depth} hidden layers of {cfg.width} units (biases zero) is "
            f"initialised with each scheme and each activation ({', '.join(cfg.activations)}). "
            f"The variance of every hidden layer's activations is measured on {len(probe)} "
            f"validation images; then each network trains for {cfg.epochs} epochs on {len(y_tr):,} "
            "training images with "
            f"{cfg.optimizer} (lr {cfg.lr:g}, batch {cfg.batch_size}) from that initialisation."
        ),
        figures=figs,
        tables=[table],
        verdict=Verdict(text, agrees),
        numbers=numbers,
        notes=_notes(results, best_train, cfg),
    )


def _loss(r: dict[str, Any]) -> float:
    return math.inf if r["diverged"] or not math.isfinite(r["train_loss"]) else r["train_loss"]


def _fmt_loss(v: float) -> str:
    return "divergence" if math.isinf(v) else f"{v:.3f}"


def _notes(results: dict[str, Any], best: dict[str, str], cfg: Config) -> list[str]:
    notes = []
    if "sigmoid" in results and best.get("sigmoid"):
        b = best["sigmoid"]
        notes.append(
            f"With sigmoid the best training loss after {cfg.epochs} epochs is "
            f"{results['sigmoid'][b]['train_loss']:.3f} ({b}): this deep sigmoid network trains "
            "slowly with every scheme (as Glorot and Bengio observed)."
        )
    sat = [
        f"{act} {label}: {r['saturated_last_layer']:.0%}"
        for act, runs in results.items()
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


def _variance_figure(ctx: SectionContext, cfg: Config, results: dict[str, Any]) -> Any:
    fig, axes = subplots(len(results), width=3.9, height=3.3)
    for ax, (act, runs) in zip(axes[0], results.items()):
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


def _training_figure(ctx: SectionContext, cfg: Config, results: dict[str, Any]) -> Any:
    fig, axes = subplots(len(results), width=3.9, height=3.3)
    for ax, (act, runs) in zip(axes[0], results.items()):
        for i, (label, r) in enumerate(runs.items()):
            if r["train_curve"]:
                ax.semilogy(
                    range(1, len(r["train_curve"]) + 1),
                    r["train_curve"],
                    color=PALETTE[i % len(PALETTE)],
                    label=label,
                )
            else:  # keep the colour in the legend for a diverged run
                ax.plot([], [], color=PALETTE[i % len(PALETTE)], label=label)
        ax.set(title=f"{act}", xlabel="epoch", ylabel="training loss")
    legend_below(fig, source=axes[0, -1])
    return ctx.save_figure(
        fig,
        "training",
        f"Training loss per epoch ({cfg.optimizer}, lr "
        f"{cfg.lr:g}; log scale); a missing line diverged.",
        width=900,
    )
