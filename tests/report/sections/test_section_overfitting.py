"""Section 1: the overfitting runs' numbers, measured on a small subset, then rendered."""

from __future__ import annotations

import json

import pytest

from trainlab.report.sections import overfitting
from trainlab.report.sections.overfitting import RUNS

TINY = overfitting.Config(n_train=100, epochs=4, big_hidden=[32], small_hidden=[4], patience=1)


@pytest.fixture(scope="module")
def result(measured):
    return measured(overfitting, TINY)


def test_every_run_is_measured_with_its_own_model(result):
    _, m = result
    assert (m.n_train, m.n_val) == (100, 360) and list(m.runs) == RUNS
    big, small = 64 * 32 + 32 + 32 * 10 + 10, 64 * 4 + 4 + 4 * 10 + 10
    assert [r["parameters"] for r in m.runs.values()] == [big, small, big, big, big]
    for name, r in m.runs.items():
        vl = m.curves[name]["val_loss"]
        assert r["epochs_run"] == len(vl) == len(m.curves[name]["train_loss"])
        assert r["best_val_loss"] == min(vl) == vl[r["best_epoch"] - 1]
        assert r["val_loss_rise"] == pytest.approx(r["val_loss"] - r["best_val_loss"])
        assert 0 <= r["train_acc"] <= 1 and 0 <= r["val_acc"] <= 1
    assert all(r["epochs_run"] == TINY.epochs for n, r in m.runs.items() if n != "early stopping")
    # early stopping keeps its best epoch: the final weights score that epoch's validation loss
    stopped = m.runs["early stopping"]
    assert stopped["epochs_run"] <= TINY.epochs
    assert stopped["val_loss"] == pytest.approx(stopped["best_val_loss"], rel=1e-5)


def test_findings_follow_from_the_runs(result):
    _, m = result
    base = m.runs[RUNS[0]]
    assert m.remedy_lowers_val_loss == {
        n: m.runs[n]["val_loss"] < base["val_loss"] for n in RUNS[1:]
    }
    assert m.best_remedy == min(RUNS[1:], key=lambda n: m.runs[n]["val_loss"])
    # 4 epochs on 100 images are too few to overfit (the quick report's 60 epochs do)
    assert m.overfitting_observed is False
    assert overfitting.verdict(TINY, m).agrees is False
    numbers = json.loads(json.dumps(m.numbers()))
    assert set(numbers) == {
        "n_train", "runs", "overfitting_observed", "remedy_lowers_val_loss", "best_remedy"
    }  # fmt: skip


def test_render(result, check_rendered):
    ctx, m = result
    rendered = check_rendered(overfitting, ctx, TINY, m)
    assert [f.file for f in rendered.figures] == [
        "1-overfitting-curves.png",
        "1-overfitting-remedies.png",
    ]
    (table,) = rendered.tables
    assert [row[0] for row in table.rows] == RUNS and table.rows[0][-1] == "reference"
    assert "did not overfit in 4 epochs" in rendered.verdict.text
