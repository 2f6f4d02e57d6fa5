"""evaluate and predict: exact against a direct computation, training mode restored."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from trainlab.errors import TrainlabError
from trainlab.train import accuracy, evaluate, predict


def setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    x, y = torch.randn(50, 4), torch.randint(0, 3, (50,))
    return model, x, y


def test_evaluate_matches_a_direct_computation_in_eval_mode():
    model, x, y = setup()
    model.train()
    scores = evaluate(model, nn.functional.cross_entropy, (x, y), {"acc": accuracy}, batch_size=16)
    assert model.training
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert scores["loss"] == pytest.approx(nn.functional.cross_entropy(out, y).item(), rel=1e-6)
    assert scores["acc"] == accuracy(out, y)


def test_evaluate_accepts_batches_and_callables():
    model, x, y = setup()
    batches = [(x[:20], y[:20]), (x[20:], y[20:])]
    a = evaluate(model, nn.functional.cross_entropy, (x, y))
    b = evaluate(model, nn.functional.cross_entropy, batches)
    c = evaluate(model, nn.functional.cross_entropy, lambda: iter(batches))
    assert a["loss"] == pytest.approx(b["loss"]) and b == c


def test_ragged_outputs_average_metrics_over_batches():
    model, x, y = setup()
    batches = [(x[:20, None].expand(20, 2, 4), y[:20, None].expand(20, 2)), (x[20:], y[20:])]

    def flat_acc(o, t):
        return accuracy(o.reshape(-1, 3), t.reshape(-1))

    model.eval()
    with torch.no_grad():
        expected = (
            flat_acc(model(batches[0][0]), batches[0][1]) * 20
            + flat_acc(model(x[20:]), y[20:]) * 30
        ) / 50
    assert evaluate(model, None, batches, {"acc": flat_acc})["acc"] == pytest.approx(expected)


def test_evaluate_has_no_private_keyword_and_refuses_empty_data():
    assert not any(p.startswith("_") for p in inspect.signature(evaluate).parameters)
    model, _, _ = setup()
    with pytest.raises(TrainlabError, match="no batches"):
        evaluate(model, nn.functional.cross_entropy, [])


def test_predict_arrays_and_iterables():
    model, x, _ = setup()
    model.train()
    a = predict(model, x, batch_size=7)
    b = predict(model, [x[:25], x[25:]])
    assert model.training and a.shape == (50, 3)
    torch.testing.assert_close(a, b)
