"""Several networks of one architecture, trained side by side as one module.

The fallback tier averages networks that differ only in their seed. Trained one after another,
each step of each network pays Python's and PyTorch's per-call overhead on a ~2,000-row batch;
stacked, one batched matrix product per layer serves them all. :class:`StackedMLP` holds the
networks' weights as ``(S, in, out)`` tensors initialised from the individual networks (so each
starts exactly where it would alone); the loss is the sum of the networks' own losses, so every
network's gradient, and with a per-parameter optimiser (Adam, SGD) every update, is the one it
would get alone. :meth:`StackedMLP.unstack` writes the trained weights back into the networks.
Hidden layers without batch normalisation or dropout only (:func:`stackable`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from trainlab.covid.model import CovidMLP, make_loss
from trainlab.nn.mlp import activation


def stackable(n: int, batch_norm: bool, dropout: float, linear_skip: bool) -> bool:
    """Whether ``n`` networks with these settings can be trained stacked."""
    return n > 1 and not batch_norm and dropout == 0.0 and not linear_skip


class StackedMLP(nn.Module):
    """``(B, F) -> (S, B)``: the S networks' outputs for one batch of inputs.

    Args:
        nets: networks of one architecture (Linear layers and one activation).
        activation_name: their activation (:data:`trainlab.nn.mlp.ACTIVATIONS`).
    """

    def __init__(self, nets: Sequence[CovidMLP], activation_name: str) -> None:
        super().__init__()
        layers = [[m for m in net.modules() if isinstance(m, nn.Linear)] for net in nets]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([ls[k].weight.detach().t() for ls in layers]).contiguous())
            for k in range(len(layers[0]))
        )  # (S, in, out)
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([ls[k].bias.detach() for ls in layers]).unsqueeze(1))
            for k in range(len(layers[0]))
        )  # (S, 1, out)
        self.act = activation(activation_name)

    def forward(self, x: Tensor) -> Tensor:
        h = x.unsqueeze(0).expand(len(self.weights[0]), -1, -1)
        last = len(self.weights) - 1
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if k < last:
                h = self.act(h)
        return h.squeeze(-1)

    def weight_matrices(self) -> list[Tensor]:
        """The penalised parameters (every network's weight matrices)."""
        return list(self.weights)

    def unstack(self, nets: Sequence[CovidMLP]) -> None:
        """Copy each network's trained weights back into ``nets``."""
        with torch.no_grad():
            for s, net in enumerate(nets):
                layers = [m for m in net.modules() if isinstance(m, nn.Linear)]
                for k, layer in enumerate(layers):
                    layer.weight.copy_(self.weights[k][s].t())
                    layer.bias.copy_(self.biases[k][s, 0])


def stacked_loss(
    model: StackedMLP, loss: str, huber_delta: float, l1: float, l2: float
) -> Callable[[Tensor, Tensor], Tensor]:
    """The sum over the networks of each one's loss (:func:`make_loss`) on ``(S, B)`` outputs
    and ``(B,)`` targets."""
    n = len(model.weights[0])
    inner = make_loss(model, loss, huber_delta, l1 / n, l2 / n)  # type: ignore[arg-type]

    def loss_fn(outputs: Tensor, targets: Tensor) -> Tensor:
        return n * inner(outputs, targets.unsqueeze(0).expand_as(outputs))

    return loss_fn
