"""What a fixed probe batch shows: activations per layer, dead and saturated units, input scales.

Every few steps the monitor runs the model once on a fixed probe batch with forward hooks on its
layers (registered for that pass only, so training steps pay nothing) and records, per hooked
module:

* the output's mean and standard deviation (all modules with parameters, and activations);
* for ReLU-family activations (ReLU, LeakyReLU, ELU, GELU, SiLU, ...), the share of *dead* units:
  units whose pre-activation is ≤ 0 on every example of the batch (a ReLU then outputs 0 and
  passes no gradient for any of them);
* for sigmoid/tanh-family activations, the share of *saturated* values: pre-activations with
  ``|z| > 4.6`` for sigmoid (output below 0.01 or above 0.99) and ``|z| > 2.65`` for tanh
  (``|tanh z| > 0.99``), where the derivative is below 1% of its peak;
* for Linear and Conv layers fed by a non-negative tensor other than the model's input, the share
  of input units that are exactly 0 on every example: dead units produced by a functional
  ``F.relu`` inside a custom module, which no activation module would show.

A unit is a column of a 2-D activation and a channel (dimension 1) of a higher-dimensional one.
The pre-activations are read by a pre-hook, so in-place activations are measured correctly.

The pass changes nothing: it runs under ``torch.no_grad()`` in training mode (BatchNorm uses the
batch's statistics, as in training), every buffer (BatchNorm's running statistics and counters,
any custom module's buffers) is copied before and written back after, the ``training`` flag of
every module is restored, and dropout draws from a forked random state seeded with the monitor's
own seed, so the training's random streams are untouched (:func:`training_mode`).
State a custom module keeps in plain attributes rather than buffers cannot be restored.

:func:`input_scales` measures the input features' scales (the chapter's feature normalisation),
:func:`target_scale` the regression targets',
and :func:`constant_baseline` the loss of the best constant output, the reference against which
"the training loss is high" is judged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

#: Activations whose units die: zero (or nearly) output and gradient for z ≤ 0.
RELU_FAMILY: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU,
    nn.SiLU, nn.Mish, nn.Hardswish, nn.Softplus,
)  # fmt: skip

#: Squashing activations and the |pre-activation| beyond which they count as saturated.
SATURATING: tuple[tuple[type[nn.Module], float], ...] = (
    (nn.Sigmoid, 4.595),  # sigmoid(4.595) = 0.99
    (nn.Tanh, 2.647),  # tanh(2.647) = 0.99
    (nn.Hardtanh, 1.0),  # flat beyond ±1 (ReLU6 is a Hardtanh subclass: caught as ReLU first)
    (nn.Hardsigmoid, 3.0),
    (nn.LogSigmoid, 4.595),
    (nn.Softsign, 99.0),  # x/(1+|x|) = 0.99
)

_WEIGHT_LAYERS = (nn.Linear, nn.Bilinear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def saturation_threshold(module: nn.Module) -> float | None:
    """The |pre-activation| beyond which ``module`` counts as saturated (``None``: not squashing)."""
    if isinstance(module, RELU_FAMILY):
        return None
    for kind, threshold in SATURATING:
        if isinstance(module, kind):
            return threshold
    return None


def _units(x: Tensor) -> Tensor:
    """``(B, C, ...) -> (C, B·...)``: each row holds one unit's values over the batch."""
    if x.dim() == 1:
        return x.reshape(1, -1)
    return x.transpose(0, 1).reshape(x.shape[1], -1)


def _first_tensor(args: Any) -> Tensor | None:
    if isinstance(args, Tensor):
        return args
    if isinstance(args, (tuple, list)):
        for a in args:
            t = _first_tensor(a)
            if t is not None:
                return t
    return None


def hooked_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules a probe pass measures: activations and layers with their own parameters."""
    found = []
    for name, m in model.named_modules():
        own_params = any(True for _ in m.parameters(recurse=False))
        is_act = isinstance(m, RELU_FAMILY) or saturation_threshold(m) is not None
        if own_params or is_act:
            found.append((name or "(model)", m))
    return found


class _Collector:
    """Forward pre-hooks and hooks that reduce each module's activations to a few numbers."""

    def __init__(self, model_input: Tensor | None) -> None:
        self.stats: dict[str, dict[str, Any]] = {}
        self.input_ptr = model_input.data_ptr() if model_input is not None else None

    def pre(self, name: str, module: nn.Module) -> Callable[..., None]:
        relu = isinstance(module, RELU_FAMILY)
        sat = saturation_threshold(module)
        weight_layer = isinstance(module, _WEIGHT_LAYERS)

        def hook(_m: nn.Module, args: Any) -> None:
            x = _first_tensor(args)
            if x is None or not x.is_floating_point() or x.numel() == 0:
                return
            s = self.stats.setdefault(name, {"type": type(module).__name__})
            if relu:
                units = _units(x.detach())
                s["dead"] = float((units.amax(dim=1) <= 0).float().mean())
                s["units"] = int(units.shape[0])
            elif sat is not None:
                s["saturated"] = float((x.detach().abs() > sat).float().mean())
            elif weight_layer and x.data_ptr() != self.input_ptr and x.dim() >= 2:
                units = _units(x.detach())
                if bool(units.min() >= 0):  # a ReLU's output: count the units never active
                    s["dead_inputs"] = float((units.amax(dim=1) <= 0).float().mean())
                    s["units"] = int(units.shape[0])

        return hook

    def post(self, name: str, module: nn.Module) -> Callable[..., None]:
        def hook(_m: nn.Module, _args: Any, output: Any) -> None:
            y = _first_tensor(output)
            if y is None or not y.is_floating_point() or y.numel() == 0:
                return
            s = self.stats.setdefault(name, {"type": type(module).__name__})
            y = y.detach().float()
            s["mean"] = float(y.mean())
            s["std"] = float(y.std()) if y.numel() > 1 else 0.0

        return hook


@contextmanager
def training_mode(model: nn.Module, seed: int) -> Iterator[None]:
    """The body runs with every module in training mode and the CPU's (and the current CUDA
    device's) random state forked and seeded with ``seed``; flags and states are put back after.

    Like :func:`trainlab.diagnose._modes.module_mode` in training mode, but seeding the default
    generators directly: ``torch.manual_seed`` costs a third of a millisecond per call.
    """
    flags = [(m, m.training) for m in model.modules()]
    model.train(True)
    devices = [torch.cuda.current_device()] if torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.default_generator.manual_seed(seed)
            for d in devices:
                torch.cuda.default_generators[d].manual_seed(seed)
            yield
    finally:
        for m, training in flags:
            m.training = training


@torch.no_grad()
def probe_activations(
    model: nn.Module, inputs: Any, seed: int = 0
) -> tuple[dict[str, dict[str, Any]], Any]:
    """One forward pass on ``inputs`` with hooks: per-module activation statistics.

    Args:
        model: the network (nothing about it changes, see the module docstring).
        inputs: a tensor, or a tuple/list passed as ``model(*inputs)``.
        seed: seeds the forked random state dropout draws from.

    Returns:
        ``({module name: {"type", "mean", "std", ["dead", "units"] | ["saturated"] |
        ["dead_inputs", "units"]}}, outputs)``, modules in the model's order.
    """
    collector = _Collector(_first_tensor(inputs))
    handles = []
    modules = hooked_modules(model)
    for name, m in modules:
        handles.append(m.register_forward_pre_hook(collector.pre(name, m)))
        handles.append(m.register_forward_hook(collector.post(name, m)))
    saved = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        with training_mode(model, seed):
            out = model(*inputs) if isinstance(inputs, (tuple, list)) else model(inputs)
    finally:
        for h in handles:
            h.remove()
        for b, copy in saved:
            b.copy_(copy)
    stats = {name: collector.stats[name] for name, _ in modules if name in collector.stats}
    return stats, out


@torch.no_grad()
def input_scales(inputs: Any) -> dict[str, Any] | None:
    """How differently scaled the input features are (``None`` for non-float inputs).

    A feature is a column of 2-D inputs, the last dimension of 3-D ones (sequences of feature
    vectors) and a channel of 4-D and 5-D ones (images, volumes). Features that are 0 everywhere
    (an image's empty border) are left out.

    Returns:
        ``{"features", "rms_max", "rms_median", "scale_spread" (max/median RMS),
        "offset" (max |mean|/std over features that vary), "worst_feature"}``.
    """
    x = _first_tensor(inputs)
    if x is None or not x.is_floating_point() or x.dim() < 2 or x.shape[0] < 2:
        return None
    x = x.detach().double()
    if x.dim() == 3:
        feats = x.reshape(-1, x.shape[-1]).T  # (F, B·T)
    else:
        feats = _units(x)  # (F, B·...)
    rms = feats.pow(2).mean(1).sqrt()
    keep = rms > 0
    if not bool(keep.any()):
        return None
    rms_k = rms[keep]
    mean = feats.mean(1)
    std = feats.std(1)
    varies = std > 1e-12 * rms.clamp_min(1e-300)
    offset = (mean[varies].abs() / std[varies]).max() if bool(varies.any()) else torch.tensor(0.0)
    median = rms_k.median()
    idx = torch.nonzero(keep).flatten()
    return {
        "features": int(feats.shape[0]),
        "rms_max": float(rms_k.max()),
        "rms_median": float(median),
        "scale_spread": float(rms_k.max() / median),
        "offset": float(offset),
        "worst_feature": int(idx[int(rms_k.argmax())]),
    }


@torch.no_grad()
def target_scale(targets: Any) -> dict[str, float] | None:
    """The scale of float (regression) targets: ``{"mean", "std", "rms"}``; ``None`` for class
    labels or anything else. Targets far from unit scale make every gradient as large."""
    y = _first_tensor(targets)
    if y is None or not y.is_floating_point() or y.numel() < 2:
        return None
    y = y.detach().double().flatten()
    return {"mean": float(y.mean()), "std": float(y.std()), "rms": float(y.pow(2).mean().sqrt())}


def constant_baseline(
    loss_fn: Callable[[Any, Any], Tensor], outputs: Tensor, targets: Any, steps: int = 30
) -> float | None:
    """The loss of the best constant output on a batch: what a model that ignores its input gets.

    A constant ``c`` shaped like one example's output is fitted by L-BFGS to minimise
    ``loss_fn(c, ..., c; targets)`` (for cross-entropy it finds the log class frequencies, for
    squared error the targets' mean), so it works for any loss. The chapter's "training loss is
    high" is judged against it.

    Args:
        loss_fn: the training loss.
        outputs: the model's outputs on the batch (only their shape, dtype and device are used).
        targets: the batch's targets.
        steps: L-BFGS iterations.

    Returns:
        The baseline loss, or ``None`` when it cannot be computed for this loss.
    """
    if not isinstance(outputs, Tensor) or outputs.dim() < 1 or not outputs.is_floating_point():
        return None
    rows = targets.shape[0] if isinstance(targets, Tensor) and targets.dim() > 0 else None
    # the batch dimension: the first whose size is the targets' rows (a stacked model's outputs
    # are (networks, rows)); the constant is shared along it
    batch_dim = next((d for d, n in enumerate(outputs.shape) if n == rows), 0)
    shape = outputs.shape
    c = torch.zeros(
        [1 if d == batch_dim else n for d, n in enumerate(shape)],
        device=outputs.device, requires_grad=True,
    )  # fmt: skip

    def value() -> Tensor:
        return loss_fn(c.expand(shape).to(outputs.dtype), targets)

    try:
        with torch.enable_grad():
            opt = torch.optim.LBFGS(
                [c], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe", history_size=10
            )

            def closure() -> Tensor:
                opt.zero_grad()
                loss = value()
                loss.backward()
                return loss

            opt.step(closure)
        with torch.no_grad():
            loss = float(value())
    except (RuntimeError, ValueError, TypeError):  # a loss that needs more than a tensor
        return None
    return loss if math.isfinite(loss) else None
