"""Hessian-vector products and exact Hessians against torch.autograd.functional.hessian."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainlab.diagnose import (
    FunctionObjective,
    ModelObjective,
    hessian_vector_product,
    select_parameters,
)
from trainlab.errors import TrainlabError


def test_exact_hessian_matches_autograd(problem):
    obj = ModelObjective(problem.model, problem.loss_fn, problem.x, problem.y)
    ref = problem.reference_hessian()
    assert obj.num_params == 101
    torch.testing.assert_close(obj.hessian(), ref, rtol=0, atol=1e-10)
    # one product at a time gives the same columns as the batched build
    torch.testing.assert_close(
        obj.hessian(chunk_size=1000), obj.hessian(chunk_size=7), rtol=0, atol=1e-12
    )


def test_hvp_equals_hessian_times_vector(problem):
    obj = ModelObjective(problem.model, problem.loss_fn, problem.x, problem.y)
    ref = problem.reference_hessian()
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        v = torch.randn(obj.num_params, generator=g, dtype=torch.float64)
        torch.testing.assert_close(obj.hvp(v), ref @ v, rtol=0, atol=1e-10)
    assert obj.num_hvp == 3
    v = torch.randn(obj.num_params, generator=g, dtype=torch.float64)
    hv = hessian_vector_product(problem.model, problem.loss_fn, problem.x, problem.y, v)
    torch.testing.assert_close(hv, ref @ v, rtol=0, atol=1e-10)


def test_loss_and_gradient_match_autograd(problem):
    obj = ModelObjective(problem.model, problem.loss_fn, problem.x, problem.y)
    theta = problem.flat().requires_grad_(True)
    loss = problem.loss_of(theta)
    (grad,) = torch.autograd.grad(loss, theta)
    assert obj.loss() == pytest.approx(float(loss.detach()), rel=1e-14)
    torch.testing.assert_close(obj.gradient(), grad, rtol=0, atol=1e-14)
    shifted = problem.flat() + 0.1
    assert obj.loss(shifted) == pytest.approx(float(problem.loss_of(shifted)), rel=1e-14)


def test_subset_by_prefix_is_the_hessian_block(problem):
    obj = ModelObjective(problem.model, problem.loss_fn, problem.x, problem.y, params="2")
    assert obj.names == ["2.weight", "2.bias"]
    assert obj.num_params == 8 * 6 + 6
    torch.testing.assert_close(obj.hessian(), problem.reference_hessian("2"), rtol=0, atol=1e-10)
    # the same block sits inside the full Hessian
    full = problem.reference_hessian()
    torch.testing.assert_close(obj.hessian(), full[40:94, 40:94], rtol=0, atol=1e-10)


def test_select_parameters_prefix_rules():
    model = nn.Sequential(*[nn.Linear(2, 2) for _ in range(12)])
    assert [n for n, _ in select_parameters(model, "1")] == ["1.weight", "1.bias"]
    assert [n for n, _ in select_parameters(model, "1.weight, 10")] == [
        "1.weight", "10.weight", "10.bias"
    ]  # fmt: skip
    assert len(select_parameters(model)) == 24
    with pytest.raises(TrainlabError, match="no trainable parameter matches 'conv'"):
        select_parameters(model, "conv")


def test_model_is_left_untouched_and_dtype_copy(problem_factory):
    p = problem_factory()
    model = p.model.float()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    obj = ModelObjective(model, p.loss_fn, p.x.float(), p.y.float(), dtype=torch.float64)
    assert obj.dtype == torch.float64
    obj.hessian()
    obj.loss(obj.point() + 1.0)
    for k, v in model.state_dict().items():
        assert v.dtype == torch.float32
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert all(p.requires_grad for p in model.parameters())


def test_tuple_inputs_are_unpacked():
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(3, 1)
            self.b = nn.Linear(2, 1)

        def forward(self, x1, x2):
            return torch.tanh(self.a(x1)) * self.b(x2)

    torch.manual_seed(0)
    model = Two().double()
    x1, x2 = torch.randn(10, 3, dtype=torch.float64), torch.randn(10, 2, dtype=torch.float64)
    y = torch.randn(10, 1, dtype=torch.float64)
    obj = ModelObjective(model, nn.functional.mse_loss, (x1, x2), y)
    names = [n for n, _ in model.named_parameters()]

    def f(theta):
        parts = torch.split(theta, [p.numel() for p in model.parameters()])
        d = {n: t.view(p.shape) for n, t, p in zip(names, parts, model.parameters())}
        return nn.functional.mse_loss(torch.func.functional_call(model, d, (x1, x2)), y)

    ref = torch.autograd.functional.hessian(f, obj.point())
    torch.testing.assert_close(obj.hessian(), ref, rtol=0, atol=1e-10)


def test_penalty_inside_the_loss_sees_the_analysed_weights(problem):
    model = problem.model

    def loss_fn(out, y):  # a loss with an L2 penalty read from model.parameters()
        return nn.functional.mse_loss(out, y) + 0.05 * sum((p**2).sum() for p in model.parameters())

    obj = ModelObjective(model, loss_fn, problem.x, problem.y)
    eye = torch.eye(obj.num_params, dtype=torch.float64)
    torch.testing.assert_close(
        obj.hessian(), problem.reference_hessian() + 0.1 * eye, rtol=0, atol=1e-10
    )
    # weight_decay adds the same penalty from outside
    obj2 = ModelObjective(model, problem.loss_fn, problem.x, problem.y, weight_decay=0.1)
    torch.testing.assert_close(obj2.hessian(), obj.hessian(), rtol=0, atol=1e-10)


def test_bad_losses_raise_clear_errors(problem):
    obj = ModelObjective(problem.model, lambda o, y: (o - y) ** 2, problem.x, problem.y)
    with pytest.raises(TrainlabError, match="must be a scalar"):
        obj.gradient()
    nan_x = problem.x.clone()
    nan_x[0, 0] = float("nan")
    obj = ModelObjective(problem.model, problem.loss_fn, nan_x, problem.y)
    with pytest.raises(TrainlabError, match="not finite"):
        obj.loss()


def test_function_objective_and_linear_function():
    obj = FunctionObjective(lambda t: t[0] ** 2 - t[1] ** 2, torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(
        obj.hessian(), torch.diag(torch.tensor([2.0, -2.0], dtype=torch.float64))
    )
    lin = FunctionObjective(lambda t: 3 * t[0] - t[1], [1.0, 2.0])
    assert torch.equal(lin.hvp(torch.ones(2)), torch.zeros(2))
    torch.testing.assert_close(lin.gradient(), torch.tensor([3.0, -1.0]))
