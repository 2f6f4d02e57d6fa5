"""Section 5: momentum on the double well and on the digits, then rendered."""

from __future__ import annotations

import pytest

from trainlab.report.sections import momentum

TINY = momentum.Config(sweep=[0.0, 0.5, 0.9, 0.95], epochs=2, hidden=[16], max_train=256)


@pytest.fixture(scope="module")
def result(measured):
    return measured(momentum, TINY)


def test_momentum_rolls_past_the_local_minimum(result):
    _, m = result
    assert list(m.sweep) == [0.0, 0.5, 0.9, 0.95]
    for e in m.sweep.values():
        assert e["path"].shape == (TINY.steps + 1, 2) and e["losses"].shape == (TINY.steps + 1,)
        assert e["final_loss"] == pytest.approx(m.surface.loss(e["final_point"]))
        assert e["end"] == m.surface.nearest_minimum(e["final_point"])
    assert m.sweep[0.0]["end"] == "local minimum" and m.sweep[0.9]["end"] == "global minimum"
    assert m.escaped_local_minimum
    # too little momentum stops in the dip, too much rolls out of the deeper minimum again
    assert m.reaches_global == [0.9] and m.sweep[0.95]["end"] == "local minimum"


def test_runs_on_the_digits(result):
    _, m = result
    assert m.n_train == 256
    assert [d["momentum"] for d in m.data.values()] == [0.0, 0.9]
    assert list(m.data) == list(momentum.run_names(TINY)) == list(m.curves)
    for c in m.curves.values():
        assert len(c["train_loss"]) == len(c["val_acc"]) == TINY.epochs
    plain, mom = m.data.values()
    assert m.momentum_lower_training_loss == (mom["train_loss"] < plain["train_loss"])
    numbers = m.numbers()
    assert (
        list(numbers["sweep"]) == ["0.0", "0.5", "0.9", "0.95"]
        and "path" not in numbers["sweep"]["0.0"]
    )
    assert numbers["loss_global_minimum"] < numbers["loss_local_minimum"]


def test_render(result, check_rendered):
    ctx, m = result
    rendered = check_rendered(momentum, ctx, TINY, m)
    sweep_table, data_table = rendered.tables
    assert [row[2] for row in sweep_table.rows] == [e["end"] for e in m.sweep.values()]
    assert len(data_table.rows) == 2
    assert rendered.notes == ["Momentum values that reach the global minimum here: 0.9."]
