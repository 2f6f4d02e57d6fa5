"""Section 6: optimizers with and without warm-up on the bowl and the digits, then rendered."""

from __future__ import annotations

import math

import pytest

from trainlab.errors import ConfigError
from trainlab.report.sections import adaptive

TINY = adaptive.Config(steps=120, epochs=2, hidden=[16], max_train=192)
LABELS = ["SGD", "Adagrad", "RMSProp", "Adam"]


@pytest.fixture(scope="module")
def result(measured):
    return measured(adaptive, TINY)


def test_adaptive_optimizers_cross_the_bowl(result):
    _, m = result
    assert m.surface_warmup_steps == 12
    assert list(m.paths) == [k + w for k in LABELS for w in ("", " + warm-up")]
    for v in m.paths.values():
        steps, losses = v["steps_to_target"], v["losses"]
        assert v["final_loss"] == losses[-1]
        if steps is not None:  # the first step below the target
            assert losses[steps] < TINY.target_loss <= losses[:steps].min()
    # SGD's learning rate is capped by the steep direction: it crawls along the flat one
    assert m.paths["SGD"]["steps_to_target"] is None
    assert all(m.paths[k]["steps_to_target"] is not None for k in LABELS[1:])
    assert m.adaptive_beats_sgd_on_surface


def test_runs_on_the_digits(result):
    _, m = result
    assert m.n_train == 192 and list(m.runs) == list(m.paths)
    for k, r in m.runs.items():
        assert r["warmup"] == k.endswith("warm-up") and r["lr"] == TINY.data_lr[r["optimizer"]]
        assert len(r["train_curve"]) == len(r["val_curve"]) == TINY.epochs
        assert r["first_epoch_train_loss"] == r["train_curve"][0]
    assert m.best_on_data == min(m.runs, key=lambda k: m.runs[k]["val_loss"])
    assert m.warmup_lowers_val_loss == {
        k: m.runs[k + " + warm-up"]["val_loss"] < m.runs[k]["val_loss"] for k in LABELS
    }


def test_finite_less_treats_divergence_as_worst():
    assert adaptive._finite_less(1.0, math.nan) and adaptive._finite_less(1.0, 2.0)
    assert not adaptive._finite_less(math.nan, 1.0) and not adaptive._finite_less(2.0, 1.0)


def test_missing_learning_rate_is_a_config_error(result):
    ctx, _ = result
    with pytest.raises(ConfigError, match="need a learning rate for \\['lion'\\]"):
        adaptive.measure(ctx, adaptive.Config(optimizers=["sgd", "lion"]))


def test_render(result, check_rendered):
    ctx, m = result
    rendered = check_rendered(adaptive, ctx, TINY, m)
    bowl, data = rendered.tables
    assert [row[3] for row in bowl.rows] == [v["steps_to_target"] for v in m.paths.values()]
    assert len(data.rows) == 8
    assert rendered.verdict.text.startswith("On the bowl SGD is still at loss")
