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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from trainlab.config import to_dict
from trainlab.data.covid import (
    CovidFrame,
    Fold,
    Standardizer,
    build_timeline,
    make_folds,
    select_features,
    with_history,
)
from trainlab.errors import ConfigError
from trainlab.tasks._covid_config import CovidConfig
from trainlab.tasks._covid_model import CovidMLP, make_loss
from trainlab.train import Callback, History, TrainState, fit, predict

REFERENCES = ("mean", "persistence", "ridge", "ridge_tuned", "ridge_no_history")


class Predictor(Protocol):
    """Anything with input columns that predicts tested_positive for the rows of a frame."""

    features: list[str]

    def predict(self, frame: CovidFrame) -> np.ndarray: ...


def history_columns(cfg: CovidConfig) -> list[str]:
    """The history feature names of ``cfg`` (empty when history is off)."""
    spec = cfg.history.spec()
    return [] if spec is None else spec.columns()


def history_mask(frame: CovidFrame, columns: Sequence[str]) -> np.ndarray:
    """(N,) rows whose history features are all defined (all False without history columns)."""
    if not columns:
        return np.zeros(len(frame), dtype=bool)
    return np.isfinite(frame.X[list(columns)].to_numpy()).all(axis=1)


def tiered_predict(
    history: Sequence[Predictor], fallback: Sequence[Predictor], frame: CovidFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Average of the history predictors where a row's history is defined, else of the fallback.

    Returns:
        (N,) predictions and (N,) the mask of rows predicted with history.
    """
    mask = history_mask(frame, _hist_cols(history)) if history else np.zeros(len(frame), bool)
    pred = np.full(len(frame), np.nan)
    if (~mask).any():
        if not fallback:
            raise ConfigError("rows without history but no fallback predictors")
        rows = _rows(frame, np.flatnonzero(~mask))
        pred[~mask] = np.mean([p.predict(rows) for p in fallback], axis=0)
    if mask.any():
        rows = _rows(frame, np.flatnonzero(mask))
        pred[mask] = np.mean([p.predict(rows) for p in history], axis=0)
    return pred, mask


def _hist_cols(predictors: Sequence[Predictor]) -> list[str]:
    return [f for f in predictors[0].features if f.startswith("hist_")]


@dataclass
class Member:
    """One trained network with everything needed to apply it to a new file."""

    name: str
    fold: str
    seed: int
    model: CovidMLP
    features: list[str]
    scaler: Standardizer
    target: str  # "raw" | "delta"
    target_mean: float
    target_std: float
    history: History | None = None
    architecture: dict[str, object] = field(default_factory=dict)  # ModelConfig as a dict

    @property
    def uses_history(self) -> bool:
        """Whether the member reads history features (the history tier)."""
        return any(f.startswith("hist_") for f in self.features)

    def inputs(self, frame: CovidFrame) -> torch.Tensor:
        """(N, F) normalised inputs of ``frame`` in this member's feature order."""
        return torch.from_numpy(self.scaler.transform(frame.X))

    def predict(self, frame: CovidFrame) -> np.ndarray:
        """(N,) predicted ``tested_positive`` for every row of ``frame``."""
        out = predict(self.model, self.inputs(frame), batch_size=8192).numpy().astype(np.float64)
        pred = out * self.target_std + self.target_mean
        return pred + frame.persistence() if self.target == "delta" else pred

    def meta(self) -> dict[str, object]:
        """JSON-able description (weights are saved separately)."""
        return {
            "name": self.name,
            "fold": self.fold,
            "seed": self.seed,
            "tier": "history" if self.uses_history else "fallback",
            "features": self.features,
            "normalizer": self.scaler.state_dict(),
            "target": self.target,
            "target_mean": self.target_mean,
            "target_std": self.target_std,
            "architecture": self.architecture,
        }


@dataclass
class RidgeMember:
    """A fitted ridge reference: features, scaling, coefficients, target transform."""

    features: list[str]
    scaler: Standardizer
    coef: np.ndarray  # (F,)
    intercept: float
    target: str
    alpha: float

    def predict(self, frame: CovidFrame) -> np.ndarray:
        """(N,) predicted ``tested_positive``."""
        x = self.scaler.transform(frame.X).astype(np.float64)
        pred = x @ self.coef + self.intercept
        return pred + frame.persistence() if self.target == "delta" else pred


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


class _TrainMSE(Callback):
    """Adds ``train_mse`` (evaluation mode, target units) to each epoch's record, for the curves."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, scale: float) -> None:
        self.x, self.y, self.scale = x, y, scale

    def on_epoch_end(self, state: TrainState, record: dict[str, float]) -> None:
        model = state.model
        was = model.training
        model.eval()
        with torch.no_grad():
            err = model(self.x.to(_device(model))).cpu() - self.y
        model.train(was)
        value = float((err * err).mean()) * self.scale
        record["train_mse"] = value
        state.history.records[-1]["train_mse"] = value


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _target(cfg: CovidConfig, frame: CovidFrame) -> tuple[np.ndarray, np.ndarray]:
    """(N,) the quantity the model learns (target minus base) and (N,) the base."""
    assert frame.y is not None
    base = frame.persistence() if cfg.target == "delta" else np.zeros(len(frame))
    return frame.y - base, base


def fit_member(
    cfg: CovidConfig,
    frame: CovidFrame,
    train_rows: np.ndarray,
    val_rows: np.ndarray | None,
    seed: int,
    name: str,
    curves: bool = False,
    extra: Sequence[str] = (),
) -> Member:
    """Train one network on ``train_rows`` (validation rows only watched, or early-stopped on).

    Args:
        cfg: the task settings.
        frame: the training file (with history columns if ``extra`` names them).
        train_rows: rows to fit on; features and statistics come from these rows only.
        val_rows: rows whose loss is recorded every epoch (and used for early stopping and
            best-epoch restoring if ``cfg.train`` asks for them), or None.
        seed: initialisation and shuffling seed.
        name: the member's name (``blocked2/seed1``).
        curves: also record the training MSE per epoch (for learning-curve plots).
        extra: further input columns (the history features), appended to ``cfg.features``.
    """
    states = frame.layout.states
    features = select_features(cfg.features, frame, train_rows) + list(extra)
    scaler = Standardizer.fit(frame.X.iloc[train_rows][features], skip=states)
    t, _ = _target(cfg, frame)
    mean, std = (
        (float(t[train_rows].mean()), float(t[train_rows].std()))
        if cfg.standardize_target
        else (0.0, 1.0)
    )
    std = std if std > 1e-12 else 1.0
    x_all = scaler.transform(frame.X)
    y_all = ((t - mean) / std).astype(np.float32)

    torch.manual_seed(seed)
    m = cfg.model
    model = CovidMLP(len(features), m.widths, m.activation, m.batch_norm, m.dropout, m.linear_skip)
    loss_fn = make_loss(model, cfg.loss, cfg.huber_delta, cfg.l1, cfg.l2)
    tc = dataclasses.replace(cfg.train, seed=seed, quiet=True, out_dir=None)
    x_tr, y_tr = torch.from_numpy(x_all[train_rows]), torch.from_numpy(y_all[train_rows])
    val = None
    # watching a validation set costs more than training on it: only where something reads it
    needs_val = curves or cfg.train.patience is not None or cfg.train.restore_best
    if needs_val and val_rows is not None and len(val_rows):
        val = (torch.from_numpy(x_all[val_rows]), torch.from_numpy(y_all[val_rows]))
    else:
        tc = dataclasses.replace(tc, patience=None, restore_best=False)
    scale = std * std

    def mse(outputs: torch.Tensor, targets: torch.Tensor) -> float:
        return float(((outputs - targets) ** 2).mean()) * scale

    callbacks = [_TrainMSE(x_tr, y_tr, scale)] if curves else []
    history = fit(model, loss_fn, (x_tr, y_tr), val, tc, metrics={"mse": mse}, callbacks=callbacks)
    model.to("cpu").eval()
    fold = name.split("/")[0]
    return Member(
        name, fold, seed, model, features, scaler, cfg.target, mean, std, history,
        architecture=to_dict(m),
    )  # fmt: skip


def fit_tiers(
    cfg: CovidConfig,
    frame: CovidFrame,
    train_rows: np.ndarray,
    val_rows: np.ndarray | None,
    prefix: str,
    curves: bool = False,
) -> tuple[list[Member], list[Member]]:
    """The history networks (trained on the training rows whose history is defined) and the
    fallback networks (on all training rows, with ``cfg.fallback_config()``); ``ensemble_seeds``
    of each tier. The history list is empty without history."""
    hist = history_columns(cfg)
    has = history_mask(frame, hist)
    history: list[Member] = []
    if hist and has[train_rows].sum() >= 2:
        hv = None if val_rows is None else val_rows[has[val_rows]]
        for j in range(cfg.ensemble_seeds):
            seed = cfg.seed + j
            history.append(
                fit_member(
                    cfg, frame, train_rows[has[train_rows]], hv, seed,
                    f"{prefix}/history/seed{seed}", curves=curves and j == 0, extra=hist,
                )
            )  # fmt: skip
    fb = cfg.fallback_config()
    fallback = [
        fit_member(
            fb, frame, train_rows, val_rows, fb.seed + j, f"{prefix}/fallback/seed{fb.seed + j}",
            curves=curves and j == 0 and not history,
        )
        for j in range(fb.ensemble_seeds)
    ]  # fmt: skip
    return history, fallback


def fit_ridge(
    cfg: CovidConfig,
    frame: CovidFrame,
    state: np.ndarray,
    order: np.ndarray,
    train_rows: np.ndarray,
    extra: Sequence[str] = (),
) -> tuple[RidgeMember, list[RidgeMember]]:
    """Ridge on ``train_rows``: the member with alpha chosen by inner blocked CV on those rows,
    and one member per alpha of the grid."""
    from sklearn.linear_model import Ridge

    features = select_features(cfg.features, frame, train_rows) + list(extra)
    scaler = Standardizer.fit(frame.X.iloc[train_rows][features], skip=frame.layout.states)
    x = scaler.transform(frame.X.iloc[train_rows]).astype(np.float64)
    t = _target(cfg, frame)[0][train_rows]
    try:
        inner = make_folds(
            "blocked", state[train_rows], order[train_rows], k=max(2, cfg.folds - 1),
            gap=_gap(cfg, frame),
        )  # fmt: skip
    except ConfigError:  # too few windows for an inner split: use the middle of the grid
        inner = []
    inner_se = []
    for alpha in cfg.ridge_alphas:
        se = 0.0
        for f in inner:
            model = Ridge(alpha=alpha).fit(x[f.train], t[f.train])
            se += float(((model.predict(x[f.val]) - t[f.val]) ** 2).sum())
        inner_se.append(se)
    grid = []
    for alpha in cfg.ridge_alphas:
        model = Ridge(alpha=alpha).fit(x, t)
        grid.append(
            RidgeMember(
                features, scaler, model.coef_.copy(), float(model.intercept_), cfg.target, alpha
            )
        )
    best = int(np.argmin(inner_se)) if inner else len(cfg.ridge_alphas) // 2
    return grid[best], grid


def _gap(cfg: CovidConfig, frame: CovidFrame) -> int:
    return frame.layout.n_days - 1 if cfg.gap is None else cfg.gap


def scheme_folds(cfg: CovidConfig, frame: CovidFrame, order: np.ndarray, scheme: str) -> list[Fold]:
    """The folds of ``scheme`` for this config (k, gap, seed)."""
    return make_folds(scheme, frame.state, order, k=cfg.folds, gap=_gap(cfg, frame), seed=cfg.seed)


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
        val = _rows(ff, fold.val)
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


def _rows(frame: CovidFrame, rows: np.ndarray) -> CovidFrame:
    return dataclasses.replace(
        frame,
        ids=frame.ids[rows],
        X=frame.X.iloc[rows].reset_index(drop=True),
        y=None if frame.y is None else frame.y[rows],
    )


def subset(frame: CovidFrame, rows: np.ndarray, with_target: bool = True) -> CovidFrame:
    """Rows of ``frame`` as a frame of their own (``with_target=False``: the test layout)."""
    out = _rows(frame, rows)
    return out if with_target else dataclasses.replace(out, y=None)


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
