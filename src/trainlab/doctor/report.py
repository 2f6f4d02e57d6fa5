"""The doctor's report: ``doctor.json``, ``doctor.html`` with the evidence plotted, a text summary.

:func:`examine` reads a run's records (finished, running or killed), computes the signals, runs
the rules and returns a :class:`DoctorReport`. In a notebook the report shows itself (it has an
HTML representation); ``report.write()`` puts ``doctor.json`` and ``doctor.html`` in the run
folder. Figures are drawn on a matplotlib ``Figure`` with its own Agg canvas and embedded in the
page, so the page is one offline file and pyplot's global state is never touched.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trainlab._io import atomic_write_json, atomic_write_text
from trainlab.doctor.records import Records, as_float, read_records
from trainlab.doctor.rules import THRESHOLDS, Finding, find_causes
from trainlab.doctor.signals import Signals, extract

__all__ = ["DoctorReport", "examine"]

_COLOURS = {"problem": "#b00020", "warning": "#b26a00", "info": "#1b6e3a"}
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]


@dataclass
class DoctorReport:
    """What the doctor found in one run."""

    run_dir: Path
    records: Records
    signals: Signals
    findings: list[Finding]

    @property
    def cause(self) -> str:
        """The first (most important) finding's cause."""
        return self.findings[0].cause

    def to_dict(self) -> dict[str, Any]:
        """``doctor.json``: the findings first, then the run and the signals they rest on."""
        r = self.records
        return {
            "findings": [f.to_dict() for f in self.findings],
            "run": {
                "folder": str(self.run_dir),
                "records": str(r.path),
                "description": r.meta.get("description"),
                "status": r.status,
                "last_step": r.last_step,
                "epochs": len(r.epochs),
                "truncated_last_line": r.truncated,
                "model": r.meta.get("model"),
                "num_params": r.meta.get("num_params"),
                "optimizer": r.meta.get("optimizer"),
                "hyper": r.meta.get("hyper"),
            },
            "signals": _jsonable(asdict(self.signals)),
            "thresholds": THRESHOLDS,
        }

    def summary(self) -> str:
        """A short text: the run, then one paragraph per finding."""
        r = self.records
        head = (
            f"trainlab doctor: {self.run_dir} ({r.status}, {r.last_step} steps"
            + (f", {len(r.epochs)} epochs" if r.epochs else "")
            + (", last line cut" if r.truncated else "")
            + ")"
        )
        lines = [head]
        for i, f in enumerate(self.findings, 1):
            lines.append(f"{i}. [{f.severity}] {f.cause}: {f.summary}")
            if f.severity != "info" or f.cause == "healthy":
                lines.append(f"   try: {f.remedy}")
            if f.settle:
                lines.append(f"   to settle it: {f.settle}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def write(self, out_dir: str | Path | None = None, plots: bool = True) -> list[Path]:
        """Write ``doctor.json`` and ``doctor.html`` into ``out_dir`` (default: the run folder)."""
        out = Path(out_dir) if out_dir is not None else self.run_dir
        atomic_write_json(out / "doctor.json", self.to_dict())
        atomic_write_text(out / "doctor.html", self.html(plots=plots))
        return [out / "doctor.json", out / "doctor.html"]

    # --- HTML --------------------------------------------------------------------------------
    def html(self, plots: bool = True) -> str:
        """A standalone page: the findings, their evidence and remedies, the evidence plots."""
        title = f"trainlab doctor: {html.escape(str(self.run_dir))}"
        return (
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{title}</title><style>{_CSS}</style></head><body>"
            f"<h1>{title}</h1>{self._body(plots)}</body></html>\n"
        )

    def _repr_html_(self) -> str:
        return f"<div class='trainlab-doctor'><style>{_CSS}</style>{self._body(True)}</div>"

    def _body(self, plots: bool) -> str:
        r = self.records
        meta = r.meta
        facts = [
            ("run", meta.get("description") or str(self.run_dir)),
            ("status", r.status + (" (the last line was cut and skipped)" if r.truncated else "")),
            ("steps", str(r.last_step) + (f", {len(r.epochs)} epochs" if r.epochs else "")),
            ("model", f"{meta.get('model')}, {meta.get('num_params', 0):,} parameters"),
            ("optimizer", f"{meta.get('optimizer')} {meta.get('hyper') or ''}"),
        ]
        parts = ["<table class='facts'>"]
        parts += [f"<tr><th>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts]
        parts.append("</table>")
        for i, f in enumerate(self.findings, 1):
            parts.append(_finding_html(i, f))
        if plots:
            img = self.figure_png()
            if img:
                src = base64.b64encode(img).decode("ascii")
                parts.append(
                    "<h2>Evidence</h2><img alt='evidence plots' style='max-width:100%' "
                    f"src='data:image/png;base64,{src}'>"
                )
        parts.append(
            "<p class='note'>Rules and thresholds: <code>trainlab.doctor.rules</code>; the "
            "numbers are in <code>doctor.json</code>.</p>"
        )
        return "".join(parts)

    def figure_png(self) -> bytes | None:
        """The evidence plots as one PNG (``None`` when the records hold no steps)."""
        if not self.records.steps:
            return None
        fig = evidence_figure(self.records, self.signals)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        return buf.getvalue()


def _finding_html(i: int, f: Finding) -> str:
    colour = _COLOURS.get(f.severity, "#333")
    rows = "".join(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            html.escape(str(e.get("what"))),
            _fmt(e.get("value")),
            html.escape(
                f"step {e['step']}"
                if "step" in e
                else f"epoch {e['epoch']}"
                if "epoch" in e
                else ""
            ),
            _fmt(e.get("threshold")) if "threshold" in e else "",
        )
        for e in f.evidence
    )
    settle = f"<p><b>To settle it:</b> {html.escape(f.settle)}</p>" if f.settle else ""
    return (
        f"<div class='finding' style='border-left-color:{colour}'>"
        f"<h2>{i}. <code>{f.cause}</code> <span class='sev' style='background:{colour}'>"
        f"{f.severity}</span></h2><p>{html.escape(f.summary)}</p>"
        f"<p><b>What to try:</b> {html.escape(f.remedy)}</p>{settle}"
        "<table class='ev'><tr><th>evidence</th><th>value</th><th>where</th><th>threshold</th>"
        f"</tr>{rows}</table></div>"
    )


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, (int, float)):
        return f"{v:.4g}"
    return html.escape(str(v))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:1.5em auto;padding:0 1em;"
    "color:#222}.finding{border-left:6px solid;padding:0.2em 1em;margin:1em 0;background:#fafafa}"
    ".finding h2{font-size:1.1em}.sev{color:white;border-radius:3px;padding:0 6px;"
    "font-size:0.8em;vertical-align:middle}table{border-collapse:collapse;font-size:0.9em}"
    "td,th{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left}.note{color:#666;"
    "font-size:0.85em}.facts th{width:7em}"
)


# --- figures ---------------------------------------------------------------------------------


def evidence_figure(records: Records, signals: Signals) -> Any:
    """Four panels: loss (with the constant baseline and validation), gradient norm per layer,
    update/weight ratio per layer, and the stability ratio with the dead/saturated shares."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 7.2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    for ax in axes.flat:
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(True, alpha=0.3)
        ax.set_prop_cycle(color=PALETTE)
    _loss_panel(axes[0, 0], records, signals)
    names = [layer["name"] for layer in records.meta.get("layers") or []]
    _layer_panel(axes[0, 1], records, "grad", names, "gradient norm per layer")
    _layer_panel(axes[1, 0], records, "update", names, "update / weight per step")
    _curvature_panel(axes[1, 1], records)
    fig.tight_layout()
    return fig


def _series(records: Records, key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for r in records.steps:
        v = r.get(key)
        if v is not None and math.isfinite(as_float(v)):
            xs.append(int(r["step"]))
            ys.append(as_float(v))
    return xs, ys


def _positive(ys: list[float]) -> bool:
    return bool(ys) and all(y > 0 for y in ys)


def _loss_panel(ax: Any, records: Records, s: Signals) -> None:
    xs, ys = _series(records, "loss")
    ax.plot(xs, ys, label="training loss (records)", lw=1.4)
    ep = [(int(e["step"]), as_float(e["val_loss"])) for e in records.epochs if "val_loss" in e]
    ep = [(x, y) for x, y in ep if math.isfinite(y)]
    if ep:
        ax.plot(*zip(*ep), "o-", ms=3, label="validation loss (epochs)", lw=1.2)
    if s.baseline is not None:
        ax.axhline(s.baseline, color="grey", ls="--", lw=1, label="best constant output")
    if s.diverged_step is not None:
        ax.axvline(s.diverged_step, color="#b00020", ls=":", lw=1.2, label="non-finite")
    if _positive(ys + [y for _, y in ep]):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("loss")
    ax.legend(frameon=False, fontsize=8)


def _layer_panel(ax: Any, records: Records, key: str, names: list[str], title: str) -> None:
    steps = [r for r in records.steps if r.get(key)]
    if not steps:
        ax.set_title(f"{title} (not recorded)")
        return
    n = len(steps[0][key])
    shown = list(range(n)) if n <= 8 else sorted({0, n - 1, *range(0, n, max(1, n // 6))})
    any_pos = False
    for i in shown:
        pts = [
            (int(r["step"]), as_float(r[key][i]))
            for r in steps
            if i < len(r[key]) and r[key][i] is not None and as_float(r[key][i]) > 0
        ]
        pts = [(x, y) for x, y in pts if math.isfinite(y)]
        if pts:
            any_pos = True
            ax.plot(*zip(*pts), lw=1.1, label=names[i] if i < len(names) else str(i))
    if any_pos:
        ax.set_yscale("log")
        ax.legend(frameon=False, fontsize=7, ncol=2)
    ax.set_xlabel("step")
    ax.set_title(title)


def _curvature_panel(ax: Any, records: Records) -> None:
    cur = [
        (int(c["step"]), as_float(c.get("stability_ratio")))
        for c in records.curvatures
        if c.get("stability_ratio") is not None
    ]
    cur = [(x, y) for x, y in cur if math.isfinite(y) and y > 0]
    if cur:
        ax.plot(*zip(*cur), "o-", ms=4, label="stability ratio ρ (lr·λ_max / threshold)")
        ax.axhline(1.0, color="grey", ls="--", lw=1, label="edge of stability (ρ = 1)")
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("curvature and units")
    twin = ax.twinx()
    twin.set_ylim(-0.02, 1.02)
    twin.set_ylabel("share of units")
    for key, label, colour in (("dead", "dead ReLU units", "#D55E00"),
                               ("saturated", "saturated sigmoid/tanh", "#CC79A7")):  # fmt: skip
        pts = []
        for p in records.probes:
            vals = [as_float(v[key]) for v in p["layers"].values() if key in v]
            if vals:
                pts.append((int(p["step"]), sum(vals) / len(vals)))
        if pts:
            twin.plot(*zip(*pts), "s:", ms=4, color=colour, label=label)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = twin.get_legend_handles_labels()
    if h1 or h2:
        ax.legend(h1 + h2, l1 + l2, frameon=False, fontsize=7, loc="best")


def examine(run_dir: str | Path) -> DoctorReport:
    """Diagnose a run from its records.

    Args:
        run_dir: the run folder holding ``doctor.jsonl`` (or the file itself).

    Returns:
        A :class:`DoctorReport`; ``print`` it, ``.write()`` it, or show it in a notebook.

    Raises:
        DataError: no folder, no records, or records damaged other than in their last line.
    """
    records = read_records(run_dir)
    signals = extract(records)
    folder = records.path.parent
    return DoctorReport(folder, records, signals, find_causes(signals))
