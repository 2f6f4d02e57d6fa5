"""Cross-validation of the COVID model and of the reference predictors on the same folds.

For every fold of a scheme the network is trained ``ensemble_seeds`` times (different seeds) on the
training rows, with features chosen and statistics computed on those rows only; the seeds'
average is that fold's prediction. The references answer "is the network worth it?":

* ``mean``: the training rows' mean target (what an untrained regressor achieves);
* ``persistence``: tomorrow = today, the previous day's ``tested_positive``;
* ``ridge``: sklearn ``Ridge`` on the model's features and target transform, its ``alpha`` picked
  from ``ridge_alphas`` by an inner blocked cross-validation on the training rows;
* ``ridge_tuned``: the same with the single alpha that does best on the outer folds themselves,
  the advantage the network's own settings had when they were chosen on these folds.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from trainlab.data.covid import CovidFrame, Fold, Standardizer, make_folds, select_features
from trainlab.errors import ConfigError
from trainlab.tasks._covid_config import CovidConfig
from trainlab.tasks._covid_model import CovidMLP, make_loss
from trainlab.train import Callback, History, TrainState, fit, predict

REFERENCES = ("mean", "persistence", "ridge", "ridge_tuned")


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
            "features": self.features,
            "normalizer": self.scaler.state_dict(),
            "target": self.target,
            "target_mean": self.target_mean,
            "target_std": self.target_std,
        }


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


def fit_member(
    cfg: CovidConfig,
    frame: CovidFrame,
    train_rows: np.ndarray,
    val_rows: np.ndarray | None,
    seed: int,
    name: str,
    curves: bool = False,
) -> Member:
    """Train one network on ``train_rows`` (validation rows only watched, or early-stopped on).

    Args:
        cfg: the task settings.
        frame: the training file.
        train_rows: rows to fit on; features and statistics come from these rows only.
        val_rows: rows whose loss is recorded every epoch (and used for early stopping and
            best-epoch restoring if ``cfg.train`` asks for them), or None.
        seed: initialisation and shuffling seed.
        name: the member's name (``blocked2/seed1``).
        curves: also record the training MSE per epoch (for learning-curve plots).
    """
    assert frame.y is not None
    states = frame.layout.states
    features = select_features(cfg.features, frame, train_rows)
    scaler = Standardizer.fit(frame.X.iloc[train_rows][features], skip=states)
    base = frame.persistence() if cfg.target == "delta" else np.zeros(len(frame))
    t = frame.y - base
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
    if val_rows is not None and len(val_rows):
        val = (torch.from_numpy(x_all[val_rows]), torch.from_numpy(y_all[val_rows]))
    scale = std * std

    def mse(outputs: torch.Tensor, targets: torch.Tensor) -> float:
        return float(((outputs - targets) ** 2).mean()) * scale

    callbacks = [_TrainMSE(x_tr, y_tr, scale)] if curves else []
    history = fit(model, loss_fn, (x_tr, y_tr), val, tc, metrics={"mse": mse}, callbacks=callbacks)
    model.to("cpu").eval()
    fold = name.split("/")[0]
    return Member(name, fold, seed, model, features, scaler, cfg.target, mean, std, history)


def ridge_reference(
    cfg: CovidConfig,
    frame: CovidFrame,
    order: np.ndarray,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
) -> tuple[np.ndarray, float, np.ndarray]:
    """Ridge on ``train_rows``: the prediction for ``val_rows`` with alpha chosen by inner blocked
    CV on ``train_rows``, that alpha, and (A, N_val) predictions for every alpha of the grid."""
    from sklearn.linear_model import Ridge

    assert frame.y is not None
    features = select_features(cfg.features, frame, train_rows)
    scaler = Standardizer.fit(frame.X.iloc[train_rows][features], skip=frame.layout.states)
    x = scaler.transform(frame.X).astype(np.float64)
    base = frame.persistence() if cfg.target == "delta" else np.zeros(len(frame))
    t = frame.y - base
    state = frame.state
    try:
        inner = make_folds(
            "blocked",
            state[train_rows],
            order[train_rows],
            k=max(2, cfg.folds - 1),
            gap=_gap(cfg, frame),
        )
    except ConfigError:  # too few windows for an inner split: use the middle of the grid
        inner = []
    inner_se = []
    for alpha in cfg.ridge_alphas:
        se = 0.0
        for f in inner:
            tr, va = train_rows[f.train], train_rows[f.val]
            model = Ridge(alpha=alpha).fit(x[tr], t[tr])
            se += float(((model.predict(x[va]) - t[va]) ** 2).sum())
        inner_se.append(se)
    grid = np.stack(
        [
            Ridge(alpha=alpha).fit(x[train_rows], t[train_rows]).predict(x[val_rows])
            + base[val_rows]
            for alpha in cfg.ridge_alphas
        ]
    )
    # without inner folds, the middle of the grid
    best = int(np.argmin(inner_se)) if inner else len(cfg.ridge_alphas) // 2
    return grid[best], cfg.ridge_alphas[best], grid


def _gap(cfg: CovidConfig, frame: CovidFrame) -> int:
    return frame.layout.n_days - 1 if cfg.gap is None else cfg.gap


def scheme_folds(cfg: CovidConfig, frame: CovidFrame, order: np.ndarray, scheme: str) -> list[Fold]:
    """The folds of ``scheme`` for this config (k, gap, seed)."""
    return make_folds(scheme, frame.state, order, k=cfg.folds, gap=_gap(cfg, frame), seed=cfg.seed)


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
        frame: the training file.
        order: each row's time position within its state (:func:`trainlab.data.covid.time_order`).
        scheme: ``blocked``, ``random`` or ``course``.
        keep_members: keep the trained networks (the ensemble) and their histories.
        log: called with one progress line per fold.
    """
    assert frame.y is not None
    t0 = time.perf_counter()
    folds = scheme_folds(cfg, frame, order, scheme)
    y = frame.y
    names = ("model", "mean", "persistence", "ridge")
    oof = {k: np.full(len(frame), np.nan) for k in names}
    fold_mse: dict[str, list[float]] = {k: [] for k in names}
    result = SchemeResult(scheme, folds, oof, fold_mse)
    ridge_grid = np.full((len(cfg.ridge_alphas), len(frame)), np.nan)
    for i, fold in enumerate(folds, start=1):
        tf = time.perf_counter()
        preds = []
        for j in range(cfg.ensemble_seeds):
            member = fit_member(
                cfg,
                frame,
                fold.train,
                fold.val,
                cfg.seed + j,
                f"{fold.name}/seed{cfg.seed + j}",
                curves=keep_members and j == 0,
            )
            preds.append(member.predict(_rows(frame, fold.val)))
            if keep_members:
                result.members.append(member)
        oof["model"][fold.val] = np.mean(preds, axis=0)
        oof["mean"][fold.val] = y[fold.train].mean()
        oof["persistence"][fold.val] = frame.persistence()[fold.val]
        oof["ridge"][fold.val], alpha, grid = ridge_reference(
            cfg, frame, order, fold.train, fold.val
        )
        result.ridge_alphas.append(alpha)
        ridge_grid[:, fold.val] = grid
        for k in names:
            fold_mse[k].append(float(np.mean((oof[k][fold.val] - y[fold.val]) ** 2)))
        if log is not None:
            log(
                f"  {scheme} fold {i}/{len(folds)}: model MSE {fold_mse['model'][-1]:.4f}  "
                f"ridge {fold_mse['ridge'][-1]:.4f}  persistence {fold_mse['persistence'][-1]:.4f}  "
                f"({len(fold.train)} train / {len(fold.val)} val rows, "
                f"{time.perf_counter() - tf:.1f} s)"
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
