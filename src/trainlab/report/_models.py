"""Small models and helpers the report's sections share (MLPs on flattened digits)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def mlp(
    n_in: int,
    hidden: Sequence[int],
    n_out: int = 10,
    activation: str = "relu",
    dropout: float = 0.0,
) -> nn.Sequential:
    """``Linear -> act [-> Dropout]`` per hidden width, then a linear output layer."""
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
    return nn.functional.cross_entropy(outputs, targets)


@torch.no_grad()
def loss_and_accuracy(model: nn.Module, x: Tensor, y: Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` (in eval mode) on the whole of ``(x, y)``."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = torch.cat([model(xb.to(device)).cpu() for xb in x.split(2048)])
    model.train(was_training)
    return float(nn.functional.cross_entropy(out, y)), float((out.argmax(1) == y).float().mean())


def subset(x: Tensor, y: Tensor, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """A class-stratified subset of ``n`` rows, the same for a given seed."""
    if n >= len(y):
        return x, y
    from sklearn.model_selection import train_test_split

    idx, _ = train_test_split(
        torch.arange(len(y)).numpy(), train_size=n, stratify=y.numpy(), random_state=seed
    )
    idx = torch.from_numpy(idx).sort().values
    return x[idx], y[idx]
