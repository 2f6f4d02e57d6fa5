"""The COVID task's final ensemble: training it, the later-days simulation, saving and loading.

An :class:`Ensemble` holds the networks of both tiers and the last days of every training series,
so that prediction can rebuild history features for rows that continue the training period.
:func:`later_days` simulates the held-out evaluation on the training file: each state's last
windows are held out after a gap, the ensemble is trained on the rest exactly as the final one is,
and the held-out rows, without their target, go through :meth:`Ensemble.predict_info`, the code
of ``trainlab covid predict``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainlab._io import atomic_torch_save, atomic_write_json, load_torch
from trainlab.config import from_dict, to_dict
from trainlab.covid.config import CovidConfig, ModelConfig, load_covid_config
from trainlab.covid.files import CovidFrame
from trainlab.covid.folds import holdout_split
from trainlab.covid.frame import Standardizer, subset
from trainlab.covid.members import TIERS, Member, fit_tiers, tiered_predict
from trainlab.covid.model import CovidMLP, describe
from trainlab.covid.resume import fit_scope
from trainlab.covid.series import HistorySpec, SeriesTails, build_timeline, with_history
from trainlab.covid.validate import SchemeResult, cross_validate, prepare, ridge_tiers
from trainlab.errors import DataError
from trainlab.runs import find_model_dir, read_model_json

FORMAT_VERSION = 2
HISTORY_FILE = "history.npz"


@dataclass
class Ensemble:
    """The saved members of a run, its description (``model.json``) and the stored end of every
    training series (what history features at prediction time start from)."""

    members: list[Member]
    meta: dict[str, Any]
    tails: SeriesTails | None = None

    @property
    def spec(self) -> HistorySpec | None:
        """The history features the history members read (None: no history tier)."""
        h = self.meta.get("history")
        return (
            None if not h else HistorySpec(int(h["lags"]), int(h["weeks"]), int(h.get("back", 0)))
        )

    def prepare(self, frame: CovidFrame) -> tuple[CovidFrame, dict[str, int]]:
        """``frame`` with history features built from the stored training days and the frame's
        own earlier rows, and counts of what was found.

        Returns:
            The frame and ``{"rows", "history_rows", "partial_rows", "chains",
            "attached_chains"}`` (rows predicted by the history and the partial tier).
        """
        spec = self.spec
        if spec is None:
            empty = {"history_rows": 0, "partial_rows": 0, "chains": 0, "attached_chains": 0}
            return frame, {"rows": len(frame), **empty}
        link = any(m.tier == "partial" for m in self.members)
        timeline = build_timeline(frame, self.tails, link=link)
        out = with_history(frame, spec, timeline=timeline)
        _, path = tiered_predict(self.tiers(), out)
        info = {
            "rows": len(frame),
            "history_rows": int((path == 0).sum()),
            "partial_rows": int((path == 1).sum()),
            "chains": len(timeline.state),
            "attached_chains": int(timeline.attached.sum()),
        }
        return out, info

    def tiers(self) -> list[list[Member]]:
        """The members grouped by tier (:data:`TIERS` order)."""
        return [[m for m in self.members if m.tier == t] for t in TIERS]

    def predict_info(self, frame: CovidFrame) -> tuple[np.ndarray, dict[str, int]]:
        """(N,) predictions for a frame as read from a file, and the counts of :meth:`prepare`."""
        prepared, info = self.prepare(frame)
        pred, _ = tiered_predict(self.tiers(), prepared)
        return pred, info

    def predict(self, frame: CovidFrame) -> np.ndarray:
        """(N,) the members' average prediction of ``tested_positive`` (history tier where a
        row's history is known, fallback tier elsewhere)."""
        return self.predict_info(frame)[0]


def fit_ensemble(
    cfg: CovidConfig,
    frame: CovidFrame,
    order: np.ndarray,
    data_dir: Path,
    cv: SchemeResult | None = None,
) -> Ensemble:
    """The final ensemble on ``frame``: ``ensemble_seeds`` networks per tier trained on every row
    (``final = "refit"``) or the members of ``cv`` (``"folds"``), with the series' ends stored.

    Args:
        cfg: the settings.
        frame: the training rows (without history columns).
        order: their time positions (:func:`time_order`).
        data_dir: recorded in the description.
        cv: the validation scheme's result with its members (needed for ``"folds"``; computed
            here when None).
    """
    full, timeline = prepare(cfg, frame)
    if cfg.final == "folds":
        if cv is None or not cv.members:
            cv = cross_validate(cfg, frame, order, cfg.validation, keep_members=True)
        members = cv.members
    else:
        tiers = fit_tiers(cfg, full, np.arange(len(frame)), None, "all")
        members = [m for group in tiers for m in group]
    members = sorted(members, key=lambda m: TIERS.index(m.tier))  # model.pt: the main tier
    spec = cfg.history.spec()
    tails = None
    if spec is not None and timeline is not None:
        keep = max(spec.depth + frame.layout.n_days, 2 * frame.layout.n_days)
        tails = timeline.tails(list(frame.layout.features), keep)
    return Ensemble(members, _model_meta(cfg, frame, data_dir, members), tails)


def later_days(
    cfg: CovidConfig,
    frame: CovidFrame,
    order: np.ndarray,
    data_dir: Path,
    tuned_alpha: float | None = None,
) -> dict[str, Any]:
    """The held-out evaluation, simulated on the training file.

    Each state's last ``holdout_rows`` windows are held out after ``holdout_gap`` dropped windows
    (no shared day), the ensemble is trained on the rest exactly as the final one is, and the
    held-out rows, without their target, go through the prediction path of ``trainlab covid
    predict`` (history from the stored training days and the rows' own earlier windows).

    Returns:
        MSE of the model and the references, and how many rows had history.
    """
    assert frame.y is not None
    t0 = time.perf_counter()
    tr_rows, ho_rows = holdout_split(order, frame.state, cfg.holdout_rows, cfg.holdout_gap)
    reduced = subset(frame, tr_rows)
    hold = subset(frame, ho_rows, with_target=False)  # the test layout: no target
    y = frame.y[ho_rows]
    with fit_scope("later_days"):
        ensemble = fit_ensemble(cfg, reduced, order[tr_rows], data_dir)
    pred, info = ensemble.predict_info(hold)
    prepared, _ = ensemble.prepare(hold)
    assert reduced.y is not None
    preds = {
        "model": pred,
        "mean": np.full(len(hold), reduced.y.mean()),
        "persistence": hold.persistence(),
        **_ridge_references(cfg, reduced, order[tr_rows], prepared, tuned_alpha),
    }
    out: dict[str, Any] = {name: float(np.mean((p - y) ** 2)) for name, p in preds.items()}
    out.update(
        {
            "train_rows": len(tr_rows),
            "rows": len(ho_rows),
            "history_rows": info["history_rows"],
            "attached_chains": info["attached_chains"],
            "chains": info["chains"],
            "seconds": time.perf_counter() - t0,
        }
    )
    return out


def _ridge_references(
    cfg: CovidConfig,
    train: CovidFrame,
    order: np.ndarray,
    prepared: CovidFrame,
    tuned_alpha: float | None,
) -> dict[str, np.ndarray]:
    """Ridge without history, ridge (alpha by inner CV, the model's tiers) and, given
    ``tuned_alpha``, the tuned ridge, fitted on ``train`` and applied to ``prepared`` (rows with
    their history features)."""
    full, _ = prepare(cfg, train)
    best, grids = ridge_tiers(cfg, full, order, np.arange(len(train)))
    preds = {
        "ridge_no_history": best[-1].predict(prepared),
        "ridge": tiered_predict([[r] for r in best], prepared)[0],
    }
    if tuned_alpha is not None:
        k = cfg.ridge_alphas.index(tuned_alpha)
        preds["ridge_tuned"] = tiered_predict([[g[k]] for g in grids], prepared)[0]
    return preds


def describe_member(member: Member) -> str:
    """``MLP 14-16-1 (...)`` or ``linear 23-1 (...)`` for one member."""
    a = member.architecture
    return describe(member.model, len(member.features), a.widths, a.activation)


def describe_members(members: list[Member]) -> str:
    """``linear 23-1 (...) with history; ...; MLP 14-16-1 (...) fallback``-style summary."""
    parts = []
    for tier in TIERS:
        first = next((m for m in members if m.tier == tier), None)
        if first is not None:
            parts.append(f"{describe_member(first)} {_TIER_WORDS[tier]}")
    if len(parts) == 1:
        return parts[0].rsplit(" ", 1)[0] if parts[0].endswith(" fallback") else parts[0]
    return "; ".join(parts)


_TIER_WORDS = {
    "history": "on rows with history",
    "partial": "on rows with test-layout history",
    "fallback": "fallback",
}


def _model_meta(
    cfg: CovidConfig, train: CovidFrame, data_dir: Path, members: list[Member]
) -> dict[str, Any]:
    spec = cfg.history.spec() if any(m.uses_history for m in members) else None
    return {
        "task": "covid",
        "format_version": FORMAT_VERSION,
        "description": describe_members(members),
        "layout": train.layout.name,
        "input_columns": train.layout.input_columns(),
        "target": train.layout.target,
        "data": str(data_dir.resolve()),
        "config": to_dict(cfg),
        "history": None
        if spec is None
        else {"lags": spec.lags, "weeks": spec.weeks, "back": spec.back},
        "history_file": None if spec is None else HISTORY_FILE,
        "members": [
            {**m.meta(), "file": "model.pt" if i == 0 else f"member_{i}.pt"}
            for i, m in enumerate(members)
        ],
    }


def save_ensemble(ensemble: Ensemble, model_dir: Path) -> None:
    """Write the members' weights, the stored series' ends and ``model.json`` into ``model_dir``."""
    for member, info in zip(ensemble.members, ensemble.meta["members"]):
        atomic_torch_save(member.model.state_dict(), model_dir / info["file"])
    if ensemble.tails is not None and ensemble.meta["history_file"]:
        ensemble.tails.save(model_dir / ensemble.meta["history_file"])
    atomic_write_json(model_dir / "model.json", ensemble.meta)


def load_ensemble(model_dir: str | Path) -> Ensemble:
    """Rebuild the ensemble :func:`save_ensemble` wrote (a run folder ``OUT`` or ``OUT/model``)."""
    mdir = find_model_dir(model_dir, "covid")
    meta = read_model_json(mdir, "covid")
    try:
        cfg = load_covid_config(overrides=meta["config"])
        members = [_load_member(mdir / info["file"], info, cfg) for info in meta["members"]]
        tails = None
        if meta.get("history"):
            tails = SeriesTails.load(mdir / meta["history_file"])
    except KeyError as e:
        raise DataError(mdir / "model.json", f"missing entry {e}") from None
    except (TypeError, ValueError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(mdir / "model.json", f"malformed model description ({first})") from None
    ensemble = Ensemble(members, meta, tails)
    try:
        ensemble.spec  # noqa: B018 - checks the stored history entry
    except (TypeError, ValueError, KeyError) as e:
        raise DataError(mdir / "model.json", f"malformed 'history' entry ({e})") from None
    return ensemble


def _load_member(path: Path, info: dict[str, Any], cfg: CovidConfig) -> Member:
    state = load_torch(path, "weights file")
    m = (
        from_dict(ModelConfig, info["architecture"], source=str(path))
        if info.get("architecture")
        else cfg.model
    )
    model = CovidMLP(
        len(info["features"]), m.widths, m.activation, m.batch_norm, m.dropout, m.linear_skip
    )
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        first = str(e).strip().splitlines()[0]
        raise DataError(path, f"weights do not fit the model in model.json ({first})") from None
    model.eval()
    scaler = Standardizer.from_state_dict(info["normalizer"])
    n = len(info["features"])
    if not (len(scaler.columns) == len(scaler.mean) == len(scaler.std) == n):
        raise DataError(
            path.parent / "model.json",
            f"member {info['name']!r}: 'normalizer' does not match its {n} features",
        )
    return Member(
        info["name"],
        info["fold"],
        int(info["seed"]),
        model,
        list(info["features"]),
        scaler,
        info["target"],
        float(info["target_mean"]),
        float(info["target_std"]),
        m,
    )
