"""Every registered optimizer: progress on Rosenbrock, state_dict round trip, registry behaviour."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

import trainlab.optim as optim
from trainlab.errors import ConfigError
from trainlab.optim import OPTIMIZERS, create_optimizer, list_optimizers

# Learning rates that make each optimizer progress on Rosenbrock from (-1.5, 2) in 500 steps. The
# adaptive ones move about lr per coordinate and step; PyTorch's Adagrad divides by the root of a
# growing sum, so it needs the largest. Unlisted names get 1e-3.
ROSENBROCK_LR = {
    "sgd": 2e-3,
    "momentum": 1e-3,
    "adagrad": 2.0,
    "torch_adagrad": 2.0,
    "adagrad_lecture": 0.2,
    "rmsprop": 0.1,
    "torch_rmsprop": 0.1,
    "rmsprop_lecture": 0.1,
    "adam": 0.1,
    "torch_adam": 0.1,
    "adam_lecture": 0.1,
    "adamw": 0.1,
}


def rosenbrock(xy: torch.Tensor) -> torch.Tensor:
    x, y = xy[0], xy[1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def test_registry_has_the_chapter_optimizers() -> None:
    names = set(list_optimizers())
    assert {"momentum", "adagrad", "rmsprop", "adam"} <= names
    assert {"adagrad_lecture", "rmsprop_lecture", "adam_lecture"} <= names
    assert {"sgd", "torch_adam"} <= names
    with pytest.raises(ConfigError, match="unknown optimizer"):
        create_optimizer("adamax_typo", [torch.zeros(1, requires_grad=True)])


@pytest.mark.parametrize("name", list_optimizers())
def test_progress_on_rosenbrock(name: str) -> None:
    xy = torch.tensor([-1.5, 2.0], dtype=torch.float64, requires_grad=True)
    start = float(rosenbrock(xy.detach()))
    opt = create_optimizer(name, [xy], lr=ROSENBROCK_LR.get(name, 1e-3))
    for _ in range(500):
        opt.zero_grad()
        loss = rosenbrock(xy)
        loss.backward()
        opt.step()
    final = float(rosenbrock(xy.detach()))
    assert final == final and final < 0.1 * start, f"{name}: {start:.3f} -> {final:.3f}"


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2)).double()


def _batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [
        (
            torch.randn(16, 5, generator=g, dtype=torch.float64),
            torch.randn(16, 2, generator=g, dtype=torch.float64),
        )
        for _ in range(n)
    ]


def _train(model: nn.Module, opt: torch.optim.Optimizer, batches: list) -> None:  # type: ignore[type-arg]
    for x, y in batches:
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("name", list_optimizers())
def test_state_dict_round_trip_continues_identically(name: str) -> None:
    batches = _batches(10)
    kwargs = {"lr": 1e-2, "weight_decay": 1e-3}
    straight = _model()
    opt = create_optimizer(name, straight.parameters(), **kwargs)
    _train(straight, opt, batches)

    first = _model()
    opt = create_optimizer(name, first.parameters(), **kwargs)
    _train(first, opt, batches[:5])
    buf = io.BytesIO()
    torch.save({"model": first.state_dict(), "optimizer": opt.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)  # checkpoints load with weights_only

    resumed = _model()
    resumed.load_state_dict(saved["model"])
    opt = create_optimizer(name, resumed.parameters(), lr=123.0)  # lr comes from the state
    opt.load_state_dict(saved["optimizer"])
    _train(resumed, opt, batches[5:])
    for a, b in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "name", [n for n in list_optimizers() if OPTIMIZERS.get(n).__module__.startswith("trainlab")]
)
def test_trainlab_optimizers_skip_params_without_grad_and_support_groups(name: str) -> None:
    a = torch.ones(3, requires_grad=True)
    b = torch.ones(2, requires_grad=True)
    frozen = torch.ones(2, requires_grad=True)
    opt = create_optimizer(name, [{"params": [a, frozen]}, {"params": [b], "lr": 0.0}], lr=0.1)
    (a.sum() + 2 * b.sum()).backward()
    opt.step()
    assert torch.all(a < 1)  # moved against the gradient
    assert torch.equal(frozen, torch.ones(2)) and frozen not in opt.state
    if name != "momentum":  # lr 0 stops every update except the lecture momentum's (m carries on)
        assert torch.equal(b.detach(), torch.ones(2))
    loss = opt.step(lambda: torch.tensor(1.5))
    assert float(loss) == 1.5


@pytest.mark.parametrize(
    "name",
    [
        "momentum",
        "adagrad",
        "adagrad_lecture",
        "rmsprop",
        "rmsprop_lecture",
        "adam",
        "adam_lecture",
    ],
)
def test_invalid_hyperparameters_raise(name: str) -> None:
    p = [torch.zeros(1, requires_grad=True)]
    with pytest.raises(ValueError, match="lr"):
        create_optimizer(name, p, lr=-1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        create_optimizer(name, p, lr=0.1, weight_decay=-1.0)


def test_maximize_ascends() -> None:
    for cls in (optim.Adam, optim.Adagrad, optim.RMSprop, optim.Momentum, optim.AdamLecture):
        p = torch.zeros(2, requires_grad=True)
        opt = cls([p], lr=0.1, maximize=True)
        p.sum().backward()
        opt.step()
        assert torch.all(p > 0), cls.__name__
        assert torch.equal(p.grad, torch.ones(2))  # the gradient itself is left alone


def test_sparse_gradients_are_refused() -> None:
    emb = nn.Embedding(5, 3, sparse=True)
    opt = optim.Adam(emb.parameters())
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()
