"""Section 3: the critical-point study and the saddle escape on the digits, then rendered."""

from __future__ import annotations

import math

import pytest
import torch

from trainlab import diagnose
from trainlab.report.sections import critical

TINY = critical.Config(
    n_networks=4, study_quick=True, escape_hidden=4, escape_samples=64, train_steps=10
)


@pytest.fixture(scope="module")
def result(measured):
    return measured(critical, TINY)


def test_zero_weight_mlp_is_a_saddle_point():
    torch.manual_seed(0)
    x, y = torch.randn(64, 6, dtype=torch.float64), torch.arange(64) % 10
    net = critical._zero_mlp(6, 4, y)
    torch.nn.functional.cross_entropy(net(x), y).backward()
    assert max(float(p.grad.abs().max()) for p in net.parameters()) < 1e-12
    report = diagnose.classify(
        diagnose.ModelObjective(net, torch.nn.functional.cross_entropy, x, y)
    )
    assert report.is_saddle and report.lambda_min < 0


def test_saddle_escape_on_the_digits(result):
    _, m = result
    assert (m.n_inputs, m.n_samples) == (64, 64)
    assert m.saddle.num_params == 64 * 4 + 4 + 4 * 10 + 10
    assert m.saddle.is_saddle and m.saddle.lambda_min < 0 and m.saddle.grad_norm < 1e-10
    assert m.escape.decreased and m.escape.loss_after < m.escape.loss_before
    assert m.escaped
    # the gradient is exactly zero: gradient descent stays at the saddle's loss
    assert len(m.gd_from_saddle) == len(m.gd_from_escaped_point) == TINY.train_steps
    assert max(m.gd_from_saddle) - min(m.gd_from_saddle) < 1e-12
    assert m.gd_from_saddle[0] == pytest.approx(m.saddle.loss, abs=1e-6)
    assert m.gd_from_escaped_point[-1] < m.gd_from_saddle[-1]
    assert m.small_step in m.escape.trials and m.small_step["step"] >= 0.05


def test_study_numbers(result):
    _, m = result
    summary = m.study.summary()
    assert summary["n_networks"] == len(m.study.points) == 4
    n_crit = sum(p.critical for p in m.study.points)
    assert summary["n_critical"] == n_crit
    rho = m.spearman_loss_vs_min_ratio
    assert math.isnan(rho) if n_crit < 3 else -1 <= rho <= 1
    assert m.saddles_dominate == (n_crit > 0 and summary["saddle_share"] > 0.5)
    assert set(m.numbers()) == {"study", "spearman_loss_vs_min_ratio", "saddle"}


def test_render(result, check_rendered):
    ctx, m = result
    rendered = check_rendered(critical, ctx, TINY, m)
    assert [f.file for f in rendered.figures] == ["3-critical-study.png", "3-critical-escape.png"]
    assert rendered.tables[1].rows[0] == ["parameters", m.saddle.num_params]
