"""The measurements against references: sharpness, step sizes, noise scale, probes, baseline."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainlab.doctor.curvature import NoiseScale, measure_curvature, step_sizes
from trainlab.doctor.probes import constant_baseline, input_scales, probe_activations


def _regression(n=200, d=5):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.linspace(0.5, 2.0, d).double()
    return x, x @ torch.ones(d, dtype=torch.float64)


def test_sharpness_of_least_squares_against_the_exact_hessian():
    x, y = _regression()
    model = nn.Linear(5, 1, bias=False).double()
    loss = lambda out, t: ((out.squeeze(-1) - t) ** 2).mean()  # noqa: E731
    h = 2 * x.T @ x / len(x)  # the exact Hessian
    lam = torch.linalg.eigvalsh(h)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    r = measure_curvature(model, loss, x, y, opt, bottom=True)
    assert r.lambda_max == pytest.approx(float(lam[-1]), rel=1e-6)
    assert r.stability_ratio == pytest.approx(0.05 * float(lam[-1]) / (2 + 2 * 0.9), rel=1e-6)
    assert r.threshold == pytest.approx((2 + 2 * 0.9) / 0.05)
    assert r.lambda_min == pytest.approx(float(lam[0]), rel=1e-6)
    assert r.verdict == "not a critical point" and r.rule == "heavy-ball momentum"


def test_adam_step_sizes_follow_its_state():
    p = nn.Parameter(torch.tensor([1.0, 2.0]))
    opt = torch.optim.Adam([p], lr=0.1, betas=(0.9, 0.99), eps=1e-8)
    assert step_sizes(opt, [p]) is None  # no statistics before the first step
    p.grad = torch.tensor([0.5, -2.0])
    opt.step()
    sizes = step_sizes(opt, [p])
    assert sizes is not None and sizes.rule == "adam"
    v_hat = torch.tensor([0.25, 4.0]).double()  # v / (1 - β₂) after one step
    denom = (v_hat.sqrt() + 1e-8) * (1 - 0.9)
    torch.testing.assert_close(sizes.diag, 0.1 / denom)
    assert sizes.threshold == pytest.approx((2 + 2 * 0.9) / 0.1)


def test_the_model_and_its_gradients_are_left_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Dropout(0.3),
                          nn.Linear(8, 2))  # fmt: skip
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    nn.functional.cross_entropy(model(x), y).backward()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [p.grad.clone() for p in model.parameters()]
    rng = torch.get_rng_state()
    measure_curvature(model, nn.functional.cross_entropy, x, y, None, bottom=True)
    probe_activations(model, x, seed=1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters()))
    assert torch.equal(rng, torch.get_rng_state()) and model.training


def test_noise_scale_recovers_a_known_one():
    g = torch.Generator().manual_seed(0)
    d, batch = 50, 16
    true_g = torch.full((d,), 0.1)  # |G|² = 0.5
    per_example_std = 1.0  # tr(Σ) = 50: B_simple = 100
    noise = NoiseScale(k=8)
    for _ in range(400):
        noise.start()
        for _ in range(8):
            grad = true_g + torch.randn(d, generator=g) * per_example_std / math.sqrt(batch)
            full = noise.add([grad], batch)
        assert full
        result = noise.close()
    assert result is not None and result["b_simple"] == pytest.approx(100, rel=0.15)


def test_dead_and_saturated_units_and_the_in_place_relu():
    lin = nn.Linear(3, 4)
    with torch.no_grad():
        lin.weight.fill_(0.1)
        lin.bias.copy_(torch.tensor([-10.0, -10.0, 0.0, 10.0]))
    model = nn.Sequential(lin, nn.ReLU(inplace=True), nn.Linear(4, 4), nn.Tanh())
    with torch.no_grad():
        model[2].weight.fill_(0.0)
        model[2].bias.copy_(torch.tensor([5.0, -5.0, 0.0, 0.1]))
    stats, out = probe_activations(model, torch.randn(16, 3))
    assert stats["1"]["dead"] == 0.5 and stats["1"]["units"] == 4
    assert stats["3"]["saturated"] == 0.5
    assert out.shape == (16, 4)


def test_functional_relu_shows_as_dead_inputs():
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 6), nn.Linear(6, 1)
            with torch.no_grad():
                self.a.bias[:3] = -100.0

        def forward(self, x):
            return self.b(torch.relu(self.a(x)))

    stats, _ = probe_activations(Custom(), torch.randn(20, 3))
    assert stats["b"]["dead_inputs"] == 0.5 and "dead_inputs" not in stats["a"]


def test_constant_baseline_is_the_label_entropy_and_the_variance():
    y = torch.tensor([0, 0, 0, 1, 1, 2] * 10)
    p = torch.bincount(y).double() / len(y)
    entropy = float(-(p * p.log()).sum())
    assert constant_baseline(nn.functional.cross_entropy, torch.zeros(60, 3), y) == pytest.approx(
        entropy, rel=1e-4
    )
    t = torch.randn(100)
    mse = constant_baseline(lambda o, t: ((o.squeeze(-1) - t) ** 2).mean(), torch.zeros(100, 1), t)
    assert mse == pytest.approx(float(t.var(unbiased=False)), rel=1e-4)


def test_input_scales():
    x = torch.randn(500, 4) * torch.tensor([1.0, 1.0, 1.0, 1000.0])
    s = input_scales(x)
    assert s is not None and s["scale_spread"] == pytest.approx(1000, rel=0.2)
    assert s["worst_feature"] == 3
    assert input_scales(torch.randint(0, 5, (10, 3))) is None
    assert input_scales(torch.randn(10, 3) + 100)["offset"] > 30
