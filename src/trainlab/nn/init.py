"""Weight initialisation: the lecture's naive N(0, σ²) against Xavier/Glorot and He/Kaiming.

Follows Glorot & Bengio (2010), "Understanding the difficulty of training deep feedforward neural
networks" (Var[W] = 2 / (fan_in + fan_out)) and He et al. (2015), "Delving Deep into Rectifiers"
(Var[W] = 2 / fan_in for ReLU). The point the chapter makes is that the variance of activations
should neither collapse nor explode with depth; :func:`activation_variances` measures exactly that,
layer by layer, and :func:`deep_mlp` builds the deep test network.

Every scheme is a function ``fn(weight, **kwargs)`` that fills ``weight`` in place and is registered
in :data:`INITIALIZERS`, so a config can say ``init = "he_normal"``;
``init_weights(model, "xavier_normal")`` applies one to every Linear and Conv layer (biases to zero).
Fans follow PyTorch's convention (``torch.nn.init._calculate_fan_in_and_fan_out``), so with the same
generator the result equals ``torch.nn.init``'s bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from trainlab.nn.mlp import ACTIVATIONS
from trainlab.registry import Registry

#: name -> ``fn(weight, **kwargs) -> weight`` filling ``weight`` in place.
INITIALIZERS: Registry[Callable[..., Tensor]] = Registry("initializer")

#: Layers whose ``weight`` :func:`init_weights` re-initialises.
WEIGHT_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.modules.conv._ConvNd,
)

#: Activation layers after which :func:`activation_variances` records by default.
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.Tanh,
    nn.ReLU,
    nn.Sigmoid,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Softplus,
    nn.SELU,
    nn.Hardtanh,
)


def compute_fans(weight: Tensor) -> tuple[int, int]:
    """Fan-in and fan-out of a weight tensor.

    A Linear weight ``(out, in)`` has fans ``(in, out)``; a Conv weight ``(out, in/groups, *k)``
    has ``(in/groups · prod(k), out · prod(k))``. (For ConvTranspose weights, which are stored
    ``(in, out/groups, *k)``, this follows PyTorch in reading them the same way.)

    Args:
        weight: a tensor with at least 2 dimensions.

    Returns:
        ``(fan_in, fan_out)``.
    """
    if weight.dim() < 2:
        raise ValueError(
            f"fans need a weight with at least 2 dimensions, got shape {tuple(weight.shape)}"
        )
    receptive_field = math.prod(weight.shape[2:])
    return weight.shape[1] * receptive_field, weight.shape[0] * receptive_field


def _fan(weight: Tensor, mode: str) -> int:
    fan_in, fan_out = compute_fans(weight)
    if mode == "fan_in":
        return fan_in
    if mode == "fan_out":
        return fan_out
    raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")


@torch.no_grad()
def normal_(
    weight: Tensor,
    std: float = 1.0,
    mean: float = 0.0,
    generator: torch.Generator | None = None,
    sigma: float | None = None,
) -> Tensor:
    """The naive scheme: every weight from N(mean, std²), whatever the layer's size.

    Args:
        weight: tensor filled in place.
        std: standard deviation σ (the lecture contrasts σ = 1 and σ = 0.01).
        mean: mean of the distribution.
        generator: optional random generator for reproducibility.
        sigma: the lecture's name for ``std``; overrides it when given.

    Returns:
        ``weight``.
    """
    if sigma is not None:
        std = sigma
    if std < 0:
        raise ValueError(f"std must be non-negative, got {std}")
    return weight.normal_(mean, std, generator=generator)


@torch.no_grad()
def xavier_normal_(
    weight: Tensor, gain: float = 1.0, generator: torch.Generator | None = None
) -> Tensor:
    """Glorot/Xavier normal: N(0, σ²) with σ = gain · sqrt(2 / (fan_in + fan_out)).

    Args:
        weight: tensor (≥ 2-D) filled in place.
        gain: scale for the nonlinearity (1 for tanh in the paper; PyTorch suggests 5/3).
        generator: optional random generator.

    Returns:
        ``weight``.
    """
    fan_in, fan_out = compute_fans(weight)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return weight.normal_(0.0, std, generator=generator)


@torch.no_grad()
def xavier_uniform_(
    weight: Tensor, gain: float = 1.0, generator: torch.Generator | None = None
) -> Tensor:
    """Glorot/Xavier uniform: U(−a, a) with a = gain · sqrt(6 / (fan_in + fan_out)).

    The bound makes Var = a²/3 = 2 / (fan_in + fan_out), the same variance as the normal form.

    Args:
        weight: tensor (≥ 2-D) filled in place.
        gain: scale for the nonlinearity.
        generator: optional random generator.

    Returns:
        ``weight``.
    """
    fan_in, fan_out = compute_fans(weight)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return weight.uniform_(-bound, bound, generator=generator)


def _he_std(weight: Tensor, a: float, mode: str) -> float:
    # Gain for leaky ReLU with negative slope a (a = 0 is ReLU): sqrt(2 / (1 + a²)).
    return math.sqrt(2.0 / (1.0 + a * a)) / math.sqrt(_fan(weight, mode))


@torch.no_grad()
def he_normal_(
    weight: Tensor, a: float = 0.0, mode: str = "fan_in", generator: torch.Generator | None = None
) -> Tensor:
    """He/Kaiming normal: N(0, σ²) with σ = sqrt(2 / ((1 + a²) · fan)).

    Args:
        weight: tensor (≥ 2-D) filled in place.
        a: negative slope of a leaky ReLU after the layer (0 for ReLU).
        mode: ``"fan_in"`` keeps the forward variance, ``"fan_out"`` the backward one.
        generator: optional random generator.

    Returns:
        ``weight``.
    """
    return weight.normal_(0.0, _he_std(weight, a, mode), generator=generator)


@torch.no_grad()
def he_uniform_(
    weight: Tensor, a: float = 0.0, mode: str = "fan_in", generator: torch.Generator | None = None
) -> Tensor:
    """He/Kaiming uniform: U(−b, b) with b = sqrt(3) · sqrt(2 / ((1 + a²) · fan)) = sqrt(6 / fan) for ReLU.

    Args:
        weight: tensor (≥ 2-D) filled in place.
        a: negative slope of a leaky ReLU after the layer (0 for ReLU).
        mode: ``"fan_in"`` or ``"fan_out"``.
        generator: optional random generator.

    Returns:
        ``weight``.
    """
    bound = math.sqrt(3.0) * _he_std(weight, a, mode)
    return weight.uniform_(-bound, bound, generator=generator)


def torch_default_(weight: Tensor, **_: Any) -> Tensor:
    """Leave the weight as PyTorch's layer constructor made it (Kaiming uniform with a = sqrt(5))."""
    return weight


INITIALIZERS.register("normal", "N(0, std²) for every weight (kwarg std, default 1.0)")(normal_)
INITIALIZERS.register("xavier_normal", "Glorot normal, std = sqrt(2/(fan_in+fan_out))")(
    xavier_normal_
)
INITIALIZERS.register("xavier_uniform", "Glorot uniform, a = sqrt(6/(fan_in+fan_out))")(
    xavier_uniform_
)
INITIALIZERS.register("he_normal", "He/Kaiming normal, std = sqrt(2/fan_in)")(he_normal_)
INITIALIZERS.register("he_uniform", "He/Kaiming uniform, a = sqrt(6/fan_in)")(he_uniform_)
INITIALIZERS.register("torch_default", "leave PyTorch's own initialisation untouched")(
    torch_default_
)


def list_initializers() -> list[str]:
    """Names accepted by :func:`init_weights`."""
    return INITIALIZERS.names()


@torch.no_grad()
def init_weights(model: nn.Module, scheme: str, **kwargs: Any) -> nn.Module:
    """Re-initialise every Linear/Conv weight of ``model`` with ``scheme`` and zero its bias.

    ``"torch_default"`` leaves weights and biases untouched. Other layers (BatchNorm, embeddings)
    keep their own initialisation.

    Args:
        model: the network, changed in place.
        scheme: a name from :func:`list_initializers`.
        **kwargs: passed to the scheme (``std`` for ``"normal"``, ``gain``, ``a``, ``mode``,
            ``generator``).

    Returns:
        ``model``, for chaining.
    """
    fn = INITIALIZERS.get(scheme)
    if fn is torch_default_:
        return model
    for module in model.modules():
        if not isinstance(module, WEIGHT_LAYERS):
            continue
        fn(module.weight, **kwargs)
        bias = getattr(module, "bias", None)
        if isinstance(bias, Tensor):
            bias.zero_()
    return model


def deep_mlp(
    depth: int = 20,
    width: int = 256,
    activation: str = "tanh",
    bias: bool = True,
) -> nn.Sequential:
    """A plain ``depth``-layer MLP of equal widths, the network of the initialisation experiment.

    Args:
        depth: number of Linear layers, each followed by the activation.
        width: features of every layer (input and output alike).
        activation: ``"tanh"``, ``"relu"``, ``"sigmoid"`` or ``"linear"`` (no activation).
        bias: whether the Linear layers have biases.

    Returns:
        ``nn.Sequential(Linear, act, Linear, act, ...)``.
    """
    if activation not in ("tanh", "relu", "sigmoid", "linear"):
        raise ValueError(
            f"activation must be one of ['linear', 'relu', 'sigmoid', 'tanh'], got {activation!r}"
        )
    make_act = ACTIVATIONS.get(activation)
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width, bias=bias), make_act()]
    return nn.Sequential(*layers)


@torch.no_grad()
def activation_variances(
    model_or_layers: nn.Module | Iterable[nn.Module],
    x: Tensor,
    after: type[nn.Module] | tuple[type[nn.Module], ...] | None = None,
) -> list[float]:
    """Variance of the activations after each layer of a forward pass on ``x``.

    Forward hooks record ``output.var()`` (over all elements) after every module of the types in
    ``after``, in the order they run. By default those are the activation layers (Tanh, ReLU, ...);
    a network without any is measured after each Linear/Conv layer instead. Pass
    ``after=nn.Linear`` to see pre-activations (where a saturating tanh hides an explosion).

    Args:
        model_or_layers: a module, or a sequence of layers applied one after the other.
        x: an input batch (e.g. ``torch.randn(1024, 256)``).
        after: module type(s) whose outputs are measured.

    Returns:
        One variance per measured layer, as Python floats (``inf`` where it overflowed).
    """
    if isinstance(model_or_layers, nn.Module):
        model = model_or_layers
    else:
        model = nn.Sequential(*model_or_layers)
    if after is None:
        has_act = any(isinstance(m, ACTIVATION_TYPES) for m in model.modules())
        after = ACTIVATION_TYPES if has_act else WEIGHT_LAYERS
    variances: list[float] = []

    def hook(_module: nn.Module, _inputs: Sequence[Any], output: Tensor) -> None:
        var = float(output.detach().double().var())
        # An overflowed activation has an infinite spread, not an undefined one.
        variances.append(var if math.isfinite(var) else math.inf)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, after)]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return variances
