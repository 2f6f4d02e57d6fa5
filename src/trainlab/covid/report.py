"""The COVID run's report: the validation table, ``metrics.json`` content and learning curves.

The numbers (:func:`metrics_dict`) are plain data; the table and the figures render them. Figures
are drawn on their own ``matplotlib.figure.Figure`` with the Agg canvas, so no pyplot state, backend
or rcParams change is left behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trainlab._io import atomic_write_with
from trainlab.covid.members import Member
from trainlab.covid.validate import REFERENCES, SchemeResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_LABELS = {
    "model": "model",
    "mean": "mean (training mean)",
    "persistence": "persistence (day D-1)",
    "ridge": "ridge (alpha by inner CV)",
    "ridge_tuned": "ridge (best alpha on folds)",
    "ridge_no_history": "ridge without history",
}


def metrics_dict(
    results: dict[str, SchemeResult], y: np.ndarray, later: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Per scheme and predictor: pooled MSE, per-fold MSE, their spread; ridge alphas; fold sizes;
    validation rows predicted with history. The later-days simulation's numbers, if given, are
    stored unchanged under ``"later_days"``."""
    out: dict[str, Any] = {}
    for scheme, r in results.items():
        entry: dict[str, Any] = {}
        for name in ("model", *REFERENCES):
            folds = r.fold_mse[name]
            entry[name] = {
                "mse": r.mse(y, name),
                "fold_mse": folds,
                "fold_std": float(np.std(folds)) if len(folds) > 1 else 0.0,
            }
        entry["ridge"]["alphas"] = r.ridge_alphas
        entry["ridge_tuned"]["alpha"] = r.ridge_tuned_alpha
        if scheme == "blocked":
            # the last chunk of every state: a forecast of the latest period, like the held-out days
            entry["last_block"] = {n: r.fold_mse[n][-1] for n in ("model", *REFERENCES)}
        entry["model_beats_ridge_folds"] = int(
            sum(m < g for m, g in zip(r.fold_mse["model"], r.fold_mse["ridge_tuned"]))
        )
        entry["n_folds"] = len(r.folds)
        validated = np.zeros(len(y), dtype=bool)
        for f in r.folds:
            validated[f.val] = True
        entry["val_rows_total"] = int(validated.sum())
        entry["val_rows_with_history"] = (
            0 if r.used_history is None else int(r.used_history[validated].sum())
        )
        entry["val_rows"] = [len(f.val) for f in r.folds]
        entry["train_rows"] = [len(f.train) for f in r.folds]
        entry["seconds"] = r.seconds
        out[scheme] = entry
    if later is not None:
        out["later_days"] = later
    return out


def format_table(
    metrics: dict[str, Any], model_label: str, early_stopped_on_val: bool, inputs: str = ""
) -> str:
    """A plain-text table: rows are predictors, columns the validation schemes (MSE)."""
    later = metrics.get("later_days")
    schemes = [s for s in metrics if s != "later_days"]
    cols = [f"{s} ({metrics[s]['n_folds']})" if metrics[s]["n_folds"] > 1 else s for s in schemes]
    if "blocked" in metrics:
        cols.append("blocked last")
    if later is not None:
        cols.append("later days")
    width = max(len(model_label), *(len(v) for v in _LABELS.values())) + 2
    lines = ["validation MSE (lower is better; same folds for every row)"]
    lines.append(" " * width + "".join(f"{c:>17}" for c in cols))
    for name in ("model", *REFERENCES):
        label = model_label if name == "model" else _LABELS[name]
        cells = []
        for s in schemes:
            e = metrics[s][name]
            cell = f"{e['mse']:.4f}"
            if metrics[s]["n_folds"] > 1:
                cell += f" ±{e['fold_std']:.3f}"
            cells.append(f"{cell:>17}")
        if "blocked" in metrics:
            cells.append(f"{metrics['blocked']['last_block'][name]:>17.4f}")
        if later is not None:
            cells.append(f"{later[name]:>17.4f}" if name in later else f"{'-':>17}")
        lines.append(f"{label:<{width}}" + "".join(cells))
    notes = _notes(metrics, schemes, early_stopped_on_val, inputs)
    return "\n".join(lines + notes)


def _notes(
    metrics: dict[str, Any], schemes: list[str], early_stopped_on_val: bool, inputs: str
) -> list[str]:
    """The lines under the table: what the columns mean and what each reference saw."""
    later = metrics.get("later_days")
    notes = [
        "± = std over folds; 'blocked last' = the last time chunk of every state (a forecast).",
    ]
    if later is not None:
        notes.append(
            f"later days: each state's last windows held out after a gap ({later['rows']} rows), "
            f"the rest trained on as the final model is, predicted as 'covid predict' does; "
            f"{later['history_rows']} of {later['rows']} rows had history."
        )
    hist = [
        f"{s} {metrics[s]['val_rows_with_history']}/{metrics[s]['val_rows_total']}"
        for s in schemes
        if metrics[s].get("val_rows_with_history")
    ]
    if hist:
        notes.append(
            "validation rows with history (the rest used the fallback networks): "
            + ", ".join(hist)
            + "."
        )
    if inputs:
        notes.append(f"ridge sees the model's inputs: {inputs}.")
    if "blocked" in metrics:
        b = metrics["blocked"]
        notes.append(
            f"blocked: the model beats the tuned ridge on {b['model_beats_ridge_folds']} of "
            f"{b['n_folds']} folds; inner-CV ridge alphas {', '.join(f'{a:g}' for a in b['ridge']['alphas'])}; "
            f"tuned alpha {b['ridge_tuned']['alpha']:g}."
        )
    if early_stopped_on_val:
        notes.append(
            "the model was early-stopped on each validation fold (as in the course), so its "
            "numbers are optimistic."
        )
    return notes


_TESTLIKE_LABELS = {
    "mean": "mean (training mean)",
    "persistence": "persistence (day D-1)",
    "ols_survey14": "OLS on survey14",
    "ridge_survey14": "ridge on survey14",
    "ridge_delta": "ridge, day-over-day change, 53 survey features",
    "ridge": "ridge in the model's tiers (same path)",
    "sample": "course sample model (93-64-1)",
}


def format_testlike(tl: dict[str, Any], model_label: str) -> str:
    """The test-like table: MSE (Kaggle 2022's metric) and RMSE (the 2021 slides') of the model
    and every reference on the validation states (settings were chosen there) and on the
    untouched states (never used for a choice), pooled and per split, and which rows took which
    prediction path."""
    width = max(len(model_label), *(len(v) for v in _TESTLIKE_LABELS.values())) + 2
    untouched = tl.get("untouched_states") or []
    cols = ["val MSE", "val RMSE"]
    if untouched:
        cols += ["untouched MSE", "untouched RMSE"]
    cols += ["all MSE", *(f"{s} MSE" for s in tl["splits"])]
    lines = [
        "test-like validation: held-out windows laid out like covid.test.csv, predicted as "
        "'covid predict' does (the number to expect on Kaggle)",
        " " * width + "".join(f"{c:>15}" for c in cols),
    ]
    for name in ("model", *_TESTLIKE_LABELS):
        if name not in tl:
            continue
        e = tl[name]
        label = model_label if name == "model" else _TESTLIKE_LABELS[name]
        cells = [e.get("validation_mse", e["mse"]), e.get("validation_rmse", e["rmse"])]
        if untouched:
            cells += [e["untouched_mse"], e["untouched_rmse"]]
        cells += [e["mse"], *e["split_mse"]]
        lines.append(f"{label:<{width}}" + "".join(f"{c:>15.4f}" for c in cells))
    m = tl["model"]
    paths = ", ".join(
        f"{m['path_rows'][t]} {t}"
        + (f" (MSE {m['path_mse'][t]:.4f})" if t in m["path_mse"] else "")
        for t in m["path_rows"]
    )
    lines.append(f"prediction path of the {tl['rows']} held-out rows: {paths}.")
    if untouched:
        n_val = tl.get("validation_rows", tl["rows"])
        lines.append(
            f"val = the {n_val} rows of the validation states (defaults were chosen on them); "
            f"untouched = the {tl['rows'] - n_val} rows of states "
            f"{', '.join(str(k) for k in untouched)}, never used for a choice."
        )
    return "\n".join(lines)


def _figure(width: float, height: float) -> Figure:
    """A figure of its own on the Agg canvas (matplotlib imported only when plotting)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    atomic_write_with(path, lambda p: fig.savefig(p, dpi=110))


def plot_curves(members: list[Member], path: Path, title: str) -> None:
    """Training and validation MSE per epoch of each fold's first member, one panel per fold."""
    curves = [m for m in members if m.history is not None and "train_mse" in m.history.keys()]
    if not curves:
        return
    n = len(curves)
    cols = min(n, 5)
    rows = (n + cols - 1) // cols
    fig = _figure(max(3.2 * cols, 6.0), 2.8 * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    for ax, m in zip(axes.flat, curves):
        h = m.history
        assert h is not None
        epochs = h["epoch"]
        ax.plot(epochs, h["train_mse"], label="train", lw=1.2)
        if "val_mse" in h.keys():
            ax.plot(epochs, h["val_mse"], label="validation", lw=1.2)
        if h.best_epoch is not None and m.model is not None and h.stopped_early:
            ax.axvline(h.best_epoch, color="grey", ls=":", lw=1)
        ax.set_title(m.fold, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes[0][0].set_ylabel("MSE")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    _save(fig, path)


def plot_predictions(y: np.ndarray, oof: dict[str, np.ndarray], path: Path, scheme: str) -> None:
    """Out-of-fold predicted vs true ``tested_positive`` for the model and ridge."""
    fig = _figure(8.0, 4.0)
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    lo, hi = float(np.nanmin(y)), float(np.nanmax(y))
    for ax, name in zip(axes, ("model", "ridge")):
        p = oof[name]
        ok = ~np.isnan(p)
        ax.scatter(y[ok], p[ok], s=4, alpha=0.4)
        ax.plot([lo, hi], [lo, hi], color="grey", lw=1)
        ax.set_title(
            f"{name}: {scheme} out-of-fold, MSE {np.mean((p[ok] - y[ok]) ** 2):.3f}", fontsize=9
        )
        ax.set_xlabel("true tested_positive")
    axes[0].set_ylabel("predicted")
    _save(fig, path)
