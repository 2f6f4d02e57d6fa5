"""Iterables of batches: one-shot iterators are refused for several epochs, callables give fresh
batches each epoch, and a per-step schedule spans exactly the run's steps whatever the data is."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from trainlab.errors import ConfigError, TrainlabError
from trainlab.train import Callback, TrainConfig, as_batches, evaluate, fit
from trainlab.train.batches import epoch_batches, steps_per_epoch

N_BATCHES = 8


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = x @ torch.randn(8, generator=g)
    return [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)]


class NoLen:
    """A re-iterable without ``len()``, like a streaming dataset."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)


class LRs(Callback):
    def __init__(self):
        self.after_step: list[float] = []

    def on_step_end(self, state):
        self.after_step.append(state.optimizer.param_groups[0]["lr"])


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))


def loss(o, t):
    return nn.functional.mse_loss(o.squeeze(-1), t)


def cfg(**kw):
    base = dict(epochs=4, optimizer="sgd", optimizer_kwargs={"lr": 0.05}, device="cpu", quiet=True)
    base.update(kw)
    return TrainConfig(**base)


def test_one_shot_generator_refused_for_several_epochs():
    batches = data()
    with pytest.raises(ConfigError, match="one-shot iterator.*re-iterable.*callable"):
        fit(model(), loss, (b for b in batches), None, cfg())
    with pytest.raises(ConfigError, match="validation data is a one-shot iterator"):
        fit(model(), loss, batches, iter(batches), cfg())


def test_one_shot_generator_trains_a_single_epoch_with_declared_steps():
    batches = data()
    hist = fit(model(), loss, (b for b in batches), None, cfg(epochs=1, steps_per_epoch=8))
    assert len(hist) == 1 and hist["train_loss"][0] > 0


def test_one_shot_iterator_without_steps_cannot_size_the_schedule():
    with pytest.raises(ConfigError, match="steps_per_epoch"):
        fit(model(), loss, iter(data()), None, cfg(epochs=1, scheduler="cosine"))


def test_callable_gives_fresh_batches_each_epoch_and_equals_a_list():
    batches = data()
    calls = []

    def factory():
        calls.append(1)
        return (b for b in batches)

    h_fn = fit(model(), loss, factory, None, cfg())
    h_list = fit(model(), loss, batches, None, cfg())
    assert h_fn["train_loss"] == h_list["train_loss"]
    assert all(v > 0 for v in h_fn["train_loss"])
    assert len(calls) == 4 + 1  # one pass per epoch, and one to count the batches


def test_callable_may_return_arrays():
    batches = data()
    x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    h_fn = fit(model(), loss, lambda: (x, y), None, cfg(batch_size=32, shuffle=False))
    h_arr = fit(model(), loss, (x, y), None, cfg(batch_size=32, shuffle=False))
    assert h_fn["train_loss"] == h_arr["train_loss"]


def test_an_epoch_without_batches_is_an_error_not_zero():
    state = {"epoch": 0}

    def factory():  # full batches in the first epoch, nothing afterwards
        state["epoch"] += 1
        return data() if state["epoch"] <= 2 else []

    with pytest.raises(TrainlabError, match="epoch 2: the training data yielded no batches"):
        fit(model(), loss, factory, None, cfg())
    with pytest.raises(TrainlabError, match="yields no batches"):
        fit(model(), loss, [], None, cfg())
    with pytest.raises(TrainlabError, match="no batches"):
        evaluate(model(), loss, [])


@pytest.mark.parametrize(
    "make, kw",
    [
        (lambda b: b, {}),  # len() available
        (NoLen, {}),  # counted with one pass
        (NoLen, {"steps_per_epoch": N_BATCHES}),  # declared
        (lambda b: lambda: iter(b), {}),  # a callable, counted
    ],
    ids=["list", "counted", "declared", "callable"],
)
def test_cosine_reaches_zero_exactly_at_the_last_step(make, kw):
    lrs = LRs()
    hist = fit(model(), loss, make(data()), None, cfg(scheduler="cosine", **kw), callbacks=[lrs])
    assert hist["lr"][:3] == pytest.approx(
        [0.05 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in (1, 2, 3)]
    )
    assert len(lrs.after_step) == 4 * N_BATCHES
    assert lrs.after_step[-1] == 0.0
    assert all(lr > 0 for lr in lrs.after_step[:-1])
    halfway = lrs.after_step[2 * N_BATCHES - 1]
    assert halfway == pytest.approx(0.05 * 0.5 * (1 + math.cos(math.pi / 2)))


def test_declared_steps_must_match_len():
    with pytest.raises(ConfigError, match="steps_per_epoch is 5 but the training data has 8"):
        fit(model(), loss, data(), None, cfg(steps_per_epoch=5))


def test_counting_pass_leaves_global_random_generators_alone():
    class Noisy:
        def __iter__(self):
            torch.rand(1), np.random.rand(), random.random()  # draws from every global generator
            return iter(data())

    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    assert steps_per_epoch(epoch_batches(Noisy(), 32, epochs=2)) == N_BATCHES
    after = torch.rand(1).item(), np.random.rand(), random.random()
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    assert after == (torch.rand(1).item(), np.random.rand(), random.random())


def test_as_batches_rejects_other_things():
    with pytest.raises(TrainlabError, match="tuple of arrays"):
        as_batches(3, 32)
    with pytest.raises(TrainlabError, match="factory returned int"):
        iter(as_batches(lambda: 3, 32))
