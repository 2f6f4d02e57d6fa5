"""The COVID network and its penalised loss."""

from __future__ import annotations

import pytest
import torch

from trainlab.covid.model import CovidMLP, make_loss
from trainlab.errors import ConfigError


def test_mlp_shapes_and_penalties() -> None:
    torch.manual_seed(0)
    model = CovidMLP(5, [4, 3], "gelu", batch_norm=True, dropout=0.1, linear_skip=True)
    x, y = torch.randn(8, 5), torch.randn(8)
    assert model(x).shape == (8,)
    weights = model.weight_matrices()
    assert len(weights) == 4  # three layers of the path and the skip
    loss = make_loss(model, "mse", l1=0.01, l2=0.1)
    out = model(x)
    expected = (
        torch.nn.functional.mse_loss(out, y)
        + 0.01 * sum(w.abs().sum() for w in weights)
        + 0.1 * sum((w**2).sum() for w in weights)
    )
    torch.testing.assert_close(loss(out, y), expected)
    model.eval()
    out = model(x)
    torch.testing.assert_close(loss(out, y), torch.nn.functional.mse_loss(out, y))
    huber = make_loss(model, "huber", huber_delta=0.5)
    torch.testing.assert_close(huber(out, y), torch.nn.functional.huber_loss(out, y, delta=0.5))
    with pytest.raises(ConfigError, match="unknown loss"):
        make_loss(model, "hinge")
    with pytest.raises(ConfigError, match="unknown activation"):
        CovidMLP(3, [2], "swoosh")


@pytest.mark.parametrize("batch_norm, dropout", [(False, 0.0), (True, 0.2)])
def test_layers_and_seeded_weights_match_the_hand_built_network(
    batch_norm: bool, dropout: float
) -> None:
    """Saved state dicts keep their keys and a seed gives the weights it always gave."""
    torch.manual_seed(3)
    model = CovidMLP(6, [5, 4], "gelu", batch_norm=batch_norm, dropout=dropout, linear_skip=True)
    torch.manual_seed(3)
    layers: list[torch.nn.Module] = []
    width = 6
    for w in (5, 4):
        layers.append(torch.nn.Linear(width, w))
        if batch_norm:
            layers.append(torch.nn.BatchNorm1d(w))
        layers.append(torch.nn.GELU())
        if dropout > 0:
            layers.append(torch.nn.Dropout(dropout))
        width = w
    layers.append(torch.nn.Linear(width, 1))
    net = torch.nn.Sequential(*layers)
    skip = torch.nn.Linear(6, 1, bias=False)
    expected = {f"net.{k}": v for k, v in net.state_dict().items()}
    expected.update({f"skip.{k}": v for k, v in skip.state_dict().items()})
    got = model.state_dict()
    assert list(got) == list(expected)
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=0)


def test_bad_settings_name_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"model\.dropout must be in \[0, 1\)"):
        CovidMLP(3, [2], dropout=1.0)
    with pytest.raises(ConfigError, match=r"model\.widths must be positive"):
        CovidMLP(3, [2, 0])
    linear = CovidMLP(3, [], "relu")
    assert [type(m) for m in linear.net] == [torch.nn.Linear]
