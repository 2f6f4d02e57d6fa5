"""Cross-validation of the COVID model and of the reference predictors on the same folds.

Two tiers of networks: rows whose history features (earlier days of the state, rebuilt by
chaining the windows, :mod:`trainlab.covid.series`) are all defined get the history
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

from trainlab.covid.config import CovidConfig
from trainlab.covid.files import CovidFrame
from trainlab.covid.folds import Fold, fold_gap, make_folds
from trainlab.covid.frame import subset
from trainlab.covid.members import (
    Member,
    RidgeMember,
    fit_ridge,
    fit_tiers,
    history_columns,
    history_mask,
    partial_columns,
    tiered_predict,
)
from trainlab.covid.series import Timeline, build_timeline, with_history
from trainlab.errors import ConfigError, DataError

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
    gap = fold_gap(cfg.gap, frame.layout.n_days)
    try:
        return make_folds(scheme, frame.state, order, k=cfg.folds, gap=gap, seed=cfg.seed)
    except ConfigError as e:  # too few windows: a property of the file as much as of k
        raise DataError(frame.path, str(e)) from None


def fold_frame(
    cfg: CovidConfig,
    frame: CovidFrame,
    scheme: str,
    fold: Fold,
    full: CovidFrame,
    timeline: Timeline | None,
) -> CovidFrame:
    """The training file with each row's history features as that row sees them in ``fold``.

    Validation rows read every day before their target day (``full``). In blocked folds the
    training rows' features are rebuilt with the validation rows' days unknown, so no training
    input carries a validation day; the random and course splits share days anyway.
    """
    spec = cfg.history.spec()
    if spec is None or scheme != "blocked":
        return full
    hidden = with_history(frame, spec, timeline=timeline, hide_rows=fold.val)
    x = hidden.X.copy()
    x.iloc[fold.val] = full.X.iloc[fold.val].to_numpy()
    return dataclasses.replace(full, X=x)


def prepare(cfg: CovidConfig, frame: CovidFrame) -> tuple[CovidFrame, Timeline | None]:
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
        order: each row's time position within its state (:func:`trainlab.covid.series.time_order`).
        scheme: ``blocked``, ``random`` or ``course``.
        keep_members: keep the trained networks (the ensemble) and their histories.
        log: called with one progress line per fold.

    Returns:
        The out-of-fold predictions and per-fold MSE of the model and of every reference.
    """
    assert frame.y is not None
    t0 = time.perf_counter()
    folds = scheme_folds(cfg, frame, order, scheme)
    full, timeline = prepare(cfg, frame)
    y = frame.y
    names = ("model", "mean", "persistence", "ridge", "ridge_no_history")
    oof = {k: np.full(len(frame), np.nan) for k in names}
    fold_mse: dict[str, list[float]] = {k: [] for k in names}
    used = np.zeros(len(frame), dtype=bool)
    result = SchemeResult(scheme, folds, oof, fold_mse, used_history=used)
    ridge_grid = np.full((len(cfg.ridge_alphas), len(frame)), np.nan)
    for i, fold in enumerate(folds, start=1):
        tf = time.perf_counter()
        ff = fold_frame(cfg, frame, scheme, fold, full, timeline)
        tiers = fit_tiers(cfg, ff, fold.train, fold.val, fold.name, curves=keep_members)
        if keep_members:
            result.members.extend(m for group in tiers for m in group)
        val = subset(ff, fold.val)
        oof["model"][fold.val], path = tiered_predict(tiers, val)
        used[fold.val] = path == 0
        oof["mean"][fold.val] = y[fold.train].mean()
        oof["persistence"][fold.val] = frame.persistence()[fold.val]
        ridge, no_history, grid, alpha = _ridge_fold(cfg, ff, order, fold, val)
        oof["ridge"][fold.val], oof["ridge_no_history"][fold.val] = ridge, no_history
        ridge_grid[:, fold.val] = grid
        result.ridge_alphas.append(alpha)
        for k in names:
            fold_mse[k].append(float(np.mean((oof[k][fold.val] - y[fold.val]) ** 2)))
        if log is not None:
            log(
                f"  {scheme} fold {i}/{len(folds)}: model MSE {fold_mse['model'][-1]:.4f}  "
                f"ridge {fold_mse['ridge'][-1]:.4f}  persistence {fold_mse['persistence'][-1]:.4f}  "
                f"({len(fold.train)} train / {len(fold.val)} val rows, "
                f"{int(used[fold.val].sum())} with history, {time.perf_counter() - tf:.1f} s)"
            )
    _tune_ridge(result, ridge_grid, y, cfg.ridge_alphas)
    result.seconds = time.perf_counter() - t0
    return result


def _ridge_fold(
    cfg: CovidConfig, frame: CovidFrame, order: np.ndarray, fold: Fold, val: CovidFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The ridge references on one fold, in the model's tiers.

    Args:
        cfg: the task settings.
        frame: the training file with the fold's history features (:func:`fold_frame`).
        order: each row's time position within its state.
        fold: the split.
        val: the fold's validation rows of ``frame``.

    Returns:
        Validation predictions of ridge (alpha by inner CV) and of ridge without history,
        ``(len(ridge_alphas), N_val)`` predictions of every alpha of the grid, and the alpha
        chosen (of the most informed tier fitted).
    """
    best, grids = ridge_tiers(cfg, frame, order, fold.train)
    no_history = best[-1].predict(val)
    ridge = tiered_predict([[r] for r in best], val)[0]
    grid = np.stack(
        [tiered_predict([[g[k]] for g in grids], val)[0] for k in range(len(cfg.ridge_alphas))]
    )
    return ridge, no_history, grid, best[0].alpha


def ridge_tiers(
    cfg: CovidConfig, frame: CovidFrame, order: np.ndarray, rows: np.ndarray
) -> tuple[list[RidgeMember], list[list[RidgeMember]]]:
    """Ridge in the model's tiers (:data:`TIERS`, those with training rows), fallback last:
    each tier's member with alpha by inner CV, and its member for every alpha of the grid."""
    best, grids = [], []
    for extra in (history_columns(cfg), partial_columns(cfg, frame.layout.n_days)):
        has = rows[history_mask(frame, extra)[rows]] if extra else rows[:0]
        if len(has) >= 2:
            r, g = fit_ridge(cfg, frame, frame.state, order, has, extra=extra)
            best.append(r)
            grids.append(g)
    r, g = fit_ridge(cfg.fallback_config(), frame, frame.state, order, rows)
    return [*best, r], [*grids, g]


def _tune_ridge(
    result: SchemeResult, ridge_grid: np.ndarray, y: np.ndarray, alphas: list[float]
) -> None:
    """Add ``ridge_tuned``: the grid's alpha with the lowest pooled out-of-fold MSE.

    The reference an honest comparison needs: the network's settings were chosen on these very
    folds, so ridge gets the same advantage (its alpha picked by the outer validation MSE).
    """
    ok = ~np.isnan(ridge_grid[0])
    best = int(np.argmin(((ridge_grid[:, ok] - y[ok]) ** 2).mean(axis=1)))
    result.oof["ridge_tuned"] = ridge_grid[best]
    result.fold_mse["ridge_tuned"] = [
        float(np.mean((ridge_grid[best, f.val] - y[f.val]) ** 2)) for f in result.folds
    ]
    result.ridge_tuned_alpha = alphas[best]
