"""Validation laid out like the test file: the number a submission should expect.

``covid.test.csv`` shares no day with the training file: each state's test rows are adjacent,
non-overlapping windows (every D-th window) of a block weeks after the training days, or, for the
other half of the states, before them (:mod:`trainlab.covid.series`). So no test row has the
full history of earlier days, and the blocked folds, whose validation rows mostly do, measure
another path than the one a submission takes.

:func:`testlike_validate` rebuilds that relation on the training file twice: per state, a block of
``testlike_block`` windows at the end (``after``) or at the start (``before``) is cut out, every
D-th of its windows is held out in the test layout (no target), and the windows at least
``testlike_gap`` days away on the other side are the training rows. The ensemble is trained on
them exactly as the final one is and the held-out rows go through :meth:`Ensemble.predict_info`,
the code of ``trainlab covid predict``: rows whose earlier windows are in the file get the
partial (test-layout) history, the first window of a block the fallback networks.

Every ``testlike_untouched``-th state is untouched (:func:`untouched_rows`): its held-out rows
are scored apart and no default was chosen on them; the validation part (the other states) is
what settings are compared on. Training rows come from every state.

References on the same splits: the training mean; persistence (day D-1); ordinary least squares
and ridge on ``survey14`` (raw target); ridge on the day-over-day change with every survey
feature (``no_states``); ridge in the model's tiers through the same prediction path; and the
course's sample model (preset ``sample``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.config import to_dict
from trainlab.covid.config import CovidConfig, load_covid_config, preset
from trainlab.covid.ensemble import fit_ensemble
from trainlab.covid.files import CovidFrame
from trainlab.covid.folds import testlike_split
from trainlab.covid.frame import subset
from trainlab.covid.members import TIERS, fit_ridge, tiered_predict
from trainlab.covid.resume import fit_scope
from trainlab.covid.validate import prepare, ridge_tiers

SIDES = ("after", "before")
#: reference name -> (feature set, target, OLS instead of ridge)
LINEAR_REFERENCES = {
    "ols_survey14": ("survey14", "raw", True),
    "ridge_survey14": ("survey14", "raw", False),
    "ridge_delta": ("no_states", "delta", False),
}
REFERENCES = ("mean", "persistence", *LINEAR_REFERENCES, "ridge", "sample")


def testlike_validate(
    cfg: CovidConfig, frame: CovidFrame, order: np.ndarray, data_dir: Path
) -> dict[str, Any]:
    """The model and the references on both test-like splits.

    Args:
        cfg: the settings.
        frame: the training file (without history columns).
        order: each row's time position within its state (:func:`time_order`).
        data_dir: recorded in the trained ensembles' descriptions.

    Returns:
        Per predictor: ``mse`` and ``rmse`` pooled, over the validation states
        (``validation_mse``, ...) and over the untouched states (``untouched_mse``, ...), and
        per split ``split_mse``; for the model also ``path_mse`` and ``path_rows`` (rows per
        tier of the prediction path); ``rows``, ``validation_rows``, ``untouched_states``.
    """
    assert frame.y is not None
    t0 = time.perf_counter()
    d = frame.layout.n_days
    preds: dict[str, list[np.ndarray]] = {}
    ys, paths, states = [], [], []
    for side in SIDES:
        tr, ho = testlike_split(order, frame.state, d, cfg.testlike_block, cfg.testlike_gap, side)
        with fit_scope(f"testlike_{side}"):
            side_preds, path = _split_predictions(cfg, frame, order, tr, ho, data_dir)
        for name, p in side_preds.items():
            preds.setdefault(name, []).append(p)
        ys.append(frame.y[ho])
        paths.append(path)
        states.append(frame.state[ho])
    out: dict[str, Any] = {}
    y = np.concatenate(ys)
    touched = ~untouched_rows(np.concatenate(states), cfg.testlike_untouched)
    for name, parts in preds.items():
        out[name] = _scores(np.concatenate(parts), y, touched, parts, ys)
    path = np.concatenate(paths)
    model = np.concatenate(preds["model"])
    out["model"]["path_rows"] = {t: int((path == k).sum()) for k, t in enumerate(TIERS)}
    out["model"]["path_mse"] = {
        t: float(np.mean((model[path == k] - y[path == k]) ** 2))
        for k, t in enumerate(TIERS)
        if (path == k).any()
    }
    out["rows"] = len(y)
    out["validation_rows"] = int(touched.sum())
    out["untouched_states"] = sorted(
        int(k)
        for k in np.unique(frame.state)
        if untouched_rows(np.array([k]), cfg.testlike_untouched)[0]
    )
    out["splits"] = list(SIDES)
    out["seconds"] = time.perf_counter() - t0
    return out


def untouched_rows(state: np.ndarray, every: int) -> np.ndarray:
    """(N,) rows of the untouched states: every ``every``-th state (indices every-1, 2*every-1,
    ...; 0: none). No setting is ever chosen on their held-out rows."""
    return (state % every == every - 1) if every > 0 else np.zeros(len(state), dtype=bool)


def _scores(
    p: np.ndarray, y: np.ndarray, touched: np.ndarray, parts: list[np.ndarray], ys: list[np.ndarray]
) -> dict[str, Any]:
    """Pooled, validation-part, untouched-part and per-split MSE (and RMSE) of predictions."""
    out: dict[str, Any] = {}
    for key, rows in (("", slice(None)), ("validation_", touched), ("untouched_", ~touched)):
        err = (p[rows] - y[rows]) ** 2
        mse = float(np.mean(err)) if len(err) else float("nan")
        out[f"{key}mse"], out[f"{key}rmse"] = mse, float(np.sqrt(mse))
    out["split_mse"] = [float(np.mean((a - b) ** 2)) for a, b in zip(parts, ys)]
    return out


def _split_predictions(
    cfg: CovidConfig,
    frame: CovidFrame,
    order: np.ndarray,
    tr: np.ndarray,
    ho: np.ndarray,
    data_dir: Path,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Predictions of the held-out rows ``ho`` by everything trained on ``tr``, and the model's
    tier per row."""
    reduced = subset(frame, tr)
    hold = subset(frame, ho, with_target=False)  # the test layout: no target
    assert reduced.y is not None
    ensemble = fit_ensemble(cfg, reduced, order[tr], data_dir)
    prepared, _ = ensemble.prepare(hold)
    pred, path = tiered_predict(ensemble.tiers(), prepared)
    out = {
        "model": pred,
        "mean": np.full(len(ho), reduced.y.mean()),
        "persistence": hold.persistence(),
    }
    rows = np.arange(len(tr))
    for name, (features, target, ols) in LINEAR_REFERENCES.items():
        ref = load_covid_config(overrides={**to_dict(cfg), "features": features, "target": target,
                                           "fallback": {}})  # fmt: skip
        if ols:  # a vanishing penalty: ordinary least squares
            ref.ridge_alphas = [1e-9]
        member, _ = fit_ridge(ref, reduced, reduced.state, order[tr], rows)
        out[name] = member.predict(hold)
    full, _ = prepare(cfg, reduced)
    best, _ = ridge_tiers(cfg, full, order[tr], rows)
    out["ridge"] = tiered_predict([[r] for r in best], prepared)[0]
    if cfg.testlike_sample:
        sample = preset("sample")
        sample.seed = sample.train.seed = cfg.seed
        with fit_scope("sample"):
            out["sample"] = fit_ensemble(sample, reduced, order[tr], data_dir).predict(hold)
    return out, path
