"""The COVID task's predictors: the networks of each tier, the ridge reference, tiered prediction.

Rows whose history features (earlier days of the state, :mod:`trainlab.covid.series`) are
all defined are predicted by the history networks, the others by the fallback networks trained on
the row's own features (:func:`tiered_predict`). :func:`fit_member` trains one network with the
Trainer on rows of a frame, with features chosen and statistics computed on those rows only;
:func:`fit_ridge` fits the linear reference the same way, its alpha picked by an inner blocked
cross-validation.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from trainlab.config import to_dict
from trainlab.covid.config import CovidConfig, ModelConfig
from trainlab.covid.files import CovidFrame
from trainlab.covid.folds import fold_gap, make_folds
from trainlab.covid.frame import Standardizer, select_features, subset
from trainlab.covid.fullbatch import fit_full_batch, runs_full_batch
from trainlab.covid.linear import fit_linear, ridge_path, solves_exactly
from trainlab.covid.model import CovidMLP, make_loss
from trainlab.covid.series import HISTORY_PREFIX, is_history_column
from trainlab.covid.stacked import StackedMLP, stackable, stacked_loss
from trainlab.covid.watch import records_folder
from trainlab.errors import ConfigError
from trainlab.train import Callback, History, TrainState, fit, predict


class Predictor(Protocol):
    """Anything with input columns that predicts tested_positive for the rows of a frame."""

    features: list[str]

    def predict(self, frame: CovidFrame) -> np.ndarray: ...


#: The tiers of predictors, most informed first; a row goes to the first whose inputs it has.
TIERS = ("history", "partial", "fallback")


def history_columns(cfg: CovidConfig) -> list[str]:
    """The full-history feature names of ``cfg`` (empty when history is off)."""
    spec = cfg.history.spec()
    return [] if spec is None else spec.columns()


def partial_columns(cfg: CovidConfig, n_days: int) -> list[str]:
    """The test-layout history feature names of ``cfg`` (empty when off)."""
    spec = cfg.history.spec()
    return [] if spec is None else spec.partial_columns(n_days)


def tier_of(features: Sequence[str]) -> str:
    """The tier whose inputs ``features`` are: history, partial or fallback."""
    hist = [f for f in features if is_history_column(f)]
    if any(not f.startswith(f"{HISTORY_PREFIX}tp_back_") for f in hist):
        return "history"
    return "partial" if hist else "fallback"


def history_mask(frame: CovidFrame, columns: Sequence[str]) -> np.ndarray:
    """(N,) rows whose history features are all defined (all False without history columns)."""
    if not columns:
        return np.zeros(len(frame), dtype=bool)
    return np.isfinite(frame.X[list(columns)].to_numpy()).all(axis=1)


def tiered_predict(
    tiers: Sequence[Sequence[Predictor]], frame: CovidFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Each row predicted by the average of the first tier whose inputs it has.

    Args:
        tiers: predictor groups, most informed first; an empty group is skipped, the last
            (fallback) group needs no history and takes every row left.
        frame: rows with their history columns.

    Returns:
        (N,) predictions and (N,) the index of the tier that predicted each row.
    """
    pred = np.full(len(frame), np.nan)
    path = np.full(len(frame), -1, dtype=np.int64)
    for k, group in enumerate(tiers):
        if not group:
            continue
        cols = [f for f in group[0].features if is_history_column(f)]
        take = (path < 0) & (history_mask(frame, cols) if cols else True)
        if take.any():
            rows = subset(frame, np.flatnonzero(take))
            pred[take] = np.mean([p.predict(rows) for p in group], axis=0)
            path[take] = k
    if (path < 0).any():
        raise ConfigError("rows without history but no fallback predictors")
    return pred, path


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
    architecture: ModelConfig
    history: History | None = None

    @property
    def uses_history(self) -> bool:
        """Whether the member reads history features (the history or partial tier)."""
        return any(is_history_column(f) for f in self.features)

    @property
    def tier(self) -> str:
        """history, partial or fallback (:data:`TIERS`)."""
        return tier_of(self.features)

    def inputs(self, frame: CovidFrame) -> torch.Tensor:
        """(N, F) normalised inputs of ``frame`` in this member's feature order."""
        return torch.from_numpy(self.scaler.transform(frame.X))

    def predict(self, frame: CovidFrame) -> np.ndarray:
        """(N,) predicted ``tested_positive`` for every row of ``frame``."""
        out = predict(self.model, self.inputs(frame), batch_size=8192).numpy().astype(np.float64)
        pred = out * self.target_std + self.target_mean
        return pred + frame.persistence() if self.target == "delta" else pred

    def meta(self) -> dict[str, Any]:
        """JSON-able description (weights are saved separately)."""
        return {
            "name": self.name,
            "fold": self.fold,
            "seed": self.seed,
            "tier": self.tier,
            "features": self.features,
            "normalizer": self.scaler.state_dict(),
            "target": self.target,
            "target_mean": self.target_mean,
            "target_std": self.target_std,
            "architecture": to_dict(self.architecture),
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


class _TrainMSE(Callback):
    """Adds ``train_mse`` (evaluation mode, target units) to each epoch's record, for the curves
    (of the first network when several are stacked)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, scale: float) -> None:
        self.x, self.y, self.scale = x, y, scale

    def on_epoch_end(self, state: TrainState, record: dict[str, float]) -> None:
        model = state.model
        was = model.training
        model.eval()
        with torch.no_grad():
            err = _first(model(self.x.to(_device(model))).cpu()) - self.y
        model.train(was)
        value = float((err * err).mean()) * self.scale
        record["train_mse"] = value
        state.history.records[-1]["train_mse"] = value


def _first(outputs: torch.Tensor) -> torch.Tensor:
    """The first network's outputs: (B,) of a single network, row 0 of stacked (S, B)."""
    return outputs[0] if outputs.dim() == 2 else outputs


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _target(cfg: CovidConfig, frame: CovidFrame) -> tuple[np.ndarray, np.ndarray]:
    """(N,) the quantity the model learns (target minus base) and (N,) the base."""
    assert frame.y is not None
    base = frame.persistence() if cfg.target == "delta" else np.zeros(len(frame))
    return frame.y - base, base


@dataclass
class _Problem:
    """One tier's regression problem on a fold: inputs, scaling, the scaled target."""

    features: list[str]
    scaler: Standardizer
    mean: float
    std: float
    x: np.ndarray  # (N, F) float32, every row of the frame
    y: np.ndarray  # (N,) float32


def _problem(
    cfg: CovidConfig, frame: CovidFrame, train_rows: np.ndarray, extra: Sequence[str]
) -> _Problem:
    """Features chosen and statistics computed on ``train_rows`` only."""
    features = select_features(cfg.features, frame, train_rows) + list(extra)
    scaler = Standardizer.fit(frame.X.iloc[train_rows][features], skip=frame.layout.states)
    t, _ = _target(cfg, frame)
    mean, std = (
        (float(t[train_rows].mean()), float(t[train_rows].std()))
        if cfg.standardize_target
        else (0.0, 1.0)
    )
    std = std if std > 1e-12 else 1.0
    y = ((t - mean) / std).astype(np.float32)
    return _Problem(features, scaler, mean, std, scaler.transform(frame.X), y)


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
    return fit_members(cfg, frame, train_rows, val_rows, [seed], [name], curves, extra)[0]


def fit_members(
    cfg: CovidConfig,
    frame: CovidFrame,
    train_rows: np.ndarray,
    val_rows: np.ndarray | None,
    seeds: Sequence[int],
    names: Sequence[str],
    curves: bool = False,
    extra: Sequence[str] = (),
) -> list[Member]:
    """One network per seed on the same rows (see :func:`fit_member`; ``curves``: the first's).

    A network without a hidden layer trained on MSE (``linear_solver = "exact"``, fixed epochs)
    is solved in closed form (:func:`trainlab.covid.linear.fit_linear`); several networks that
    differ only in their seed are trained stacked (:mod:`trainlab.covid.stacked`), each exactly
    as it would be alone; anything else by the Trainer, one network after another.
    """
    prob = _problem(cfg, frame, train_rows, extra)
    m, tc = cfg.model, cfg.train
    nets = []
    for seed in seeds:
        torch.manual_seed(seed)
        nets.append(
            CovidMLP(len(prob.features), m.widths, m.activation, m.batch_norm, m.dropout,
                     m.linear_skip)
        )  # fmt: skip
    fixed = tc.patience is None and not tc.restore_best
    exact = solves_exactly(m.widths, m.linear_skip, cfg.loss, cfg.l1) and tc.weight_decay == 0
    histories: list[History | None] = [None] * len(nets)
    if cfg.linear_solver == "exact" and exact and fixed:
        for net in nets:
            fit_linear(net, prob.x[train_rows], prob.y[train_rows], cfg.l2)
    elif fixed and stackable(len(nets), m.batch_norm, m.dropout, m.linear_skip):
        stack = StackedMLP(nets, m.activation)
        loss_fn = stacked_loss(stack, cfg.loss, cfg.huber_delta, cfg.l1, cfg.l2)
        histories[0] = _train(
            cfg, stack, loss_fn, prob, train_rows, val_rows, seeds[0], curves,
            records_folder(names),
        )  # fmt: skip
        stack.unstack(nets)
    else:
        for j, (net, seed) in enumerate(zip(nets, seeds)):
            loss_fn = make_loss(net, cfg.loss, cfg.huber_delta, cfg.l1, cfg.l2)
            histories[j] = _train(
                cfg, net, loss_fn, prob, train_rows, val_rows, seed, curves and j == 0,
                records_folder(names, j),
            )  # fmt: skip
    return [
        Member(name, name.split("/")[0], seed, net.to("cpu").eval(), prob.features, prob.scaler,
               cfg.target, prob.mean, prob.std, copy.deepcopy(m), history)
        for name, seed, net, history in zip(names, seeds, nets, histories)
    ]  # fmt: skip


def _train(
    cfg: CovidConfig,
    model: torch.nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    prob: _Problem,
    train_rows: np.ndarray,
    val_rows: np.ndarray | None,
    seed: int,
    curves: bool,
    records: Path | None = None,
) -> History:
    """The Trainer on ``train_rows`` (validation rows watched only where something reads them);
    one full batch for fixed epochs takes the same steps without it (:mod:`.fullbatch`). With
    ``records``, the doctor watches the fit and writes its records there."""
    tc = dataclasses.replace(cfg.train, seed=seed, quiet=True, out_dir=None)
    x_tr = torch.from_numpy(prob.x[train_rows])
    y_tr = torch.from_numpy(prob.y[train_rows])
    val = None
    needs_val = curves or cfg.train.patience is not None or cfg.train.restore_best
    if needs_val and val_rows is not None and len(val_rows):
        val = (torch.from_numpy(prob.x[val_rows]), torch.from_numpy(prob.y[val_rows]))
    else:
        tc = dataclasses.replace(tc, patience=None, restore_best=False)
    scale = prob.std * prob.std

    def mse(outputs: torch.Tensor, targets: torch.Tensor) -> float:
        return float(((_first(outputs) - targets) ** 2).mean()) * scale

    if runs_full_batch(tc, len(train_rows)):
        watch = {"train_mse": (x_tr, y_tr, mse)} if curves else {}
        if curves and val is not None:
            watch["val_mse"] = (*val, mse)
        return fit_full_batch(model, loss_fn, (x_tr, y_tr), tc, watch, records)
    callbacks: list[Callback] = [_TrainMSE(x_tr, y_tr, scale)] if curves else []
    if records is not None:
        from trainlab.doctor import DoctorCallback

        callbacks.append(DoctorCallback(records, n_train=len(train_rows)))
    return fit(model, loss_fn, (x_tr, y_tr), val, tc, metrics={"mse": mse}, callbacks=callbacks)


def fit_tiers(
    cfg: CovidConfig,
    frame: CovidFrame,
    train_rows: np.ndarray,
    val_rows: np.ndarray | None,
    prefix: str,
    curves: bool = False,
) -> list[list[Member]]:
    """The networks of every tier (:data:`TIERS`), ``ensemble_seeds`` each: history and partial
    networks on the training rows whose features of that tier are defined (``cfg``'s settings),
    fallback networks on all training rows (``cfg.fallback_config()``). A tier without
    features or training rows is an empty list. Learning curves (``curves``) are recorded for
    the first network trained by the Trainer."""
    from trainlab.covid.resume import cached_fits  # the cache module builds on Member

    groups: list[list[Member]] = []
    want = curves
    for tier, extra in (
        ("history", history_columns(cfg)),
        ("partial", partial_columns(cfg, frame.layout.n_days)),
    ):
        has = history_mask(frame, extra)
        members: list[Member] = []
        if extra and has[train_rows].sum() >= 2:
            hv = None if val_rows is None else val_rows[has[val_rows]]
            rows = train_rows[has[train_rows]]
            seeds = [cfg.seed + j for j in range(cfg.ensemble_seeds)]
            names = [f"{prefix}/{tier}/seed{s}" for s in seeds]
            members = cached_fits(
                names,
                lambda: fit_members(cfg, frame, rows, hv, seeds, names, want, extra),  # noqa: B023
            )
            want = want and all(mb.history is None for mb in members)
        groups.append(members)
    fb = cfg.fallback_config()
    seeds = [fb.seed + j for j in range(fb.ensemble_seeds)]
    names = [f"{prefix}/fallback/seed{s}" for s in seeds]
    groups.append(
        cached_fits(names, lambda: fit_members(fb, frame, train_rows, val_rows, seeds, names, want))
    )
    return groups


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
    features = select_features(cfg.features, frame, train_rows) + list(extra)
    scaler = Standardizer.fit(frame.X.iloc[train_rows][features], skip=frame.layout.states)
    x = scaler.transform(frame.X.iloc[train_rows]).astype(np.float64)
    t = _target(cfg, frame)[0][train_rows]
    try:
        inner = make_folds(
            "blocked", state[train_rows], order[train_rows], k=max(2, cfg.folds - 1),
            gap=fold_gap(cfg.gap, frame.layout.n_days),
        )  # fmt: skip
    except ConfigError:  # too few windows for an inner split: use the middle of the grid
        inner = []
    inner_se = np.zeros(len(cfg.ridge_alphas))
    for f in inner:
        coef, icpt = ridge_path(x[f.train], t[f.train], cfg.ridge_alphas)
        inner_se += (((x[f.val] @ coef.T + icpt) - t[f.val][:, None]) ** 2).sum(axis=0)
    coef, icpt = ridge_path(x, t, cfg.ridge_alphas)
    grid = [
        RidgeMember(features, scaler, coef[k].copy(), float(icpt[k]), cfg.target, alpha)
        for k, alpha in enumerate(cfg.ridge_alphas)
    ]
    best = int(np.argmin(inner_se)) if inner else len(cfg.ridge_alphas) // 2
    return grid[best], grid
