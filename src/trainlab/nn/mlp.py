"""The one multilayer perceptron builder and the one activation table.

Every MLP in trainlab (the report's digit classifiers, the COVID regressors, the phoneme frame
classifier, the critical-point study, the doctor's test bed) is built here, so a name such as
``"relu"`` means the same layer everywhere. Layers are created in a fixed order
(``[Dropout] (Linear [BatchNorm] act [Dropout])* Linear``), so a seed gives the same weights as
the hand-written ``nn.Sequential`` it replaces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from trainlab.errors import ConfigError
from trainlab.registry import Registry

#: name -> activation-layer factory (shared by every model and config).
ACTIVATIONS: Registry[Callable[[], nn.Module]] = Registry("activation")
ACTIVATIONS.register("relu", "max(0, x)")(nn.ReLU)
ACTIVATIONS.register("leaky_relu", "max(0.01 x, x)")(nn.LeakyReLU)
ACTIVATIONS.register("gelu", "x * Phi(x)")(nn.GELU)
ACTIVATIONS.register("silu", "x * sigmoid(x)")(nn.SiLU)
ACTIVATIONS.register("elu", "x if x > 0 else exp(x) - 1")(nn.ELU)
ACTIVATIONS.register("tanh", "tanh(x)")(nn.Tanh)
ACTIVATIONS.register("sigmoid", "1 / (1 + exp(-x))")(nn.Sigmoid)
ACTIVATIONS.register("linear", "x (no activation)")(nn.Identity)


def activation(name: str) -> nn.Module:
    """A new activation layer by name (a ConfigError listing the names if unknown)."""
    return ACTIVATIONS.get(name)()


def mlp(
    in_features: int,
    hidden: Sequence[int],
    out_features: int,
    activation: str = "relu",
    *,
    batch_norm: bool = False,
    dropout: float = 0.0,
    input_dropout: float = 0.0,
    hidden_bias: bool = True,
) -> nn.Sequential:
    """``[Dropout] (Linear [BatchNorm1d] act [Dropout])* Linear`` as one ``nn.Sequential``.

    Args:
        in_features: input width.
        hidden: hidden widths; empty gives a linear model.
        out_features: output width.
        activation: a name in :data:`ACTIVATIONS`.
        batch_norm: BatchNorm1d after each hidden Linear, before the activation.
        dropout: drop probability after each hidden activation.
        input_dropout: drop probability on the input.
        hidden_bias: whether hidden Linear layers have a bias.

    Returns:
        The network.

    Raises:
        ConfigError: a non-positive width, a probability outside [0, 1), an unknown activation.
    """
    if in_features < 1 or out_features < 1 or any(int(h) < 1 for h in hidden):
        raise ConfigError(
            f"MLP widths must be positive, got {in_features} -> {list(hidden)} -> {out_features}"
        )
    for what, p in (("dropout", dropout), ("input_dropout", input_dropout)):
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"{what} must be in [0, 1), got {p}")
    make_act = ACTIVATIONS.get(activation)
    layers: list[nn.Module] = [nn.Dropout(input_dropout)] if input_dropout > 0 else []
    width = in_features
    for h in hidden:
        layers.append(nn.Linear(width, int(h), bias=hidden_bias))
        if batch_norm:
            layers.append(nn.BatchNorm1d(int(h)))
        layers.append(make_act())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = int(h)
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)
