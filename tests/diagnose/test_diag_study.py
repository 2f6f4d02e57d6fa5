"""The lecture's minimum-ratio-against-loss study: deterministic, consistent, plotted."""

from __future__ import annotations

import json

import pytest
import torch

from trainlab.diagnose import (
    StudyConfig,
    Verdict,
    classify,
    critical_point_study,
    escape,
    plot_study,
    study_data,
)
from trainlab.diagnose._batched import build_mlp


@pytest.fixture(scope="module")
def result():
    return critical_point_study(10, StudyConfig.quick())


def test_study_is_deterministic(result):
    again = critical_point_study(10, StudyConfig.quick())
    assert [vars(p) for p in again.points] == [vars(p) for p in result.points]
    other = critical_point_study(10, StudyConfig.quick(seed=1))
    assert [p.loss for p in other.points] != [p.loss for p in result.points]


def test_study_points_are_consistent(result):
    cfg = result.config
    assert len(result.points) == 10 and result.num_params == 2 * 6 + 6 + 6 + 1
    for p in result.points:
        assert 0.0 <= p.min_ratio <= 1.0
        assert p.lambda_min <= p.lambda_max
        if p.critical:
            assert p.grad_norm <= cfg.grad_tol
        if p.verdict == Verdict.SADDLE.value:
            assert p.n_negative > 0 and p.min_ratio < 1
        if p.verdict == Verdict.LOCAL_MINIMUM.value:
            assert p.n_negative == 0 and p.min_ratio == 1.0
        # the objective is the MSE plus the weight-decay penalty
        assert p.loss > p.mse
    s = result.summary()
    assert sum(s["counts"].values()) == 10
    assert s["n_critical"] >= 5  # most networks do reach a critical point
    assert s["counts"]["saddle point"] >= 1
    assert 0.0 <= s["saddle_share"] <= 1.0
    d = result.to_dict()
    json.dumps(d)
    assert d["config"]["n_networks"] == 10
    assert "saddle points" in str(result)


def test_a_study_saddle_is_escaped(result):
    cfg = result.config
    saddle = result.saddles()[0]
    obj = result.objective(saddle.index)
    # the study's numbers, checked again with the public tools on the rebuilt network
    r = classify(obj, grad_tol=cfg.grad_tol, eig_rtol=cfg.eig_rtol, eig_atol=cfg.eig_atol)
    assert r.verdict is Verdict.SADDLE
    assert r.loss == pytest.approx(saddle.loss, rel=1e-12)
    x, y = study_data(cfg)
    net = build_mlp(cfg.in_features, cfg.hidden, cfg.activation).double()
    obj.write_to(net)
    with torch.no_grad():
        mse = float(torch.nn.functional.mse_loss(net(x), y.unsqueeze(1)))
    assert mse == pytest.approx(saddle.mse, rel=1e-12)
    res = escape(obj, report=r)
    assert res.decreased


def test_plot_study_writes_an_image(result, tmp_path):
    path = tmp_path / "study.png"
    plot_study(result, path)
    assert path.stat().st_size > 5000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_study_rejects_bad_settings():
    with pytest.raises(ValueError, match="activation"):
        critical_point_study(2, StudyConfig.quick(activation="relu"))
