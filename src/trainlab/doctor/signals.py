"""The numbers the rules read, computed once from a run's records.

Each :class:`Signals` field is one measured quantity with the step (or epoch) it comes from, so a
finding can cite its evidence. Nothing here decides anything; :mod:`trainlab.doctor.rules` does.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from trainlab.doctor.records import Records, as_float

#: Module types whose parameters are weights (for gradient ratios across depth).
WEIGHT_TYPES = {
    "Linear", "Bilinear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
    "ConvTranspose3d", "Embedding", "LSTM", "GRU", "RNN",
}  # fmt: skip
#: Optimizers whose stability ratio at early steps means something (no per-parameter scaling).
PLAIN_RULES = ("sgd", "heavy-ball momentum", "unknown (as sgd)")


@dataclass
class Signals:
    """What the records say, as plain numbers (``None`` where the records cannot say)."""

    n_records: int = 0
    first_step: int = 0
    last_step: int = 0
    status: str = ""
    # loss
    loss_first: float | None = None
    loss_end: float | None = None  # mean over the last fifth of the records
    loss_mid: float | None = None  # mean over the records between 40% and 60% of the run
    loss_max_later: float | None = None  # largest record after the first two steps
    loss_max_step: int | None = None
    loss_min: float | None = None
    baseline: float | None = None  # best constant output on the probe batch
    reference: float | None = None  # baseline, else the first loss
    reference_kind: str = ""
    diverged_step: int | None = None
    nonfinite: bool = False
    # validation
    train_end: float | None = None
    val_end: float | None = None
    val_min: float | None = None
    val_min_epoch: int | None = None
    last_epoch: int | None = None
    epochs: int = 0
    # updates and gradients
    update_p75: float | None = None  # 75th percentile over records of the median layer ratio
    update_max_p75: float | None = None
    grad_ratio_init: float | None = None  # first / last weight layer, first records
    grad_zero_layers: int = 0  # weight layers with exactly zero gradient at the start
    zero_weight_layers: int = 0  # weight layers whose weights are exactly zero at the start
    grad_norm_first: float | None = None
    # curvature
    rule: str | None = None
    rho_first: float | None = None
    rho_first_step: int | None = None
    rho_max: float | None = None
    rho_max_step: int | None = None
    rho_end: float | None = None
    final: dict[str, Any] | None = None
    # probes
    dead_end: float | None = None  # share of ReLU-family units dead at the last probe
    dead_worst: tuple[str, float] | None = None
    dead_units: int = 0
    probe_end_step: int | None = None
    probe_first_step: int | None = None
    saturated_first: float | None = None
    saturated_end: float | None = None
    growth: float | None = None  # std of the last weight layer's output / input RMS, first probe
    growth_layers: list[float] = field(default_factory=list)
    input: dict[str, Any] | None = None
    target: dict[str, Any] | None = None  # regression targets' mean, std, rms
    # noise
    b_simple: float | None = None
    batch_size: float | None = None
    noise_step: int | None = None
    # model
    num_params: int = 0
    n_train: int | None = None
    linear_model: bool = False
    depth: int = 0
    optimizer: str | None = None
    lr: float | None = None
    dropout: float = 0.0  # the largest dropout probability in the model

    @property
    def loss_ratio(self) -> float | None:
        """The final training loss relative to the reference (1: no better than a constant)."""
        if self.loss_end is None or self.reference is None or not self.reference > 0:
            return None
        return self.loss_end / self.reference

    @property
    def late_gain(self) -> float | None:
        """Relative fall of the training loss over the second half of the run."""
        if self.loss_mid is None or self.loss_end is None or not self.loss_mid > 0:
            return None
        return (self.loss_mid - self.loss_end) / self.loss_mid


def _finite(x: Any) -> float | None:
    v = as_float(x)
    return v if math.isfinite(v) else None


def _mean(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


def _quantile(values: list[float], q: float) -> float | None:
    vals = sorted(v for v in values if v is not None and math.isfinite(v))
    if not vals:
        return None
    pos = q * (len(vals) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(vals) - 1)
    return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)


def extract(records: Records) -> Signals:
    """Compute the :class:`Signals` of a run's records."""
    s = Signals(status=records.status)
    meta = records.meta
    s.num_params = int(meta.get("num_params") or 0)
    s.n_train = meta.get("n_train")
    s.linear_model = bool(meta.get("linear_model"))
    s.optimizer = meta.get("optimizer")
    s.lr = _finite((meta.get("hyper") or {}).get("lr"))
    s.dropout = max([p for p in map(_finite, meta.get("dropout") or []) if p is not None] or [0.0])
    layers = meta.get("layers") or []
    weight_idx = [i for i, layer in enumerate(layers) if layer.get("type") in WEIGHT_TYPES]
    s.depth = len(weight_idx)
    _loss(s, records)
    _validation(s, records)
    _gradients(s, records, weight_idx)
    _curvature(s, records)
    _probes(s, records, layers, weight_idx)
    for r in records.noise:
        b = _finite(r.get("b_simple"))
        if b is not None and b > 0:
            s.b_simple, s.batch_size, s.noise_step = b, _finite(r.get("batch_size")), r.get("step")
    return s


def _weighted_mean(points: list[tuple[int, float, int]]) -> float | None:
    total = sum(w for _, _, w in points)
    return sum(v * w for _, v, w in points) / total if total else None


def _loss(s: Signals, records: Records) -> None:
    """Loss levels from the step records (each the mean of the steps since the previous one,
    weighted by their number), the mid-run and final levels from whole epochs where there are
    at least four of them (far less noisy than a few minibatches)."""
    steps = [r for r in records.steps if r.get("loss") is not None]
    for e in records.events:
        if e.get("event") == "diverged" and s.diverged_step is None:
            s.diverged_step = int(e.get("step", 0))
    losses = [as_float(r["loss"]) for r in steps]
    if any(not math.isfinite(v) for v in losses):
        s.nonfinite = True
        first_bad = next(r for r, v in zip(steps, losses) if not math.isfinite(v))
        s.diverged_step = s.diverged_step or int(first_bad["step"])
    points = [
        (int(r["step"]), v, max(int(r.get("loss_steps") or 1), 1))
        for r, v in zip(steps, losses)
        if math.isfinite(v)
    ]
    s.n_records = len(points)
    if not points:
        return
    s.first_step, s.last_step = points[0][0], points[-1][0]
    s.loss_first = points[0][1]
    span = max(s.last_step - s.first_step, 1)

    def window(lo: float, hi: float) -> list[tuple[int, float, int]]:
        return [p for p in points if lo <= (p[0] - s.first_step) / span <= hi]

    s.loss_end = _weighted_mean(window(0.8, 1.0) or points[-1:])
    s.loss_mid = _weighted_mean(window(0.4, 0.6)) if len(points) >= 3 else None
    epochs = [
        (int(e["epoch"]), v)
        for e in records.epochs
        if (v := _finite(e.get("train_loss"))) is not None
    ]
    if len(epochs) >= 4:
        n = len(epochs)
        tail = [v for _, v in epochs[-max(1, n // 5) :]]
        mid = [v for i, (_, v) in enumerate(epochs) if 0.4 <= i / (n - 1) <= 0.6]
        s.loss_end = sum(tail) / len(tail)
        s.loss_mid = sum(mid) / len(mid) if mid else s.loss_mid
    later = [(t, v) for t, v, _ in points if t > s.first_step + 1]
    if later:
        t_max, v_max = max(later, key=lambda p: p[1])
        s.loss_max_later, s.loss_max_step = v_max, t_max
    s.loss_min = min(v for _, v, _ in points)
    for b in records.baselines:
        base = _finite(b.get("constant_loss"))
        # a baseline far below every loss the model reached measures nothing (a loss the
        # constant can game): the first loss is the reference then
        if base is not None and base > 0 and base >= 1e-3 * s.loss_min:
            s.baseline = base
            break
    if s.baseline is not None:
        s.reference, s.reference_kind = s.baseline, "the best constant output"
    elif s.loss_first is not None and s.loss_first > 0:
        s.reference, s.reference_kind = s.loss_first, "the initial loss"


def _validation(s: Signals, records: Records) -> None:
    epochs = [r for r in records.epochs]
    s.epochs = len(epochs)
    if not epochs:
        return
    s.last_epoch = int(epochs[-1].get("epoch", len(epochs)))
    train = [(int(e["epoch"]), _finite(e.get("train_loss"))) for e in epochs]
    train = [(ep, v) for ep, v in train if v is not None]
    if train:
        s.train_end = train[-1][1]
    val = [(int(e["epoch"]), _finite(e.get("val_loss"))) for e in epochs]
    finite: list[tuple[int, float]] = [(ep, v) for ep, v in val if v is not None]
    if finite:
        s.val_end = finite[-1][1]
        ep_min, v_min = min(finite, key=lambda p: p[1])
        s.val_min, s.val_min_epoch = v_min, ep_min


#: Update ratios are read only for layers whose weights' RMS is at least this: a ratio against
#: weights near zero (a zero-initialised layer, a bias-only layer) measures nothing.
MIN_WEIGHT_RMS = 3e-3


def _gradients(s: Signals, records: Records, weight_idx: list[int]) -> None:
    sizes = [max(int(layer.get("params", 1)), 1) for layer in records.meta.get("layers") or []]
    medians, maxima = [], []
    for r in records.steps:
        weights = r.get("weight") or []
        upd = [
            as_float(u)
            for i, u in enumerate(r.get("update") or [])
            if u is not None
            and math.isfinite(as_float(u))
            and i < len(weights)
            and i < len(sizes)
            and as_float(weights[i]) / math.sqrt(sizes[i]) >= MIN_WEIGHT_RMS
        ]
        if upd:
            medians.append(statistics.median(upd))
            maxima.append(max(upd))
    s.update_p75 = _quantile(medians, 0.75)
    s.update_max_p75 = _quantile(maxima, 0.75)
    grads = [r for r in records.steps if r.get("grad")]
    if not grads:
        return
    first = grads[0]
    s.grad_norm_first = _finite(first.get("grad_norm"))
    weights0 = first.get("weight") or []
    s.zero_weight_layers = sum(
        1 for i in weight_idx if i < len(weights0) and as_float(weights0[i]) == 0.0
    )
    g0 = first["grad"]
    s.grad_zero_layers = sum(1 for i in weight_idx if i < len(g0) and as_float(g0[i]) == 0.0)
    if len(weight_idx) >= 2:
        ratios = []
        for r in grads[:3]:
            g = [as_float(v) for v in r["grad"]]
            lo, hi = g[weight_idx[0]], g[weight_idx[-1]]
            if math.isfinite(lo) and math.isfinite(hi) and hi > 0 and lo > 0:
                ratios.append(lo / hi)
        if ratios:
            s.grad_ratio_init = statistics.median(ratios)


def _curvature(s: Signals, records: Records) -> None:
    readings = [r for r in records.curvatures if _finite(r.get("stability_ratio")) is not None]
    if records.curvatures:
        s.rule = records.curvatures[-1].get("rule")
    for r in records.curvatures:
        if r.get("final"):
            s.final = r
    if not readings:
        return
    first = readings[0]
    s.rho_first, s.rho_first_step = _finite(first["stability_ratio"]), first.get("step")
    usable = readings
    if s.rule not in PLAIN_RULES:  # an adaptive optimizer's first statistics are one gradient
        usable = [r for r in readings if int(r.get("step", 0)) > 10] or readings[-1:]
    top = max(usable, key=lambda r: as_float(r["stability_ratio"]))
    s.rho_max, s.rho_max_step = _finite(top["stability_ratio"]), top.get("step")
    s.rho_end = _finite(readings[-1]["stability_ratio"])


def _probes(
    s: Signals, records: Records, layers: list[dict[str, Any]], weight_idx: list[int]
) -> None:
    probes = records.probes
    if not probes:
        return
    s.probe_first_step, s.probe_end_step = probes[0].get("step"), probes[-1].get("step")
    for p in probes:
        if p.get("input"):
            s.input, s.target = p["input"], p.get("target")
            break
    first, last = probes[0]["layers"], probes[-1]["layers"]
    # a weight layer's all-zero input units are dead ReLUs only where no activation module exists
    # (a functional F.relu); beside a tanh they are a zero-weight point's zero outputs
    functional_only = not records.meta.get("activations")
    dead, units = 0.0, 0
    worst: tuple[str, float] | None = None
    for name, st in last.items():
        share = st.get("dead", st.get("dead_inputs"))
        if share is None:
            continue
        if "dead" not in st and not functional_only:
            continue
        k = int(st.get("units", 1))
        dead += as_float(share) * k
        units += k
        if worst is None or as_float(share) > worst[1]:
            worst = (name, as_float(share))
    if units:
        s.dead_end, s.dead_worst, s.dead_units = dead / units, worst, units
    s.saturated_first = _mean(
        [as_float(v["saturated"]) for v in first.values() if "saturated" in v]
    )
    s.saturated_end = _mean([as_float(v["saturated"]) for v in last.values() if "saturated" in v])
    names = [layers[i]["name"] for i in weight_idx]
    stds = [as_float(first[n]["std"]) for n in names if n in first and "std" in first[n]]
    rms = as_float((s.input or {}).get("rms_median")) if s.input else math.nan
    if stds and math.isfinite(stds[-1]):
        base = rms if math.isfinite(rms) and rms > 0 else None
        if base is not None:
            s.growth = stds[-1] / base
        s.growth_layers = stds
