"""The findings: which of the chapter's causes the records show, with evidence and a remedy.

Each rule below reads the :class:`~trainlab.doctor.signals.Signals` of a run and returns a
:class:`Finding` or nothing; its docstring states the rule and the thresholds (all in
:data:`THRESHOLDS`, so they can be read, cited and changed in one place). :func:`find_causes` runs
them all and orders the findings: problems first, then warnings, then information; within a
severity by :data:`PRIORITY`, which follows the chapter's causal chain: badly scaled inputs
before the learning rate they force; an initialisation that makes gradients explode or vanish
before the learning rate (the structure fails whatever the step size); a run that diverges before
the dead units its divergence left behind; a learning rate far too small before the plateau it
leaves; negative curvature (a saddle) before a minimum or model bias. While an optimisation cause
(:data:`OPTIMISATION`) is a problem, model bias is not reported: a training loss kept high by
failing optimisation says nothing of the model's capacity; likewise no saddle point or local
minimum beside a problem in the steps or gradients (:data:`MECHANICS`), which explains the
stall. ``healthy`` is added, first, when no rule found a problem.

The chapter's framework decides where it can: the training loss first. High training loss →
model bias or optimisation (vanishing/exploding gradients, dead units, a learning rate far off,
a saddle point or a local minimum, told apart by the gradients and the Hessian); low training loss
but high and rising validation loss → overfitting; validation rising while training still falls
→ overfitting too, however high the training loss (noisy or shuffled labels). Where the records
cannot settle a case, the finding says which extra run would.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trainlab.doctor.records import as_float
from trainlab.doctor.signals import PLAIN_RULES, Signals

CAUSES = (
    "lr_too_high", "lr_too_low", "vanishing_gradients", "exploding_gradients", "dead_units",
    "saddle_point", "local_minimum", "ill_conditioned", "model_bias", "overfitting", "batch_size",
    "healthy",
)  # fmt: skip
SEVERITIES = ("problem", "warning", "info")

#: Order of causes within a severity (see the module docstring).
PRIORITY = (
    "ill_conditioned", "exploding_gradients", "vanishing_gradients", "lr_too_high", "dead_units",
    "lr_too_low", "saddle_point", "local_minimum", "model_bias", "overfitting", "batch_size",
    "healthy",
)  # fmt: skip

#: Causes of an optimisation failure: while one is a problem, model bias cannot be judged.
OPTIMISATION = PRIORITY[: PRIORITY.index("model_bias")]

#: Causes in how the steps or the gradients behave: while one is a problem, a stall says nothing
#: of a critical point (saddle or minimum).
MECHANICS = PRIORITY[: PRIORITY.index("saddle_point")]

#: Every threshold the rules use.
THRESHOLDS: dict[str, float] = {
    # the training loss against the best constant output (or the initial loss)
    "high_loss": 0.75,  # final / reference ≥ this: the training loss is high
    "some_loss": 0.4,  # ≥ this: not low either (warnings)
    "stalled": 0.02,  # the loss fell by less than 2% over the second half: stalled
    "still_falling": 0.1,  # ≥ 10% over the second half: still learning, train longer
    # learning rate too high
    "loss_rise": 3.0,  # a later loss ≥ 3x the first one
    "rho_first": 10.0,  # stability ratio at the first check ≥ 10 (plain SGD/momentum)
    "rho_high": 2.0,  # stability ratio ≥ 2 at the largest usable check
    "update_high": 0.1,  # median layer update/weight ratio ≥ 0.1 per step
    # learning rate too low
    "update_low": 1e-4,  # 75th percentile of the median layer update/weight ratio below this
    "rho_low": 2e-3,  # plain SGD: stability ratio below this everywhere
    # gradients through depth
    "vanish_ratio": 1e-3,  # first / last weight layer gradient norm at the start
    "saturated": 0.5,  # share of saturated sigmoid/tanh pre-activations
    "explode_growth": 100.0,  # last weight layer's output std / input RMS at the first probe
    "explode_ratio": 1e3,  # first / last weight layer gradient norm at the start
    # dead units
    "dead": 0.5,  # share of ReLU-family units dead on the whole probe batch
    "dead_layer": 0.9,  # ... or in one layer
    "dead_warning": 0.25,
    # curvature at the end
    "negative_curvature": 0.1,  # λ_min ≤ -0.1 · λ_max: a direction that lowers the loss
    # input scales
    "scale_spread": 100.0,  # largest / median feature RMS
    "offset": 30.0,  # |mean| / std of a feature
    "magnitude": 30.0,  # median feature RMS beyond 30 or below 1/30
    "low_loss": 0.1,  # final / reference below this: trained well despite the scales
    # overfitting
    "val_rise": 0.1,  # the last validation loss ≥ 10% above its best
    "val_gap": 2.0,  # the last validation loss ≥ 2x the last training loss
    # regularisation holding the model back
    "eval_gain": 0.8,  # validation (dropout off) ≤ 0.8x the training loss (dropout on)
    # batch size
    "noise_factor": 4.0,  # batch ≤ B_simple / 4 or ≥ 4 · B_simple is worth a remark
    # capacity, for model bias against a local minimum
    "overparametrised": 2.0,  # parameters ≥ 2x training examples x outputs: it could fit them
}
T = THRESHOLDS


@dataclass
class Finding:
    """One cause the records point to.

    Attributes:
        cause: one of :data:`CAUSES`.
        severity: ``problem``, ``warning`` or ``info``.
        summary: one sentence with the key numbers.
        evidence: the numbers behind it, each ``{"what", "value", "step"|"epoch", "threshold"}``.
        remedy: what to try, in the chapter's words and ours.
        settle: the extra run that would settle an ambiguous case (or ``None``).
    """

    cause: str
    severity: str
    summary: str
    evidence: list[dict[str, Any]] = field(default_factory=list)
    remedy: str = ""
    settle: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "cause": self.cause,
            "severity": self.severity,
            "summary": self.summary,
            "evidence": self.evidence,
            "remedy": self.remedy,
            "settle": self.settle,
        }


def _ev(what: str, value: Any, *, step: Any = None, epoch: Any = None,
        threshold: Any = None) -> dict[str, Any]:  # fmt: skip
    e: dict[str, Any] = {"what": what, "value": value}
    if step is not None:
        e["step"] = int(step)
    if epoch is not None:
        e["epoch"] = int(epoch)
    if threshold is not None:
        e["threshold"] = threshold
    return e


def _g(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def _high(s: Signals, level: str = "high_loss") -> bool:
    r = s.loss_ratio
    return r is not None and r >= T[level]


def _stalled(s: Signals) -> bool:
    gain = s.late_gain
    return gain is not None and gain < T["stalled"]


def _loss_evidence(s: Signals) -> list[dict[str, Any]]:
    ev = []
    if s.loss_first is not None:
        ev.append(_ev("first training loss", s.loss_first, step=s.first_step))
    if s.loss_end is not None:
        ev.append(_ev("training loss, last fifth of the run", s.loss_end, step=s.last_step))
    if s.reference is not None and s.loss_ratio is not None:
        ev.append(_ev(f"final loss / {s.reference_kind} ({s.reference:.4g})", s.loss_ratio,
                      threshold=T["high_loss"]))  # fmt: skip
    return ev


# --- the rules -------------------------------------------------------------------------------


def ill_conditioned(s: Signals) -> Finding | None:
    """Badly scaled inputs make the error surface an elongated valley.

    Rule: on the probe batch, the largest input feature RMS is ≥ ``scale_spread`` (100) times the
    median one, or a feature's |mean| is ≥ ``offset`` (30) times its std, or the median feature
    RMS is beyond ``magnitude`` (30, or below 1/30). A problem unless the run still reached a
    training loss below ``low_loss`` (0.1) of the reference; then a warning.
    """
    inp = s.input
    if not inp:
        return None
    spread, offset, mag = (as_float(inp.get(k)) for k in ("scale_spread", "offset", "rms_median"))
    reasons, ev = [], []
    step = s.probe_first_step
    if spread >= T["scale_spread"]:
        reasons.append(f"the largest feature RMS is {spread:.3g}x the median one")
        ev.append(_ev("input scale spread (max/median feature RMS)", spread, step=step,
                      threshold=T["scale_spread"]))  # fmt: skip
    if offset >= T["offset"]:
        reasons.append(f"a feature's mean is {offset:.3g} standard deviations from 0")
        ev.append(_ev("input offset (max |mean|/std)", offset, step=step, threshold=T["offset"]))
    if mag >= T["magnitude"] or 0 < mag <= 1 / T["magnitude"]:
        reasons.append(f"the median feature RMS is {mag:.3g}")
        ev.append(_ev("median input feature RMS", mag, step=step, threshold=T["magnitude"]))
    if not reasons:
        return None
    ratio = s.loss_ratio
    severity = "warning" if ratio is not None and ratio < T["low_loss"] else "problem"
    if s.rho_max is not None:
        ev.append(_ev("stability ratio ρ (1 = edge of stability)", s.rho_max, step=s.rho_max_step))
    return Finding(
        "ill_conditioned", severity,
        f"The inputs are badly scaled ({'; '.join(reasons)}): the loss surface is an elongated "
        f"valley, and a learning rate the steep directions allow crawls along the flat ones "
        f"(training loss {_g(s.loss_end)}).",
        ev + _loss_evidence(s),
        "Normalise the features (the chapter's feature normalisation: subtract each dimension's "
        "mean and divide by its standard deviation, computed on the training data), or add batch "
        "normalisation after the input; an adaptive optimizer (Adam, RMSProp) also rescales each "
        "parameter's steps. Then the learning rate can be raised.",
    )  # fmt: skip


def exploding_gradients(s: Signals) -> Finding | None:
    """Activations and gradients grow layer by layer from the start (an initialisation too large).

    Rule: at the first probe the last weight layer's output std is ≥ ``explode_growth`` (100)
    times the inputs' RMS, or at the start the first weight layer's gradient is ≥
    ``explode_ratio`` (1000) times the last one's. A problem when the run diverged or its loss
    stayed high (≥ ``high_loss`` of the reference) or rose; a warning otherwise.
    """
    ev = []
    if s.growth is not None and s.growth >= T["explode_growth"]:
        stds = ", ".join(f"{v:.3g}" for v in s.growth_layers)
        ev.append(_ev("last weight layer's output std / input RMS", s.growth,
                      step=s.probe_first_step, threshold=T["explode_growth"]))  # fmt: skip
        ev.append(_ev(f"output std of each weight layer: {stds}", s.growth_layers[-1],
                      step=s.probe_first_step))  # fmt: skip
    if s.grad_ratio_init is not None and s.grad_ratio_init >= T["explode_ratio"]:
        ev.append(_ev("gradient norm, first / last weight layer", s.grad_ratio_init,
                      step=s.first_step, threshold=T["explode_ratio"]))  # fmt: skip
    if not ev:
        return None
    bad = s.diverged_step is not None or _high(s) or _rose(s)
    if s.grad_norm_first is not None:
        ev.append(_ev("gradient norm", s.grad_norm_first, step=s.first_step))
    if s.diverged_step is not None:
        ev.append(_ev("the loss or gradient became non-finite", None, step=s.diverged_step))
    return Finding(
        "exploding_gradients", "problem" if bad else "warning",
        f"Activations grow through the layers from the start (the last layer's output is "
        f"{_g(s.growth)}x the input scale at step {s.probe_first_step}): the initial weights are "
        f"too large, so gradients explode"
        + (f" and the run diverged at step {s.diverged_step}." if s.diverged_step else "."),
        ev + _loss_evidence(s),
        "Initialise so that each layer keeps the variance of its input (He for ReLU, Xavier/Glorot "
        "for tanh and sigmoid: the chapter's initialisation), add batch normalisation, and clip the "
        "gradient norm; a smaller learning rate alone only delays the divergence.",
    )  # fmt: skip


def _rose(s: Signals) -> bool:
    return (
        s.loss_first is not None
        and s.loss_max_later is not None
        and s.loss_max_later >= T["loss_rise"] * s.loss_first
    )


def _unscaled_targets(s: Signals) -> tuple[float, float, float] | None:
    """``(rms, mean, std)`` of the regression targets when they are far from unit scale (RMS
    beyond ``magnitude``, 30 or 1/30, or |mean|/std ≥ ``offset``, 30); else, or for class
    labels, ``None``."""
    t = s.target or {}
    rms, mean, std = (as_float(t.get(k)) for k in ("rms", "mean", "std"))
    if not (math.isfinite(rms) and rms > 0):
        return None
    far = rms >= T["magnitude"] or rms <= 1.0 / T["magnitude"]
    offset = abs(mean) / std if std > 0 else 0.0
    return (rms, mean, std) if far or offset >= T["offset"] else None


def lr_too_high(s: Signals) -> Finding | None:
    """The learning rate is beyond what the curvature allows: the loss oscillates or diverges.

    Rule, any of: the loss or gradient became non-finite; a later loss ≥ ``loss_rise`` (3) times
    the first; for plain SGD/momentum the stability ratio ρ = lr·λ_max/(2 + 2β) at the first
    check ≥ ``rho_first`` (10); ρ ≥ ``rho_high`` (2) at the largest usable check (adaptive
    optimizers: after step 10, when their statistics mean something) while the loss did not fall
    below ``some_loss`` (0.4) of the reference; or, for adaptive optimizers (whose ρ is noisy),
    the median layer's update/weight ratio ≥ ``update_high`` (0.1) per step (plain SGD's ratio is
    left out: near an optimum at zero its minibatch noise alone makes it large). Non-finite or
    rising losses are problems; the other signs are problems when the final loss is high
    (≥ ``high_loss``), else warnings. Regression targets far from unit scale
    (:func:`_unscaled_targets`) are named beside it, their standardisation the first remedy.
    """
    ev: list[dict[str, Any]] = []
    strong = False
    if s.diverged_step is not None or s.nonfinite:
        ev.append(_ev("the loss or gradient became non-finite", None, step=s.diverged_step))
        strong = True
    if _rose(s):
        ev.append(_ev("largest later loss / first loss", s.loss_max_later / s.loss_first,  # type: ignore[operator]
                      step=s.loss_max_step, threshold=T["loss_rise"]))  # fmt: skip
        strong = True
    plain = s.rule in PLAIN_RULES
    if plain and s.rho_first is not None and s.rho_first >= T["rho_first"]:
        ev.append(_ev("stability ratio ρ = lr·λ_max/(2+2β) at the start", s.rho_first,
                      step=s.rho_first_step, threshold=T["rho_first"]))  # fmt: skip
    if s.rho_max is not None and s.rho_max >= T["rho_high"] and _high(s, "some_loss"):
        ev.append(_ev("largest stability ratio ρ (1 = edge of stability)", s.rho_max,
                      step=s.rho_max_step, threshold=T["rho_high"]))  # fmt: skip
    if not plain and s.update_p75 is not None and s.update_p75 >= T["update_high"]:
        ev.append(_ev("update/weight ratio per step (median layer, 75th percentile)",
                      s.update_p75, threshold=T["update_high"]))  # fmt: skip
    if not ev:
        return None
    severity = "problem" if strong or _high(s) else "warning"
    lr = f" (lr {s.lr:g})" if s.lr is not None else ""
    targets = _unscaled_targets(s)
    scale = ""
    if targets is not None:
        rms, mean, std = targets
        ev += [_ev("regression targets' RMS", rms, threshold=T["magnitude"]),
               _ev("regression targets' mean", mean), _ev("regression targets' std", std)]  # fmt: skip
        scale = (
            f" The regression targets are far from unit scale (mean {mean:.3g}, std {std:.3g}), "
            "and every gradient is as large: standardise them (and undo it on the predictions) "
            "before tuning the learning rate."
        )
    what = (
        f"diverged at step {s.diverged_step}" if s.diverged_step is not None
        else "oscillates instead of falling" if _rose(s) or _high(s)
        else "trains, but at the edge of instability"
    )  # fmt: skip
    return Finding(
        "lr_too_high", severity,
        f"The learning rate{lr} is too large for the loss surface: the loss {what}"
        + (f"; its steps are {s.rho_first:.3g}x what the top curvature allows"
           if plain and s.rho_first is not None and s.rho_first >= 1 else "")
        + "." + scale,
        ev + _loss_evidence(s),
        ("Standardise the targets (subtract their mean, divide by their std) first. "
         if targets else "")
        + "Lower the learning rate (3-10x; the chapter: a learning rate too large makes the steps "
        "jump across the valley), or warm it up and decay it (a schedule), or clip the gradient "
        "norm. With lr·λ_max kept below 2 (ρ < 1) the steps stay stable.",
    )  # fmt: skip


def vanishing_gradients(s: Signals) -> Finding | None:
    """The gradient shrinks on its way down: the lower layers hardly learn.

    Rule: in the first records the first weight layer's gradient norm is ≤ ``vanish_ratio``
    (1e-3) times the last weight layer's, every weight layer having a non-zero gradient (exact
    zeros are a symmetric point or dead units, not vanishing), in a network of at least three
    weight layers; or ≥ ``saturated`` (50%) of the sigmoid/tanh pre-activations are saturated
    (derivative below 1% of its peak). A problem when the training loss is high (≥ ``high_loss``
    of the reference), else a warning (an adaptive optimizer can compensate).
    """
    ev = []
    shrinks = (
        s.grad_ratio_init is not None
        and s.grad_ratio_init <= T["vanish_ratio"]
        and s.grad_zero_layers == 0
        and s.depth >= 3
    )
    if shrinks:
        ev.append(_ev("gradient norm, first / last weight layer", s.grad_ratio_init,
                      step=s.first_step, threshold=T["vanish_ratio"]))  # fmt: skip
    saturated = 0.0
    for value, step, when in (
        (s.saturated_first, s.probe_first_step, "at the start"),
        (s.saturated_end, s.probe_end_step, "at the end"),
    ):
        if value is not None and value >= T["saturated"]:
            saturated = max(saturated, value)
            ev.append(_ev(f"saturated sigmoid/tanh share {when}", value, step=step,
                          threshold=T["saturated"]))  # fmt: skip
    if not ev:
        return None
    how = (
        f"The gradient vanishes through the {s.depth} weight layers (first/last layer gradient "
        f"ratio {_g(s.grad_ratio_init)})" if shrinks
        else f"{saturated:.0%} of the sigmoid/tanh units are saturated, so almost no gradient "
        "passes them"
    )  # fmt: skip
    return Finding(
        "vanishing_gradients", "problem" if _high(s) else "warning",
        f"{how}: the layers near the input hardly learn, and the "
        f"training loss stays at {_g(s.loss_end)}.",
        ev + _loss_evidence(s),
        "Keep the signal's variance through depth: a variance-preserving initialisation (Xavier "
        "for sigmoid/tanh, He for ReLU; the chapter's initialisation), ReLU-family activations "
        "instead of sigmoid, batch normalisation, or a shallower network; an adaptive optimizer "
        "(Adam) rescales the small gradients.",
    )  # fmt: skip


def dead_units(s: Signals) -> Finding | None:
    """ReLU-family units that are off for every example: no output, no gradient, no learning.

    Rule: at the last probe ≥ ``dead`` (50%) of all ReLU-family units, or ≥ ``dead_layer`` (90%)
    of one layer's, have a pre-activation ≤ 0 on every probe example. A problem when the training
    loss is high (≥ ``high_loss``), else a warning; ≥ ``dead_warning`` (25%) is a warning.
    """
    if s.dead_end is None:
        return None
    worst = s.dead_worst
    layer_bad = worst is not None and worst[1] >= T["dead_layer"]
    if s.dead_end < T["dead_warning"] and not layer_bad:
        return None
    major = s.dead_end >= T["dead"] or layer_bad
    severity = "problem" if major and _high(s) else "warning"
    ev = [_ev(f"dead share of {s.dead_units} ReLU-family units", s.dead_end,
              step=s.probe_end_step, threshold=T["dead"])]  # fmt: skip
    if worst is not None:
        ev.append(_ev(f"dead share in layer {worst[0]}", worst[1], step=s.probe_end_step,
                      threshold=T["dead_layer"]))  # fmt: skip
    spike = (
        f" The loss spiked to {s.loss_max_later:.3g} at step {s.loss_max_step}: a step that "
        "large often kills ReLUs."
        if _rose(s) else ""
    )  # fmt: skip
    return Finding(
        "dead_units", severity,
        f"{s.dead_end:.0%} of the ReLU units are dead (never active on the probe batch), so "
        f"they pass no gradient; the training loss is {_g(s.loss_end)}.{spike}",
        ev + _loss_evidence(s),
        "Bring the units back to life: a smaller learning rate (or warm-up) so no step pushes "
        "them all negative, a leaky activation (LeakyReLU, GELU, ELU), biases initialised at 0 "
        "and He initialisation, or batch normalisation before the activation.",
    )  # fmt: skip


def lr_too_low(s: Signals) -> Finding | None:
    """The steps are too small: the weights barely move and the loss falls slowly.

    Rule: the median layer's update/weight ratio stays below ``update_low`` (1e-4) per step (its
    75th percentile over the run), or, for plain SGD/momentum, the stability ratio ρ stays below
    ``rho_low`` (2e-3: the lr could be 500x larger before becoming unstable); and the training
    loss is not low (≥ ``some_loss`` of the reference) or still falling (more than ``stalled``
    over the second half). A problem when the loss is high (≥ ``high_loss``), else a warning.
    Not reported beside a ``lr_too_high``, ``vanishing_gradients`` or ``dead_units`` problem,
    which explains the small steps (:func:`find_causes`).
    """
    ev = []
    if s.update_p75 is not None and s.update_p75 < T["update_low"]:
        ev.append(_ev("update/weight ratio per step (median layer, 75th percentile)",
                      s.update_p75, threshold=T["update_low"]))  # fmt: skip
    plain = s.rule in PLAIN_RULES
    if plain and s.rho_max is not None and s.rho_max < T["rho_low"]:
        ev.append(_ev("largest stability ratio ρ = lr·λ_max/(2+2β)", s.rho_max,
                      step=s.rho_max_step, threshold=T["rho_low"]))  # fmt: skip
    if not ev:
        return None
    falling = s.late_gain is not None and s.late_gain >= T["stalled"]
    if not (_high(s, "some_loss") or falling):
        return None
    factor = f"; it could be about {1 / s.rho_max:.0f}x larger before the steps became unstable" if (
        plain and s.rho_max
    ) else ""  # fmt: skip
    return Finding(
        "lr_too_low", "problem" if _high(s) else "warning",
        f"The learning rate{f' ({s.lr:g})' if s.lr is not None else ''} is too small: each step "
        f"moves the weights by {_g(s.update_p75)} of their size and the training loss only went "
        f"from {_g(s.loss_first)} to {_g(s.loss_end)}{factor}.",
        ev + _loss_evidence(s),
        "Raise the learning rate (try 10x, then keep the largest that stays stable: ρ near but "
        "below 1), or use an adaptive optimizer (Adam, RMSProp: the chapter's adaptive learning "
        "rate) with a warm-up; train longer only if you cannot.",
    )  # fmt: skip


def _final_curvature(s: Signals) -> tuple[float, float, dict[str, Any]] | None:
    f = s.final
    if not f or f.get("lambda_min") is None:
        return None
    lam_min, lam_max = as_float(f["lambda_min"]), as_float(f.get("lambda_max_h"))
    if not (math.isfinite(lam_min) and math.isfinite(lam_max)):
        return None
    return lam_min, lam_max, f


def _negative(lam_min: float, lam_max: float, f: dict[str, Any]) -> bool:
    tol = as_float(f.get("eig_tol") or 0.0)
    return lam_min < -max(tol, T["negative_curvature"] * abs(lam_max))


def _curvature_evidence(lam_min: float, lam_max: float, f: dict[str, Any]) -> list[dict[str, Any]]:
    step = f.get("step")
    return [
        _ev("smallest Hessian eigenvalue λ_min", lam_min, step=step),
        _ev("largest Hessian eigenvalue λ_max", lam_max, step=step),
        _ev("λ_min / λ_max", lam_min / lam_max if lam_max else None, step=step,
            threshold=-T["negative_curvature"]),
        _ev(f"gradient norm on the probe batch (critical if ≤ {as_float(f.get('grad_tol')):.2g})",
            f.get("grad_norm"), step=step),
    ]  # fmt: skip


def saddle_point(s: Signals) -> Finding | None:
    """Training stalled where the Hessian has strong negative curvature: a saddle point.

    Rule: the training loss is high (≥ ``high_loss`` of the reference) and stalled (it fell by
    less than ``stalled``, 2%, over the second half), and at the end the smallest Hessian
    eigenvalue on the probe batch is ≤ ``-negative_curvature`` (-0.1) times the largest (and
    beyond the eigenvalue tolerance): a direction in which the loss still falls, which gradient
    descent does not find because the gradient along it is (near) zero. Not reported beside a
    problem in the steps or gradients (:data:`MECHANICS`, :func:`find_causes`).
    """
    c = _final_curvature(s)
    if c is None or not (_high(s) and _stalled(s)):
        return None
    lam_min, lam_max, f = c
    if not _negative(lam_min, lam_max, f):
        return None
    zero = (
        f" {s.zero_weight_layers} weight layers started exactly at zero: a symmetric point where "
        "every hidden unit gets the same (zero) gradient."
        if s.zero_weight_layers else ""
    )  # fmt: skip
    return Finding(
        "saddle_point", "problem",
        f"Training is stuck at a saddle point: the loss stopped falling at {_g(s.loss_end)} while "
        f"the Hessian still has a strongly negative eigenvalue (λ_min {lam_min:.3g} against "
        f"λ_max {lam_max:.3g}).{zero}",
        _curvature_evidence(lam_min, lam_max, f) + _loss_evidence(s),
        "A saddle point can be escaped (the chapter: the eigenvector of a negative eigenvalue "
        "points downhill): step along it (`trainlab diagnose --model OUT --escape` for a saved "
        "model), or restart from a random, non-symmetric initialisation; momentum and minibatch "
        "noise help to slide off.",
    )  # fmt: skip


def _capacity(s: Signals) -> float | None:
    """Parameters per training example (``None`` when the number of examples is unknown)."""
    if not s.n_train:
        return None
    return s.num_params / max(int(s.n_train), 1)


def local_minimum(s: Signals) -> Finding | None:
    """Training stalled at a point without negative curvature, in a model big enough to do better.

    Rule: the training loss is high (≥ ``high_loss``) and stalled (< ``stalled`` over the second
    half), the final Hessian shows no strong negative curvature, the model is not linear, and it
    has ≥ ``overparametrised`` (2) parameters per training example (a network that size can fit
    its training data, so a high loss is optimisation). Smaller models are model bias instead.
    """
    c = _final_curvature(s)
    cap = _capacity(s)
    if c is None or s.linear_model or cap is None or cap < T["overparametrised"]:
        return None
    if not (_high(s) and _stalled(s)):
        return None
    lam_min, lam_max, f = c
    if _negative(lam_min, lam_max, f):
        return None
    ev = _curvature_evidence(lam_min, lam_max, f) + [
        _ev("parameters per training example", cap, threshold=T["overparametrised"])
    ]
    return Finding(
        "local_minimum", "problem",
        f"Training stalled at {_g(s.loss_end)} at a point without negative curvature (λ_min "
        f"{lam_min:.3g}, λ_max {lam_max:.3g}), although the model has {cap:.3g} parameters per "
        "example: a local minimum or a flat region, an optimisation problem.",
        ev + _loss_evidence(s),
        "The chapter: in many dimensions true local minima are rare (most critical points are "
        "saddles), so restart from another initialisation, add momentum, or use a larger learning "
        "rate with a schedule.",
        "Train a shallower network (or a linear model) on the same data: if it reaches a lower "
        "training loss, this is optimisation, not model bias.",
    )  # fmt: skip


def model_bias(s: Signals) -> Finding | None:
    """The model cannot express the function: the training loss is high though training converged.

    Rule: the training loss is high (≥ ``high_loss``, 0.75, of the reference) and stalled
    (< ``stalled`` over the second half) and no strong negative curvature is left (or none was
    measured); a linear model, or one with fewer than ``overparametrised`` parameters per example
    (or an unknown number of examples). A problem. A warning when the high loss still falls
    (train longer first; not at all while it falls ≥ ``still_falling``, 10%, over the second
    half), or when a stalled loss is only moderately high (between ``some_loss``,
    0.4, and ``high_loss``): model bias, or noise in the targets no model can fit. Never while
    validation rises as training falls (:func:`_diverging`): that model overfits. A warning, too,
    when dropout holds the model back (:func:`_held_back`), whatever the trend.
    """
    if _diverging(s):
        return None  # a model that overfits is not too simple
    if _held_back(s):
        return _regularised(s)
    if _still_learning(s):
        return None  # its capacity shows once the loss levels off
    moderate = not _high(s) and _high(s, "some_loss") and _stalled(s)
    if not (_high(s) or moderate):
        return None
    c = _final_curvature(s)
    if c is not None and _negative(*c):
        return None
    cap = _capacity(s)
    big = not s.linear_model and cap is not None and cap >= T["overparametrised"]
    if big and c is not None and not moderate:
        return None  # a big model stuck: local_minimum's case
    stalled = _stalled(s)
    ev = _loss_evidence(s)
    if s.late_gain is not None:
        ev.append(_ev("relative fall of the loss over the second half", s.late_gain,
                      step=s.last_step, threshold=T["stalled"]))  # fmt: skip
    if c is not None:
        ev += _curvature_evidence(*c)
    kind = (
        "a linear model" if s.linear_model
        else f"a {s.depth}-layer model" if s.depth else "the model"
    )  # fmt: skip
    convex = (
        " For a linear model with a convex loss every minimum is global: no optimiser can do "
        "better." if s.linear_model else ""
    )  # fmt: skip
    if moderate:
        summary = (
            f"The training loss stopped falling at {_g(s.loss_end)} ({_g(s.loss_ratio)} of "
            f"{s.reference_kind}): {kind} may be too simple (model bias), or the rest is noise "
            f"in the targets that no model can fit.{convex}"
        )
    else:
        summary = (
            f"The training loss is high ({_g(s.loss_end)}, {_g(s.loss_ratio)} of "
            f"{s.reference_kind}) "
            + ("and has stopped falling" if stalled else "and still falls only slowly")
            + f": {kind} too simple for the data (model bias).{convex}"
        )
    return Finding(
        "model_bias", "problem" if stalled and not moderate else "warning",
        summary,
        ev,
        "Make the model more flexible (the chapter: the function you want is not in the model's "
        "set): more or better features, more units or layers, a model suited to the data (a "
        "convolution for images).",
        "Train a bigger or deeper network: if it reaches a lower training loss this was model "
        "bias; if the deeper one reaches a higher training loss than a shallower one, it is "
        "optimisation.",
    )  # fmt: skip


def _val_rise(s: Signals) -> float | None:
    """How far the last validation loss is above its best, relative to the best."""
    if s.val_end is None or s.val_min is None:
        return None
    return (s.val_end - s.val_min) / s.val_min if s.val_min > 0 else 0.0


def _diverging(s: Signals) -> bool:
    """Validation ≥ ``val_rise`` above its best, the best at least two epochs back, and the
    training loss still falling (≥ ``stalled`` over the second half): the two part ways."""
    rise, best, last = _val_rise(s), s.val_min_epoch, s.last_epoch
    past = best is not None and last is not None and best <= last - 2  # risen for 2 epochs
    falling = s.late_gain is not None and s.late_gain >= T["stalled"]
    return rise is not None and rise >= T["val_rise"] and past and falling


def _still_learning(s: Signals) -> bool:
    """The training loss fell ≥ ``still_falling`` (10%) over the second half: not converged."""
    return s.late_gain is not None and s.late_gain >= T["still_falling"]


def _held_back(s: Signals) -> bool:
    """Dropout in the model, the training loss (in training mode) ≥ ``some_loss`` of the
    reference, and the validation loss (dropout off) ≤ ``eval_gain`` of it but still ≥
    ``some_loss`` of the reference: the network does better without its dropout, yet not well."""
    train = s.train_end if s.train_end is not None else s.loss_end
    if not s.dropout or train is None or s.val_end is None or not _high(s, "some_loss"):
        return False
    val_high = s.reference is not None and s.val_end >= T["some_loss"] * s.reference
    return val_high and s.val_end <= T["eval_gain"] * train


def _regularised(s: Signals) -> Finding:
    train = s.train_end if s.train_end is not None else s.loss_end
    assert train is not None and s.val_end is not None
    ev = _loss_evidence(s) + [
        _ev("largest dropout probability", s.dropout),
        _ev("validation (dropout off) / training loss (dropout on)", s.val_end / train,
            epoch=s.last_epoch, threshold=T["eval_gain"]),
    ]  # fmt: skip
    return Finding(
        "model_bias", "warning",
        f"The training loss stays at {_g(s.loss_end)} ({_g(s.loss_ratio)} of {s.reference_kind}) "
        f"with dropout p = {s.dropout:g} on, and the validation loss with it off is lower "
        f"({_g(s.val_end)}) but still high: the dropout holds the model back (model bias by "
        "regularisation).",
        ev,
        "Lower the dropout (and any weight decay) until the training loss can fall; then, if it "
        "still stays high, make the model more flexible (more units or layers).",
        "Train once with half the dropout: a lower training and validation loss settles it.",
    )  # fmt: skip


def overfitting(s: Signals) -> Finding | None:
    """Training loss low, validation loss high and rising: the model fits noise.

    Rule: the last validation loss is ≥ ``val_rise`` (10%) above its best and ≥ ``val_gap`` (2)
    times the last training loss, and the training loss is not high (< ``high_loss`` of the
    reference). A problem. A large gap without the rise is a warning. Also a problem, however
    high the training loss, when the two part ways (:func:`_diverging`: validation rising while
    training still falls), as when a network memorises noisy or shuffled labels.
    """
    if s.val_end is None or s.val_min is None:
        return None
    train = s.train_end if s.train_end is not None else s.loss_end
    gap = None if train is None else s.val_end / train if train > 0 else math.inf
    if _high(s) or gap is None or gap < T["val_gap"]:
        return _fitting_noise(s) if _diverging(s) else None
    rise = _val_rise(s) or 0.0
    ev = [
        _ev("last training loss", train, epoch=s.last_epoch),
        _ev("last validation loss", s.val_end, epoch=s.last_epoch),
        _ev("best validation loss", s.val_min, epoch=s.val_min_epoch),
        _ev("validation rise above its best", rise, epoch=s.last_epoch, threshold=T["val_rise"]),
        _ev("validation / training loss", gap, epoch=s.last_epoch, threshold=T["val_gap"]),
    ]
    rising = rise >= T["val_rise"]
    return Finding(
        "overfitting", "problem" if rising else "warning",
        f"The training loss is low ({train:.3g}) but the validation loss is {gap:.3g}x higher "
        + (f"and rose {rise:.0%} above its best (epoch {s.val_min_epoch})" if rising
           else "though not rising yet")
        + ": the model overfits.",
        ev,
        "The chapter's remedies for overfitting: more training data (or augmentation), fewer "
        f"parameters or shared ones, early stopping (the best epoch here was {s.val_min_epoch}), "
        "regularisation (weight decay) and dropout.",
    )  # fmt: skip


def _fitting_noise(s: Signals) -> Finding:
    """The overfitting finding when validation rises while training falls (any training loss)."""
    rise = _val_rise(s) or 0.0
    ev = _loss_evidence(s) + [
        _ev("relative fall of the training loss over the second half", s.late_gain,
            step=s.last_step, threshold=T["stalled"]),
        _ev("best validation loss", s.val_min, epoch=s.val_min_epoch),
        _ev("last validation loss", s.val_end, epoch=s.last_epoch),
        _ev("validation rise above its best", rise, epoch=s.last_epoch, threshold=T["val_rise"]),
    ]  # fmt: skip
    return Finding(
        "overfitting", "problem",
        f"The validation loss rose {rise:.0%} above its best (epoch {s.val_min_epoch}) while "
        f"the training loss kept falling (to {_g(s.loss_end)}): the model fits what is particular "
        "to the training rows (noise, or wrong labels), not what carries over to new data.",
        ev,
        "The chapter's remedies for overfitting: early stopping (the best epoch here was "
        f"{s.val_min_epoch}), more training data (or augmentation), fewer parameters, weight "
        "decay and dropout."
        + (" With the training loss still this high, check the labels too: labels that do not "
           "follow from the inputs can only be memorised." if _high(s) else ""),
    )  # fmt: skip


def batch_size(s: Signals) -> Finding | None:
    """The batch size against the gradient noise scale (McCandlish et al. 2018); information.

    Rule: whenever ``B_simple = tr(Σ)/|G|²`` was measured. The batch is remarked on when it is
    ≤ B_simple / ``noise_factor`` (4): larger batches would make each step count for more, up to
    about B_simple; or ≥ ``noise_factor`` x B_simple: beyond it, larger batches only cost time.
    A B_simple beyond the training set's size says the gradient is noise-dominated (near the
    loss floor), where the batch size hardly matters.
    """
    if s.b_simple is None or s.batch_size is None:
        return None
    b, crit = s.batch_size, s.b_simple
    if s.n_train and crit > s.n_train:
        verdict = (
            f"that is more than the {s.n_train} training examples: the mean gradient is small "
            "beside its noise (training is near its floor), so the batch size hardly matters now"
        )
    elif b * T["noise_factor"] <= crit:
        verdict = (
            f"the batch ({b:.0f}) is well below it: steps are noise-dominated, so a larger batch "
            "(with a larger learning rate) would take proportionally fewer steps"
        )
    elif b >= T["noise_factor"] * crit:
        verdict = (
            f"the batch ({b:.0f}) is well above it: a smaller batch would reach the same loss in "
            "nearly as few steps for less compute"
        )
    else:
        verdict = f"the batch ({b:.0f}) is near it: a good trade of steps against compute"
    return Finding(
        "batch_size", "info",
        f"The gradient noise scale is B_simple ≈ {crit:.3g} (McCandlish et al. 2018); {verdict}.",
        [_ev("gradient noise scale B_simple = tr(Σ)/|G|²", crit, step=s.noise_step),
         _ev("batch size", b, step=s.noise_step)],  # fmt: skip
        "The chapter: small batches are noisier per step but often generalise better; large "
        "batches use parallel hardware well. Around B_simple both are served.",
    )  # fmt: skip


RULES: tuple[Callable[[Signals], Finding | None], ...] = (
    ill_conditioned, exploding_gradients, vanishing_gradients, lr_too_high, dead_units,
    lr_too_low, saddle_point, local_minimum, model_bias, overfitting, batch_size,
)  # fmt: skip


def healthy(s: Signals, findings: list[Finding]) -> Finding:
    """No rule found a problem: say so, with what the run reached."""
    warn = [f.cause for f in findings if f.severity == "warning"]
    note = f" Warnings: {', '.join(warn)}." if warn else ""
    ev = _loss_evidence(s)
    if s.val_end is not None:
        ev.append(_ev("last validation loss", s.val_end, epoch=s.last_epoch))
    learning = _still_learning(s)
    if learning:
        ev.append(_ev("relative fall of the loss over the second half", s.late_gain,
                      step=s.last_step, threshold=T["still_falling"]))  # fmt: skip
    return Finding(
        "healthy", "info",
        f"No problem found: the training loss fell from {_g(s.loss_first)} to {_g(s.loss_end)}"
        + (f" ({s.loss_ratio:.2g} of {s.reference_kind})" if s.loss_ratio is not None else "")
        + (f", validation loss {s.val_end:.3g}" if s.val_end is not None else "")
        + (f", and it is still falling ({s.late_gain:.0%} over the second half)" if learning
           else "")
        + "." + note,
        ev,
        ("Train longer: the loss has not levelled off, so neither the model's capacity nor "
         "overfitting can be judged yet. " if learning else "")
        + "Keep watching the validation loss; the chapter's next steps are a bigger model if the "
        "training loss should go lower, and regularisation once validation turns up.",
    )  # fmt: skip


def find_causes(s: Signals) -> list[Finding]:
    """Run every rule on ``s``: the findings, most important first (see the module docstring)."""
    found = [f for rule in RULES if (f := rule(s)) is not None]
    problems = {f.cause for f in found if f.severity == "problem"}
    if problems & set(MECHANICS):
        # a stall that the steps or the gradients explain is no reading of the surface's shape
        found = [f for f in found if f.cause not in ("saddle_point", "local_minimum")]
    if problems & set(OPTIMISATION):
        # a high training loss says nothing of the model's capacity while training fails
        found = [f for f in found if f.cause != "model_bias"]
    if problems & {"lr_too_high", "vanishing_gradients", "dead_units"}:
        # steps that diverge are not too small; gradients that vanish or die make small steps
        found = [f for f in found if f.cause != "lr_too_low"]
    if not any(f.severity == "problem" for f in found):
        found.append(healthy(s, found))
    rank = {c: i for i, c in enumerate(PRIORITY)}
    level = {"problem": 0, "warning": 1, "info": 2}

    def key(f: Finding) -> tuple[int, int]:
        if f.cause == "healthy":
            return (-1, 0)
        return (level[f.severity], rank[f.cause])

    return sorted(found, key=key)
