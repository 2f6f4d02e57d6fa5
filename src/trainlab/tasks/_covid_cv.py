"""Cross-validation of the COVID model and of the reference predictors on the same folds.

Two tiers of networks: rows whose history features (earlier days of the state, rebuilt by
chaining the windows, :mod:`trainlab.data._covid_history`) are all defined get the history
networks, the others the fallback networks trained on the row's own features. For every fold of a
scheme each tier is trained ``ensemble_seeds`` times (different seeds) on the training rows, with
features chosen and statistics computed on those rows only; the seeds' average is the tier's
prediction. In blocked folds the training rows' history features never read a day of the
validation rows (those days count as unknown), while the validation rows' history reads every day
before their target day, training chunks included, as it would at prediction time.

The references answer "is the network worth it?":

* ``mean``: the training rows' mean target (what an untrained regressor achieves);
* ``persistence``: tomorrow = today, the previous day's ``tested_positive``;
* ``ridge``: sklearn ``Ridge`` on the model's features, tiers and target transform, its ``alpha``
  picked from ``ridge_alphas`` by an inner blocked cross-validation on the training rows;
* ``ridge_tuned``: the same with the single alpha that does best on the outer folds themselves,
  the advantage the network's own settings had when they were chosen on these folds;
* ``ridge_no_history``: ridge on the row's own features only (what history adds to a linear model).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from trainlab.data.covid import (
    CovidFrame,
    Fold,
    build_timeline,
    make_folds,
    with_history,
)
from trainlab.errors import ConfigError
from trainlab.tasks._covid_config import CovidConfig
from trainlab.tasks._covid_members import (
    Member,
    fit_ridge,
    fit_tiers,
    fold_gap,
    history_columns,
    history_mask,
    rows_of,
    tiered_predict,
)

REFERENCES = ("mean", "persistence", "ridge", "ridge_tuned", "ridge_no_history")


@dataclass
class SchemeResult:
    """Out-of-fold predictions and per-fold MSE of the model and the references for one scheme."""

    scheme: str
    folds: list[Fold]
    oof: dict[str, np.ndarray]  # predictor -> (N,) prediction, NaN where a row is never validated
    fold_mse: dict[str, list[float]]
    ridge_alphas: list[float] = field(default_factory=list)
    ridge_tuned_alpha: float = 0.0
    members: list[Member] = field(default_factory=list)
    used_history: np.ndarray | None = None  # (N,) validation rows predicted with history
    seconds: float = 0.0

    def mse(self, y: np.ndarray, name: str) -> float:
        """Pooled MSE over all validated rows."""
        p = self.oof[name]
        ok = ~np.isnan(p)
        return float(np.mean((p[ok] - y[ok]) ** 2))


def scheme_folds(cfg: CovidConfig, frame: CovidFrame, order: np.ndarray, scheme: str) -> list[Fold]:
    """The folds of ``scheme`` for this config (k, gap, seed)."""
    return make_folds(
        scheme, frame.state, order, k=cfg.folds, gap=fold_gap(cfg, frame), seed=cfg.seed
    )


def fold_frame(
    cfg: CovidConfig, frame: CovidFrame, scheme: str, fold: Fold, full: CovidFrame, timeline: object
) -> CovidFrame:
    """The training file with each row's history features as that row sees them in ``fold``.

    Validation rows read every day before their target day (``full``). In blocked folds the
    training rows' features are rebuilt with the validation rows' days unknown, so no training
    input carries a validation day; the random and course splits share days anyway.
    """
    spec = cfg.history.spec()
    if spec is None or scheme != "blocked":
        return full
    hidden = with_history(frame, spec, timeline=timeline, hide_rows=fold.val)  # type: ignore[arg-type]
    x = hidden.X.copy()
    x.iloc[fold.val] = full.X.iloc[fold.val].to_numpy()
    return dataclasses.replace(full, X=x)


def prepare(cfg: CovidConfig, frame: CovidFrame) -> tuple[CovidFrame, object]:
    """The training frame with history features from the whole file, and its timeline."""
    spec = cfg.history.spec()
    if spec is None:
        return frame, None
    timeline = build_timeline(frame)
    return with_history(frame, spec, timeline=timeline), timeline


def cross_validate(
    cfg: CovidConfig,
    frame: CovidFrame,
    order: np.ndarray,
    scheme: str,
    keep_members: bool = False,
    log: Callable[[str], None] | None = None,
) -> SchemeResult:
    """Train and evaluate the model and the references on every fold of ``scheme``.

    Args:
        cfg: the task settings.
        frame: the training file (without history columns; they are built here).
        order: each row's time position within its state (:func:`trainlab.data.covid.time_order`).
        scheme: ``blocked``, ``random`` or ``course``.
        keep_members: keep the trained networks (the ensemble) and their histories.
        log: called with one progress line per fold.
    """
    assert frame.y is not None
    t0 = time.perf_counter()
    folds = scheme_folds(cfg, frame, order, scheme)
    full, timeline = prepare(cfg, frame)
    hist = history_columns(cfg)
    y = frame.y
    state = frame.state
    names = ("model", "mean", "persistence", "ridge", "ridge_no_history")
    oof = {k: np.full(len(frame), np.nan) for k in names}
    fold_mse: dict[str, list[float]] = {k: [] for k in names}
    used = np.zeros(len(frame), dtype=bool)
    result = SchemeResult(scheme, folds, oof, fold_mse, used_history=used)
    ridge_grid = np.full((len(cfg.ridge_alphas), len(frame)), np.nan)
    for i, fold in enumerate(folds, start=1):
        tf = time.perf_counter()
        ff = fold_frame(cfg, frame, scheme, fold, full, timeline)
        history, fallback = fit_tiers(cfg, ff, fold.train, fold.val, fold.name, curves=keep_members)
        if keep_members:
            result.members.extend(history + fallback)
        val = rows_of(ff, fold.val)
        oof["model"][fold.val], used[fold.val] = tiered_predict(history, fallback, val)
        oof["mean"][fold.val] = y[fold.train].mean()
        oof["persistence"][fold.val] = frame.persistence()[fold.val]
        r_fb, g_fb = fit_ridge(cfg.fallback_config(), ff, state, order, fold.train)
        oof["ridge_no_history"][fold.val] = r_fb.predict(val)
        if history:
            has = history_mask(ff, hist)
            tr_h = fold.train[has[fold.train]]
            r_h, g_h = fit_ridge(cfg, ff, state, order, tr_h, extra=hist)
            oof["ridge"][fold.val] = tiered_predict([r_h], [r_fb], val)[0]
            grid = [tiered_predict([a], [b], val)[0] for a, b in zip(g_h, g_fb)]
            result.ridge_alphas.append(r_h.alpha)
        else:
            oof["ridge"][fold.val] = oof["ridge_no_history"][fold.val]
            grid = [g.predict(val) for g in g_fb]
            result.ridge_alphas.append(r_fb.alpha)
        ridge_grid[:, fold.val] = np.stack(grid)
        for k in names:
            fold_mse[k].append(float(np.mean((oof[k][fold.val] - y[fold.val]) ** 2)))
        if log is not None:
            log(
                f"  {scheme} fold {i}/{len(folds)}: model MSE {fold_mse['model'][-1]:.4f}  "
                f"ridge {fold_mse['ridge'][-1]:.4f}  persistence {fold_mse['persistence'][-1]:.4f}  "
                f"({len(fold.train)} train / {len(fold.val)} val rows, "
                f"{int(used[fold.val].sum())} with history, {time.perf_counter() - tf:.1f} s)"
            )
    # The reference an honest comparison needs: the network's settings were chosen on these very
    # folds, so give ridge the same advantage (its alpha picked by the outer validation MSE).
    ok = ~np.isnan(ridge_grid[0])
    best = int(np.argmin(((ridge_grid[:, ok] - y[ok]) ** 2).mean(axis=1)))
    oof["ridge_tuned"] = ridge_grid[best]
    fold_mse["ridge_tuned"] = [
        float(np.mean((ridge_grid[best, f.val] - y[f.val]) ** 2)) for f in folds
    ]
    result.ridge_tuned_alpha = cfg.ridge_alphas[best]
    result.seconds = time.perf_counter() - t0
    return result


def holdout_problem(state: np.ndarray, rows: int, gap: int) -> str | None:
    """Why the later-days simulation cannot run on these rows (None: it can)."""
    counts = np.bincount(state)
    counts = counts[counts > 0]
    if len(counts) and counts.min() < rows + gap + 2:
        return (
            f"it needs at least {rows + gap + 2} windows per state ({rows} held out, {gap} "
            f"dropped, 2 to train on); the smallest state has {int(counts.min())}"
        )
    return None


def holdout_split(
    order: np.ndarray, state: np.ndarray, rows: int, gap: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each state's last ``rows`` windows (in time order) and the windows before its last
    ``rows + gap`` (the training part); the ``gap`` windows between are dropped.

    Returns:
        (training row indices, held-out row indices), both sorted.
    """
    train_parts, hold_parts = [], []
    for s in np.unique(state):
        idx = np.flatnonzero(state == s)
        idx = idx[np.argsort(order[idx], kind="stable")]
        if len(idx) < rows + gap + 2:
            raise ConfigError(
                f"the later-days simulation needs at least {rows + gap + 2} windows per state; "
                f"state {int(s)} has {len(idx)} (set a smaller holdout_rows)"
            )
        hold_parts.append(idx[-rows:])
        train_parts.append(idx[: len(idx) - rows - gap])
    return np.sort(np.concatenate(train_parts)), np.sort(np.concatenate(hold_parts))
