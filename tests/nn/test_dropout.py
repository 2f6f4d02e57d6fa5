"""trainlab.nn.dropout: the drop rate, the scaling, the gradient and reproducibility."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainlab.nn.dropout import Dropout, _MaskedScale, dropout, keep_mask, keep_probability

N = 400_000  # elements: the keep rate's standard deviation is under 0.0008


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5, 0.9])
def test_keep_rate_matches_its_probability(p: float) -> None:
    torch.manual_seed(0)
    kept = keep_mask(torch.Size([N]), p).double()
    q = keep_probability(p)
    assert abs(q - (1 - p)) <= 2**-17
    sd = math.sqrt(q * (1 - q) / N)
    assert abs(kept.mean().item() - q) < 5 * sd
    # each 16-bit quarter of a random word is uniform, not just their union
    for k in range(4):
        assert abs(kept[k::4].mean().item() - q) < 5 * 2 * sd


def test_neighbouring_elements_are_independent() -> None:
    torch.manual_seed(1)
    kept = keep_mask(torch.Size([N]), 0.5).double()
    for lag in (1, 2, 3, 4):
        corr = torch.corrcoef(torch.stack([kept[:-lag], kept[lag:]]))[0, 1].item()
        assert abs(corr) < 5 / math.sqrt(N)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_kept_elements_are_scaled_and_dropped_ones_zero(dtype: torch.dtype) -> None:
    torch.manual_seed(2)
    x = (torch.rand(64, 50, 7) + 0.5).to(dtype)  # no zeros of its own
    y = dropout(x, 0.3)
    assert y.dtype == dtype and y.shape == x.shape
    kept = y != 0
    expected = (x.double() / keep_probability(0.3)).to(dtype)
    torch.testing.assert_close(
        y[kept], expected[kept], rtol=1e-2 if dtype == torch.bfloat16 else 1e-6, atol=0
    )
    assert 0.6 < kept.double().mean().item() < 0.8


def test_expectation_is_the_input() -> None:
    torch.manual_seed(3)
    x = torch.full((N,), 2.0, dtype=torch.float64)
    y = dropout(x, 0.2)
    q = keep_probability(0.2)
    sd = 2.0 / q * math.sqrt(q * (1 - q) / N)
    assert abs(y.mean().item() - 2.0) < 5 * sd


def test_gradient_is_the_same_mask() -> None:
    torch.manual_seed(4)
    x = torch.randn(32, 20, 16, dtype=torch.float64, requires_grad=True)
    y = dropout(x, 0.25)
    g = torch.randn_like(y)
    y.backward(g)
    mask = (y != 0).double() / keep_probability(0.25)  # what each element was multiplied by
    torch.testing.assert_close(x.grad, g * mask, rtol=1e-12, atol=0)
    torch.testing.assert_close(y, x * mask, rtol=1e-12, atol=0)


def test_seeded_draws_repeat_and_successive_draws_differ() -> None:
    x = torch.randn(1000)
    torch.manual_seed(5)
    a, b = dropout(x, 0.5), dropout(x, 0.5)
    torch.manual_seed(5)
    torch.testing.assert_close(dropout(x, 0.5), a, rtol=0, atol=0)
    assert not torch.equal(a, b)


def test_evaluation_and_edge_rates() -> None:
    x = torch.randn(10, 10)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x
    assert torch.count_nonzero(dropout(x, 1.0)) == 0
    assert dropout(torch.empty(0, 3), 0.5).shape == (0, 3)
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match="dropout probability"):
            dropout(x, p)
        with pytest.raises(ValueError, match="dropout probability"):
            Dropout(p)


def test_layer_is_a_drop_in_for_torch_dropout() -> None:
    layer, ref = Dropout(0.2), nn.Dropout(0.2)
    assert layer.state_dict() == ref.state_dict() == {}
    assert repr(layer) == "Dropout(p=0.2)"
    x = torch.randn(8, 8)
    layer.eval()
    assert torch.equal(layer(x), ref.eval()(x))
    layer.train()
    assert (layer(x) == 0).any()


def test_masked_product_gradients_against_finite_differences() -> None:
    torch.manual_seed(6)
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    keep = keep_mask(x.shape, 0.3)
    fn = lambda t: _MaskedScale.apply(t, keep, 1 / keep_probability(0.3))  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_backward_keeps_only_the_boolean_mask() -> None:
    saved: list[torch.dtype] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t.dtype)
        return t

    x = torch.randn(32, 100, 8, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        dropout(x, 0.2).sum().backward()
    assert saved == [torch.bool]  # a byte an element, as torch's own dropout keeps
