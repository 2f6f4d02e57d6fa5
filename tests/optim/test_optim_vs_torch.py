"""PyTorch-form optimizers against torch.optim: 20 steps on the same network in float64."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn

import trainlab.optim as optim

CASES: list[tuple[type, type, dict[str, Any]]] = [
    (optim.Adagrad, torch.optim.Adagrad, {"lr": 0.1}),
    (optim.Adagrad, torch.optim.Adagrad, {"lr": 0.1, "weight_decay": 0.1}),
    (
        optim.Adagrad,
        torch.optim.Adagrad,
        {"lr": 0.1, "lr_decay": 0.05, "initial_accumulator_value": 0.2, "eps": 1e-6},
    ),
    (optim.Adagrad, torch.optim.Adagrad, {"lr": 0.1, "maximize": True, "weight_decay": 0.01}),
    (optim.RMSprop, torch.optim.RMSprop, {"lr": 0.01}),
    (optim.RMSprop, torch.optim.RMSprop, {"lr": 0.01, "weight_decay": 0.1, "alpha": 0.9}),
    (optim.RMSprop, torch.optim.RMSprop, {"lr": 0.01, "centered": True}),
    (optim.RMSprop, torch.optim.RMSprop, {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.05}),
    (
        optim.RMSprop,
        torch.optim.RMSprop,
        {"lr": 0.01, "momentum": 0.5, "centered": True, "maximize": True},
    ),
    (optim.Adam, torch.optim.Adam, {"lr": 0.01}),
    (optim.Adam, torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.1, "betas": (0.8, 0.99)}),
    (optim.Adam, torch.optim.Adam, {"lr": 0.01, "amsgrad": True, "weight_decay": 0.01}),
    (
        optim.Adam,
        torch.optim.Adam,
        {"lr": 0.01, "decoupled_weight_decay": True, "weight_decay": 0.1},
    ),
    (optim.Adam, torch.optim.Adam, {"lr": 0.01, "maximize": True, "eps": 1e-4}),
    (optim.AdamLecture, torch.optim.Adam, {"lr": 0.01}),
    (optim.AdamLecture, torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.1, "betas": (0.5, 0.9)}),
    # The lecture's momentum equals PyTorch's heavy ball while the learning rate is constant.
    (optim.Momentum, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}),
    (optim.Momentum, torch.optim.SGD, {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.1}),
]


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3)).double()


def _groups(model: nn.Module) -> list[dict[str, Any]]:
    # Two groups, the second with its own lr, to check group handling as well.
    return [
        {"params": list(model[0].parameters())},
        {"params": list(model[2].parameters()), "lr": 0.02},
    ]


def _step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    opt.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    opt.step()


@pytest.mark.parametrize(
    "ours_cls, torch_cls, kwargs", CASES, ids=lambda v: getattr(v, "__name__", None)
)
def test_equal_to_torch_over_20_steps(
    ours_cls: type, torch_cls: type, kwargs: dict[str, Any]
) -> None:
    ours_model, ref_model = _net(), _net()
    ours = ours_cls(_groups(ours_model), **kwargs)
    ref = torch_cls(_groups(ref_model), **kwargs)
    g = torch.Generator().manual_seed(1)
    for step in range(20):
        x = torch.randn(32, 6, generator=g, dtype=torch.float64)
        y = torch.randn(32, 3, generator=g, dtype=torch.float64)
        _step(ours_model, ours, x, y)
        _step(ref_model, ref, x, y)
        for a, b in zip(ours_model.parameters(), ref_model.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6, msg=f"step {step}")
    moved = sum(
        float((a - b).detach().abs().sum())
        for a, b in zip(ours_model.parameters(), _net().parameters())
    )
    assert moved > 1e-3  # the comparison is not between two frozen networks


@pytest.mark.parametrize(
    "ours_cls, torch_cls",
    [
        (optim.Adam, torch.optim.Adam),
        (optim.RMSprop, torch.optim.RMSprop),
        (optim.Adagrad, torch.optim.Adagrad),
    ],
)
def test_state_dicts_interchange_with_torch(ours_cls: type, torch_cls: type) -> None:
    # Same state names: a torch run continues in ours and the other way round.
    g = torch.Generator().manual_seed(2)
    data = [
        (
            torch.randn(8, 6, generator=g, dtype=torch.float64),
            torch.randn(8, 3, generator=g, dtype=torch.float64),
        )
        for _ in range(6)
    ]
    straight = _net()
    opt = torch_cls(straight.parameters(), lr=0.01)
    for x, y in data:
        _step(straight, opt, x, y)
    for first_cls, second_cls in ((torch_cls, ours_cls), (ours_cls, torch_cls)):
        model = _net()
        opt = first_cls(model.parameters(), lr=0.01)
        for x, y in data[:3]:
            _step(model, opt, x, y)
        state = copy.deepcopy(opt.state_dict())
        opt = second_cls(model.parameters(), lr=0.01)
        opt.load_state_dict(state)
        for x, y in data[3:]:
            _step(model, opt, x, y)
        for a, b in zip(model.parameters(), straight.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "ours_cls, torch_cls", [(optim.Adam, torch.optim.Adam), (optim.RMSprop, torch.optim.RMSprop)]
)
def test_same_under_an_lr_scheduler(ours_cls: type, torch_cls: type) -> None:
    models = [_net(), _net()]
    opts = [ours_cls(models[0].parameters(), lr=0.05), torch_cls(models[1].parameters(), lr=0.05)]
    scheds = [torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5) for o in opts]
    g = torch.Generator().manual_seed(3)
    for _ in range(10):
        x, y = (
            torch.randn(8, 6, generator=g, dtype=torch.float64),
            torch.randn(8, 3, generator=g, dtype=torch.float64),
        )
        for model, opt, sched in zip(models, opts, scheds):
            _step(model, opt, x, y)
            sched.step()
    assert opts[0].param_groups[0]["lr"] == opts[1].param_groups[0]["lr"] < 0.05
    for a, b in zip(*(m.parameters() for m in models)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
