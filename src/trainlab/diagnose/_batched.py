"""Many small MLPs trained at once: one leaf tensor ``(N, n)`` holds every network's parameters.

The critical-point study trains dozens of tiny networks; running them as one batched computation
(batched matrix products over the leading network axis) is what makes it take seconds. Networks
never interact: the total loss is the sum of the per-network losses, so its gradient and Hessian
are block-diagonal over networks, and one batched Hessian-vector product with the basis vector
``e_j`` in every network gives column ``j`` of all ``N`` Hessians at once.

The parameter layout equals ``nn.Sequential(Linear, act, Linear, act, ..., Linear)``'s
``named_parameters()`` order, so each row loads into :func:`build_mlp`'s module.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from trainlab.nn.mlp import ACTIVATIONS, mlp

#: The activations the batched study supports (smooth ones: the Hessian must exist everywhere).
SMOOTH_ACTIVATIONS = ("tanh", "sigmoid")


def layer_sizes(in_features: int, hidden: Sequence[int]) -> list[tuple[int, int]]:
    """``[(fan_in, fan_out), ...]`` of each Linear layer (one output)."""
    dims = [in_features, *hidden, 1]
    return list(zip(dims[:-1], dims[1:]))


def num_params(in_features: int, hidden: Sequence[int]) -> int:
    return sum(i * o + o for i, o in layer_sizes(in_features, hidden))


def build_mlp(in_features: int, hidden: Sequence[int], activation: str) -> nn.Sequential:
    """The single-network module whose parameters one row of the batched tensor holds."""
    return mlp(in_features, hidden, 1, activation)


def init_params(
    n_networks: int,
    in_features: int,
    hidden: Sequence[int],
    seeds: Sequence[int],
    dtype: torch.dtype,
) -> Tensor:
    """PyTorch's default Linear initialisation, ``U(-1/√fan_in, 1/√fan_in)``, one seed per network.

    Returns:
        ``(N, n)`` parameters.
    """
    rows = []
    for s in seeds[:n_networks]:
        g = torch.Generator().manual_seed(int(s))
        parts = []
        for i, o in layer_sizes(in_features, hidden):
            bound = 1.0 / i**0.5
            parts.append((torch.rand(o * i + o, generator=g, dtype=torch.float64) * 2 - 1) * bound)
        rows.append(torch.cat(parts))
    return torch.stack(rows).to(dtype)


def forward(
    theta: Tensor, x: Tensor, in_features: int, hidden: Sequence[int], activation: str
) -> Tensor:
    """All networks on the same inputs: ``theta (N, n)``, ``x (B, d)`` -> ``(N, B)``."""
    act = ACTIVATIONS.get(activation)()
    sizes = layer_sizes(in_features, hidden)
    h = x.unsqueeze(0).expand(theta.shape[0], -1, -1)  # (N, B, d)
    start = 0
    for j, (i, o) in enumerate(sizes):
        w = theta[:, start : start + o * i].reshape(-1, o, i)  # (N, out, in)
        b = theta[:, start + o * i : start + o * i + o]  # (N, out)
        start += o * i + o
        h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))  # (N, B, out)
        if j < len(sizes) - 1:
            h = act(h)
    return h.squeeze(-1)  # (N, B)


def losses(
    theta: Tensor,
    x: Tensor,
    y: Tensor,
    in_features: int,
    hidden: Sequence[int],
    activation: str,
    weight_decay: float = 0.0,
) -> Tensor:
    """Every network's mean squared error plus ``½ · weight_decay · ‖θ‖²``, shape ``(N,)``."""
    mse = ((forward(theta, x, in_features, hidden, activation) - y.unsqueeze(0)) ** 2).mean(1)
    return mse + 0.5 * weight_decay * (theta**2).sum(1) if weight_decay else mse


def hessians(grad: Tensor, theta: Tensor) -> Tensor:
    """Every network's Hessian ``(N, n, n)`` from the batched gradient ``(N, n)`` (with graph)."""
    n = theta.shape[1]
    basis = torch.eye(n, dtype=theta.dtype).unsqueeze(1).expand(n, theta.shape[0], n)  # (n, N, n)
    (cols,) = torch.autograd.grad(
        grad, theta, grad_outputs=basis, retain_graph=True, is_grads_batched=True
    )
    h = cols.permute(1, 0, 2)  # (N, n, n)
    return (h + h.transpose(1, 2)) / 2
