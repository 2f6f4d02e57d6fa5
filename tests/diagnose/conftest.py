"""Fixtures for the diagnostics tests: a small float64 MLP problem and its reference Hessian."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn


@dataclass
class Problem:
    model: nn.Module
    x: Tensor
    y: Tensor

    @staticmethod
    def loss_fn(out: Tensor, y: Tensor) -> Tensor:
        return nn.functional.mse_loss(out, y)

    def flat(self) -> Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.model.parameters()])

    def loss_of(self, theta: Tensor, prefix: str | None = None) -> Tensor:
        """The loss as a function of the flat parameters (all, or those starting with prefix)."""
        named = [(n, p) for n, p in self.model.named_parameters()]
        chosen = [(n, p) for n, p in named if prefix is None or n.startswith(prefix + ".")]
        parts = torch.split(theta, [p.numel() for _, p in chosen])
        tensors = {n: p.detach() for n, p in named}
        tensors.update({n: t.view(p.shape) for (n, p), t in zip(chosen, parts)})
        return self.loss_fn(torch.func.functional_call(self.model, tensors, (self.x,)), self.y)

    def reference_hessian(self, prefix: str | None = None) -> Tensor:
        theta = torch.cat(
            [p.detach().reshape(-1) for n, p in self.model.named_parameters()
             if prefix is None or n.startswith(prefix + ".")]
        )  # fmt: skip
        return torch.autograd.functional.hessian(lambda t: self.loss_of(t, prefix), theta)


def make_problem(seed: int = 0, widths: tuple[int, ...] = (4, 8, 6, 1), n: int = 32) -> Problem:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.Tanh())
    model = nn.Sequential(*layers).double()
    x = torch.randn(n, widths[0], generator=g, dtype=torch.float64)
    y = torch.randn(n, widths[-1], generator=g, dtype=torch.float64)
    return Problem(model, x, y)


@pytest.fixture
def problem() -> Problem:
    """A 4-8-6-1 tanh MLP (101 parameters) on 32 random float64 points."""
    return make_problem()


@pytest.fixture
def problem_factory():  # type: ignore[no-untyped-def]
    """``make_problem(seed, widths, n)`` for tests that need another size."""
    return make_problem
