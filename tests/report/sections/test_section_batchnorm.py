"""Section 7: LeNet without and with batch norm, the sweep and the equivalence, then rendered."""

from __future__ import annotations

import math

import pytest
import torch

from trainlab.report.sections import batchnorm
from trainlab.report.sections.batchnorm import VARIANTS

TINY = batchnorm.Config(
    epochs=2, sweep_lrs=[0.3, 3.0], sweep_epochs=1, max_train=192, check_batch=16
)


@pytest.fixture(scope="module")
def result(measured):
    return measured(batchnorm, TINY)


def test_trainlab_and_torch_batch_norm_agree():
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    checks = batchnorm.equivalence(x, y, seed=0)
    assert {c["dtype"] for c in checks} == {"float32", "float64"}
    assert {c["mode"] for c in checks} == {"train", "eval"}
    for c in checks:
        assert c["max_abs_diff"] <= (1e-10 if c["dtype"] == "float64" else 1e-4), c


def test_variants_train_from_the_same_weights(result):
    _, m = result
    assert m.n_train == 192 and list(m.runs) == list(VARIANTS)
    params = {k: r["parameters"] for k, r in m.runs.items()}
    assert params["trainlab BN"] == params["PyTorch BN"] > params["without BN"]
    for r in m.runs.values():
        assert len(r["train_curve"]) == len(r["val_acc_curve"]) == TINY.epochs
    # the two batch norms compute the same function: their runs coincide up to float32 rounding
    ours, theirs = m.runs["trainlab BN"]["train_curve"], m.runs["PyTorch BN"]["train_curve"]
    assert m.training_curve_max_abs_diff == max(abs(a - b) for a, b in zip(ours, theirs)) < 1e-3
    assert m.same_numbers and m.max_abs_diff["float64"] < 1e-10
    plain = m.runs["without BN"]["train_loss"]
    assert m.bn_trains_faster == all(
        m.runs[k]["train_loss"] < plain for k in ("trainlab BN", "PyTorch BN")
    )


def test_learning_rate_sweep(result):
    _, m = result
    sweep = m.lr_sweep_final_train_loss
    assert list(sweep) == ["without BN", "trainlab BN"]
    assert all(list(d) == ["0.3", "3.0"] for d in sweep.values())
    for k, d in sweep.items():
        assert all(v > 0 and not math.isnan(v) for v in d.values())
        assert m.lr_sweep_trains_at[k] == [
            float(lr) for lr, v in d.items() if v < TINY.trains_below
        ]
    assert m.bn_trains_at_more_learning_rates == (
        len(m.lr_sweep_trains_at["trainlab BN"]) > len(m.lr_sweep_trains_at["without BN"])
    )


def test_render(result, check_rendered):
    ctx, m = result
    rendered = check_rendered(batchnorm, ctx, TINY, m)
    runs, sweep, equivalence = rendered.tables
    assert [row[0] for row in runs.rows] == list(VARIANTS)
    assert [row[0] for row in sweep.rows] == [0.3, 3.0]
    assert all(row[-1] is True for row in equivalence.rows)
    assert "8x8 images resized into 28x28" in runs.caption
