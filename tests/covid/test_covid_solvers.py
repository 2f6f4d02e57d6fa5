"""Closed-form ridge, stacked networks and the full-batch loop agree with what they replace."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainlab.covid.fullbatch import fit_full_batch, runs_full_batch
from trainlab.covid.linear import fit_linear, ridge_path
from trainlab.covid.model import CovidMLP, make_loss
from trainlab.covid.stacked import StackedMLP, stacked_loss
from trainlab.train import TrainConfig, fit


def _data(n: int = 200, f: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f))
    return x, x @ rng.normal(size=f) + 0.3 * rng.normal(size=n) + 2.0


def test_ridge_path_matches_sklearn() -> None:
    from sklearn.linear_model import Ridge

    x, t = _data()
    alphas = [0.01, 1.0, 100.0]
    coef, icpt = ridge_path(x, t, alphas)
    for k, a in enumerate(alphas):
        ref = Ridge(alpha=a).fit(x, t)
        np.testing.assert_allclose(coef[k], ref.coef_, rtol=1e-8, atol=1e-10)
        assert icpt[k] == pytest.approx(ref.intercept_, abs=1e-9)


def test_ridge_path_zero_alpha_is_least_squares_even_when_collinear() -> None:
    x, t = _data()
    x = np.column_stack([x, x[:, 0]])  # a repeated column
    coef, icpt = ridge_path(x, t, [0.0])
    assert np.all(np.isfinite(coef))
    design = np.column_stack([x, np.ones(len(x))])
    best = np.linalg.lstsq(design, t, rcond=None)[0]
    np.testing.assert_allclose(x @ coef[0] + icpt[0], design @ best, atol=1e-8)


def test_fit_linear_minimises_the_trained_loss() -> None:
    x, t = _data()
    model = CovidMLP(x.shape[1], [], "gelu")
    fit_linear(model, x, t, l2=0.01)
    loss = make_loss(model, "mse", l2=0.01)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(t, dtype=torch.float32)
    model.train()
    base = float(loss(model(xt), yt).detach())
    with torch.no_grad():
        model.net[-1].weight += 1e-3  # any move makes it worse
    assert float(loss(model(xt), yt).detach()) > base


def _tc(epochs: int = 60, seed: int = 0) -> TrainConfig:
    return TrainConfig(
        epochs=epochs, batch_size=4096, optimizer="adam", optimizer_kwargs={"lr": 1e-2},
        scheduler="cosine", device="cpu", restore_best=False, checkpoint=False, quiet=True,
        seed=seed,
    )  # fmt: skip


def test_full_batch_loop_takes_the_trainers_steps() -> None:
    x, t = _data()
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(t, dtype=torch.float32)
    nets = []
    for _ in range(2):
        torch.manual_seed(3)
        nets.append(CovidMLP(x.shape[1], [8], "gelu"))
    tc = _tc()
    assert runs_full_batch(tc, len(x)) and not runs_full_batch(tc, 5000)
    fit(nets[0], make_loss(nets[0], "huber"), (xt, yt), None, tc)
    history = fit_full_batch(nets[1], make_loss(nets[1], "huber"), (xt, yt), tc)
    assert len(history) == tc.epochs
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_stacked_networks_train_as_they_would_alone() -> None:
    x, t = _data()
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(t, dtype=torch.float32)
    alone, together = [], []
    for seed in (0, 1, 2):
        for group in (alone, together):
            torch.manual_seed(seed)
            group.append(CovidMLP(x.shape[1], [8], "gelu"))
    tc = _tc()
    for net in alone:
        fit_full_batch(net, make_loss(net, "huber", l2=1e-3), (xt, yt), tc)
    stack = StackedMLP(together, "gelu")
    fit_full_batch(stack, stacked_loss(stack, "huber", 1.0, 0.0, 1e-3), (xt, yt), tc)
    stack.unstack(together)
    assert not torch.allclose(together[0](xt), together[1](xt))  # the seeds differ
    for a, b in zip(alone, together):
        torch.testing.assert_close(a(xt), b(xt), rtol=1e-4, atol=1e-4)
