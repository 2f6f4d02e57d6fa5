"""BatchNorm and dropout: evaluation mode by default, training mode on a fixed batch, no side effects."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainlab.diagnose import ModelObjective


def ours_bn(n: int) -> nn.Module:
    from trainlab.nn import BatchNorm1d

    return BatchNorm1d(n)


BATCH_NORMS = {"torch": nn.BatchNorm1d, "trainlab": ours_bn}


def bn_dropout_model(bn: str = "torch") -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(4, 6), BATCH_NORMS[bn](6), nn.Tanh(), nn.Dropout(0.3), nn.Linear(6, 1)
    ).double()
    with torch.no_grad():  # non-trivial running statistics, as after training
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
        model[1].num_batches_tracked.fill_(17)
    return model


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(24, 4, generator=g, dtype=torch.float64)
    return x, torch.randn(24, 1, generator=g, dtype=torch.float64)


def reference_hessian(model: nn.Module, x, y, mode: str, seed: int) -> torch.Tensor:
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]

    def f(theta):
        parts = torch.split(theta, [p.numel() for p in model.parameters()])
        d = {n: t.view(s) for n, t, s in zip(names, parts, shapes)}
        d.update({n: b.clone() for n, b in model.named_buffers()})
        model.train(mode == "train")
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            out = torch.func.functional_call(model, d, (x,))
        return nn.functional.mse_loss(out, y)

    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    h = torch.autograd.functional.hessian(f, theta)
    model.eval()
    return h


@pytest.mark.parametrize("bn", sorted(BATCH_NORMS))
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_mode_hessian_matches_reference(mode, bn):
    model = bn_dropout_model(bn).eval()
    x, y = batch()
    obj = ModelObjective(model, nn.functional.mse_loss, x, y, mode=mode, seed=5)
    torch.testing.assert_close(
        obj.hessian(), reference_hessian(model, x, y, mode, 5), rtol=0, atol=1e-10
    )


@pytest.mark.parametrize("bn", sorted(BATCH_NORMS))
def test_train_mode_leaves_buffers_flags_and_rng_untouched(bn):
    model = bn_dropout_model(bn).eval()
    x, y = batch()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    obj = ModelObjective(model, nn.functional.mse_loss, x, y, mode="train")
    obj.hessian()
    obj.hvp(torch.ones(obj.num_params, dtype=torch.float64))
    obj.loss(obj.point() * 0.9)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} changed"
    assert int(model[1].num_batches_tracked) == 17
    assert not any(m.training for m in model.modules())  # still in eval mode
    assert torch.equal(torch.rand(3), expected_next)  # the global random stream is undisturbed
    model.train()
    obj.loss(obj.point() * 1.1)
    assert all(m.training for m in model.modules())  # a training-mode model stays in training


def test_train_mode_is_deterministic_and_differs_from_eval():
    model = bn_dropout_model()
    x, y = batch()
    train = ModelObjective(model, nn.functional.mse_loss, x, y, mode="train", seed=1)
    v = torch.linspace(-1, 1, train.num_params, dtype=torch.float64)
    assert torch.equal(train.hvp(v), train.hvp(v))
    assert train.loss() == train.loss(train.point())
    other_seed = ModelObjective(model, nn.functional.mse_loss, x, y, mode="train", seed=2)
    assert other_seed.loss() != train.loss()  # another dropout mask, another function
    evaluation = ModelObjective(model, nn.functional.mse_loss, x, y, mode="eval")
    assert not torch.allclose(evaluation.hvp(v), train.hvp(v))


def test_invalid_mode():
    x, y = batch()
    with pytest.raises(ValueError, match="mode must be"):
        ModelObjective(bn_dropout_model(), nn.functional.mse_loss, x, y, mode="test")
