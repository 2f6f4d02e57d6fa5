"""The COVID task's network and loss: an MLP of configurable widths, plus L1/L2 penalties.

The course's sample model is ``Linear(93, 64) -> ReLU -> Linear(64, 1)`` trained with MSE; here the
widths, activation, batch normalisation, dropout and an optional linear skip path (a ridge-like
term the hidden layers add to; useful when the signal is mostly linear) are settings. Penalties
follow the lecture's "overfitting" remedies: ``l1 * sum|w| + l2 * sum w^2`` over the weight
matrices (biases and normalisation parameters are not penalised), added to the training loss only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

from trainlab.errors import ConfigError
from trainlab.nn.mlp import mlp

LOSSES = ("mse", "huber", "l1")


class CovidMLP(nn.Module):
    """``n_inputs -> widths... -> 1`` with optional BatchNorm, dropout and a linear skip path.

    Args:
        n_inputs: number of input features.
        widths: hidden layer widths; empty means a linear model.
        activation: a name in :data:`trainlab.nn.mlp.ACTIVATIONS`.
        batch_norm: BatchNorm1d after each hidden Linear (before the activation).
        dropout: dropout probability after each hidden activation.
        linear_skip: add ``Linear(n_inputs, 1)`` of the inputs to the output.
    """

    def __init__(
        self,
        n_inputs: int,
        widths: Sequence[int] = (64,),
        activation: str = "relu",
        batch_norm: bool = False,
        dropout: float = 0.0,
        linear_skip: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {dropout}")
        if any(w < 1 for w in widths):
            raise ConfigError(f"model.widths must be positive, got {list(widths)}")
        self.net = mlp(n_inputs, widths, 1, activation, batch_norm=batch_norm, dropout=dropout)
        self.skip = nn.Linear(n_inputs, 1, bias=False) if linear_skip else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.net(x)  # (B, F) -> (B, 1)
        if self.skip is not None:
            out = out + self.skip(x)
        return out.squeeze(-1)  # (B, 1) -> (B,)

    def weight_matrices(self) -> list[Tensor]:
        """The penalised parameters: weights of the Linear layers."""
        return [m.weight for m in self.modules() if isinstance(m, nn.Linear)]


def make_loss(
    model: CovidMLP,
    loss: str = "mse",
    huber_delta: float = 1.0,
    l1: float = 0.0,
    l2: float = 0.0,
    penalize_in_eval: bool = False,
) -> Callable[[Tensor, Tensor], Tensor]:
    """The loss ``fit`` minimises: the data term plus L1/L2 penalties while the model trains.

    The penalties are skipped in evaluation mode (unless ``penalize_in_eval``) so validation
    losses stay comparable across penalty strengths.

    Args:
        model: the network whose weights are penalised.
        loss: ``mse``, ``huber`` (smooth L1 with threshold ``huber_delta``) or ``l1``.
        huber_delta: where the Huber loss turns from quadratic to linear (target units).
        l1: coefficient of ``sum |w|``.
        l2: coefficient of ``sum w^2``.
        penalize_in_eval: add the penalties in evaluation mode too (the objective as trained,
            for diagnosing the loss surface).
    """
    if loss == "mse":
        data_term: Callable[[Tensor, Tensor], Tensor] = nn.functional.mse_loss
    elif loss == "huber":

        def data_term(out: Tensor, y: Tensor) -> Tensor:
            return nn.functional.huber_loss(out, y, delta=huber_delta)

    elif loss == "l1":
        data_term = nn.functional.l1_loss
    else:
        raise ConfigError(f"unknown loss {loss!r}; choose one of: {', '.join(LOSSES)}")
    if l1 < 0 or l2 < 0:
        raise ConfigError(f"l1 and l2 must be >= 0, got l1={l1}, l2={l2}")
    weights = model.weight_matrices()

    def loss_fn(outputs: Tensor, targets: Tensor) -> Tensor:
        value = data_term(outputs, targets)
        if (model.training or penalize_in_eval) and (l1 > 0 or l2 > 0):
            if l1 > 0:
                value = value + l1 * sum(w.abs().sum() for w in weights)
            if l2 > 0:
                value = value + l2 * sum((w * w).sum() for w in weights)
        return value

    return loss_fn


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def describe(model: CovidMLP, n_inputs: int, widths: Sequence[int], activation: str) -> str:
    """``MLP 14-16-1 (gelu, 257 parameters)``-style summary (``linear 23-1 (...)`` without
    hidden layers)."""
    dims = "-".join(str(d) for d in (n_inputs, *widths, 1))
    if not widths:
        return f"linear {dims} ({count_parameters(model)} parameters)"
    extras = []
    if any(isinstance(m, nn.BatchNorm1d) for m in model.modules()):
        extras.append("batch norm")
    if any(isinstance(m, nn.Dropout) for m in model.modules()):
        extras.append("dropout")
    if model.skip is not None:
        extras.append("linear skip")
    extra = f", {', '.join(extras)}" if extras else ""
    return f"MLP {dims} ({activation}{extra}, {count_parameters(model)} parameters)"
