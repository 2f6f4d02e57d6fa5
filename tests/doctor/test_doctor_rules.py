"""The rules on hand-written signals: the cases where two causes could be read from one run."""

from __future__ import annotations

from trainlab.doctor.rules import THRESHOLDS, find_causes
from trainlab.doctor.signals import Signals


def _causes(s: Signals) -> list[tuple[str, str]]:
    return [(f.cause, f.severity) for f in find_causes(s)]


def _high_loss(**kw) -> Signals:  # noqa: ANN003
    """A run whose training loss ends at 0.83 of the best constant output (high)."""
    base = dict(
        loss_first=2.30, loss_mid=2.2, loss_end=1.9, baseline=2.30, reference=2.30,
        reference_kind="the best constant output", num_params=20_000, n_train=3000, depth=4,
        last_epoch=30, epochs=30,
    )  # fmt: skip
    return Signals(**{**base, **kw})


def test_validation_rising_while_training_falls_is_overfitting_however_high_the_loss() -> None:
    """As with shuffled labels: training falls slowly, validation rises past its best."""
    s = _high_loss(val_min=2.30, val_min_epoch=2, val_end=2.90)
    assert s.loss_ratio >= THRESHOLDS["high_loss"] and s.late_gain >= THRESHOLDS["stalled"]
    found = find_causes(s)
    assert found[0].cause == "overfitting" and found[0].severity == "problem"
    assert "26%" in found[0].summary and "epoch 2" in found[0].summary
    assert "model_bias" not in [c for c, _ in _causes(s)]  # a bigger model would not help


def test_a_slowly_falling_high_loss_with_steady_validation_stays_model_bias() -> None:
    s = _high_loss(val_min=2.00, val_min_epoch=30, val_end=2.00, loss_mid=1.97)  # 3.6% fall
    assert ("model_bias", "warning") in _causes(s)
    assert "overfitting" not in [c for c, _ in _causes(s)]


def test_a_high_loss_still_falling_fast_is_told_to_train_longer_not_model_bias() -> None:
    s = _high_loss(val_min=2.00, val_min_epoch=30, val_end=2.00)  # 14% over the second half
    found = find_causes(s)
    assert [f.cause for f in found] == ["healthy"]
    assert "still falling (14% over the second half)" in found[0].summary
    assert found[0].remedy.startswith("Train longer")


def test_validation_at_its_best_in_the_last_epoch_is_not_a_rise() -> None:
    s = _high_loss(val_min=2.0, val_min_epoch=30, val_end=2.0, loss_end=1.5)  # gap below 2
    assert "overfitting" not in [c for c, _ in _causes(s)]


def _stalled_with_negative_curvature(**kw) -> Signals:  # noqa: ANN003
    final = {"lambda_min": -0.38, "lambda_max_h": 0.46, "eig_tol": 5e-4, "grad_norm": 0.1,
             "grad_tol": 1e-3, "step": 376}  # fmt: skip
    return _high_loss(loss_mid=2.2965, loss_end=2.2964, final=final, rule="sgd", **kw)


def test_negative_curvature_with_steps_too_small_to_move_is_not_a_saddle() -> None:
    """Tiny steps leave the weights at their initialisation: its curvature explains no stall."""
    tiny = _stalled_with_negative_curvature(update_p75=5e-8, rho_max=1e-7, lr=1e-6)
    causes = _causes(tiny)
    assert causes[0] == ("lr_too_low", "problem")
    assert "saddle_point" not in [c for c, _ in causes]
    moving = _stalled_with_negative_curvature(update_p75=1e-2, rho_max=0.05, lr=0.1)
    assert _causes(moving)[0] == ("saddle_point", "problem")


def test_model_bias_is_not_claimed_while_optimisation_fails() -> None:
    """A learning rate far too high keeps the loss high: that says nothing of capacity."""
    s = _high_loss(loss_mid=2.41, loss_end=2.41, loss_first=2.3, loss_max_later=13.9,
                   loss_max_step=16, update_p75=0.3)  # fmt: skip
    causes = _causes(s)
    assert causes[0][0] == "lr_too_high", causes
    assert "model_bias" not in [c for c, _ in causes]
    assert ("model_bias", "problem") in _causes(_high_loss(loss_mid=2.41, loss_end=2.41))


def test_a_rise_of_one_epoch_is_not_yet_a_parting_of_the_ways() -> None:
    one = _high_loss(val_min=2.30, val_min_epoch=29, val_end=2.90)
    assert "overfitting" not in [c for c, _ in _causes(one)]
    two = _high_loss(val_min=2.30, val_min_epoch=28, val_end=2.90)
    assert _causes(two)[0] == ("overfitting", "problem")


def test_steps_too_small_are_not_claimed_beside_a_loss_that_blew_up() -> None:
    """Accumulated gradients (no zero_grad): the loss rose 16x, while λ_max measured at the
    dead end makes the learning rate look tiny."""
    s = _high_loss(loss_first=2.3, loss_mid=40.0, loss_end=36.5, loss_max_later=47.9,
                   loss_max_step=354, rule="sgd", rho_max=1e-4, update_p75=1e-3)  # fmt: skip
    causes = [c for c, _ in _causes(s)]
    assert causes[0] == "lr_too_high" and "lr_too_low" not in causes


def test_dropout_that_holds_the_model_back_is_named_with_its_remedy() -> None:
    """Training loss (dropout on) 0.57 of the constant, validation (dropout off) 0.75x it."""
    base = dict(loss_first=13.8, loss_mid=8.5, loss_end=7.66, baseline=13.4, reference=13.4,
                val_min=5.7, val_min_epoch=19, val_end=5.7, last_epoch=19)  # fmt: skip
    found = find_causes(_high_loss(dropout=0.9, **base))
    bias = [f for f in found if f.cause == "model_bias"]
    assert bias and bias[0].severity == "warning" and "p = 0.9" in bias[0].summary
    assert "Lower the dropout" in bias[0].remedy
    assert "model_bias" not in [f.cause for f in find_causes(_high_loss(dropout=0.0, **base))]
    good = {**base, "val_min": 2.0, "val_end": 2.0}  # dropout on, but validation is good
    assert "model_bias" not in [f.cause for f in find_causes(_high_loss(dropout=0.9, **good))]


def test_the_monitor_records_the_models_dropout(tmp_path) -> None:  # noqa: ANN001
    import torch
    from torch import nn

    from trainlab.doctor import Monitor
    from trainlab.doctor.records import find_records, read_records
    from trainlab.doctor.signals import extract

    model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.25), nn.ReLU(), nn.Dropout1d(0.5),
                          nn.Linear(8, 1))  # fmt: skip
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mon = Monitor(model, opt, tmp_path, tensorboard=False)
    x = torch.randn(16, 3)
    loss = model(x).pow(2).mean()
    loss.backward()
    mon.step(loss)
    mon.close()
    records = read_records(find_records(tmp_path))
    assert records.meta["dropout"] == [0.25, 0.5]
    assert extract(records).dropout == 0.5


def test_regression_targets_far_from_unit_scale_are_named_beside_a_diverging_lr() -> None:
    diverged = dict(loss_first=2.5e9, loss_mid=None, loss_end=None, diverged_step=4,
                    nonfinite=True)  # fmt: skip
    big = _high_loss(target={"mean": 4.6e4, "std": 5.9e4, "rms": 7.5e4}, **diverged)
    first = find_causes(big)[0]
    assert first.cause == "lr_too_high" and "far from unit scale" in first.summary
    assert first.remedy.startswith("Standardise the targets")
    unit = _high_loss(target={"mean": 0.1, "std": 1.0, "rms": 1.0}, **diverged)
    assert "unit scale" not in find_causes(unit)[0].summary
    labels = _high_loss(target=None, **diverged)
    assert "unit scale" not in find_causes(labels)[0].summary


def test_target_scale_reads_float_targets_only() -> None:
    import torch

    from trainlab.doctor.probes import target_scale

    got = target_scale(torch.tensor([1.0, 3.0]))
    assert got == {"mean": 2.0, "std": 2.0**0.5, "rms": 5.0**0.5}
    assert target_scale(torch.tensor([0, 1, 2])) is None  # class labels
    assert target_scale(torch.tensor([1.0])) is None


def test_no_critical_point_is_read_beside_dead_units() -> None:
    """Dead ReLUs stall the loss on a flat, non-negatively curved region: the dead units are
    the finding, not a local minimum."""
    final = {"lambda_min": 1e-3, "lambda_max_h": 0.5, "eig_tol": 5e-4, "grad_norm": 1e-5,
             "grad_tol": 1e-3, "step": 240}  # fmt: skip
    stalled = dict(loss_mid=1.386, loss_end=1.385, loss_first=1.39, baseline=1.386,
                   reference=1.386, final=final, rule="sgd", num_params=200_000, n_train=1024,
                   update_p75=1e-2, rho_max=0.05)  # fmt: skip
    alone = _high_loss(**stalled)
    assert _causes(alone)[0] == ("local_minimum", "problem")
    dead = _high_loss(dead_end=0.99, dead_units=250, **stalled)
    causes = [c for c, _ in _causes(dead)]
    assert causes[0] == "dead_units" and "local_minimum" not in causes


def test_saturated_units_are_named_as_such_not_as_a_shrinking_gradient() -> None:
    """tanh with N(0, 1) weights: 99% saturated, yet the first layer's gradient is the larger."""
    s = _high_loss(saturated_first=0.99, probe_first_step=1, grad_ratio_init=411.0, depth=7,
                   loss_mid=2.41, loss_end=2.40)  # fmt: skip
    first = find_causes(s)[0]
    assert first.cause == "vanishing_gradients"
    assert first.summary.startswith("99% of the sigmoid/tanh units are saturated")
    assert "411" not in first.summary
