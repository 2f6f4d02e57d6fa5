"""Section 8: the doctor - the chapter's decision framework, applied to training runs automatically.

The chapter's framework reads a stalled training from its symptoms: the training loss first
(high: model bias or optimisation; low with a high validation loss: overfitting), then the
gradients, the curvature and the learning rate. :mod:`trainlab.doctor` automates that reading.
Here it watches two runs of its test bed (:mod:`trainlab.doctor.testbed`), one with a learning
rate far too high and one healthy, and its findings are shown beside the chapter's claims.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainlab.report.context import SectionContext
from trainlab.report.result import Figure, Rendered, Table, Verdict

KEY = "doctor"
TITLE = "The doctor: the chapter's diagnosis, automated"
CLAIM = (
    "When a network stops improving, the cause can be read from the training itself: look at the "
    "training loss first; a learning rate too large makes the loss oscillate or diverge because "
    "the steps overshoot the valley (lr · λ_max > 2: past the edge of stability), while a "
    "well-set training lowers its loss steadily with no such sign."
)

#: What the chapter says about each test-bed run the section can show.
CHAPTER = {
    "lr_too_high": "a learning rate too large: the loss oscillates or diverges; lower it, "
    "or use a schedule with warm-up",
    "lr_too_low": "a learning rate too small: the loss falls, but slowly; adaptive learning rates",
    "saddle": "a critical point with negative curvature: a saddle point, which can be escaped",
    "vanishing": "gradients vanish through saturating layers: a better initialisation",
    "overfitting": "training loss low, validation loss high: overfitting",
    "model_bias": "training loss high with a simple model: model bias, a more flexible model",
    "dead_units": "units that never activate pass no gradient",
    "ill_conditioned": "badly scaled inputs: feature normalisation",
    "exploding": "activations and gradients grow through depth: a smaller initialisation",
    "healthy": "a well-set training: the loss falls steadily, nothing to fix",
}


@dataclass
class Config:
    """Settings of the doctor section.

    Attributes:
        cases: test-bed cases to run (:data:`trainlab.doctor.testbed.CASES`).
        width: hidden width of their networks.
        n: training rows of their synthetic data.
        task: ``classification`` or ``regression``.
        curvature_every: a curvature check every this many steps (the figure's points), instead
            of the monitor's time budget, which allows few in runs this short.
    """

    cases: list[str] = field(default_factory=lambda: ["lr_too_high", "healthy"])
    width: int = 64
    n: int = 1024
    task: str = "classification"
    curvature_every: int = 10


def default_config(quick: bool) -> Config:
    return Config(n=512) if quick else Config()


# --- measurement ----------------------------------------------------------------------------


@dataclass
class DoctorRuns:
    """What the doctor found in each test-bed run.

    Attributes:
        runs: case -> ``{"expected", "what", "cause", "severity", "agrees", "findings",
            "status", "steps"}``.
        curves: case -> ``{"steps": [...], "loss": [...], "rho": [[step, ρ], ...],
            "baseline": float | None}``.
    """

    runs: dict[str, dict[str, Any]]
    curves: dict[str, dict[str, Any]]

    def numbers(self) -> dict[str, Any]:
        return {"runs": self.runs, "all_named": all(r["agrees"] for r in self.runs.values())}


def measure(ctx: SectionContext, cfg: Config) -> DoctorRuns:
    """Train each test-bed case with the doctor watching, then diagnose its records."""
    from trainlab.doctor import examine
    from trainlab.doctor.records import as_float
    from trainlab.doctor.signals import PLAIN_RULES
    from trainlab.doctor.testbed import CASES, run_case

    runs, curves = {}, {}
    with tempfile.TemporaryDirectory(prefix="trainlab-doctor-") as tmp:
        for name in cfg.cases:
            case = CASES[name]
            with ctx.step(f"{name}: {case.what}"):
                out = run_case(
                    name, Path(tmp) / name, seed=ctx.seed, width=cfg.width, n=cfg.n,
                    task=cfg.task, tensorboard=False, curvature_every=cfg.curvature_every,
                )  # fmt: skip
                report = examine(out)
            first = report.findings[0]
            runs[name] = {
                "what": case.what,
                "expected": case.expected,
                "cause": first.cause,
                "severity": first.severity,
                "agrees": first.cause == case.expected
                and (first.severity == "problem") == (case.expected != "healthy"),
                "status": report.records.status,
                "steps": report.records.last_step,
                "findings": [f.to_dict() for f in report.findings],
            }
            steps = [
                (int(r["step"]), as_float(r["loss"]))
                for r in report.records.steps
                if r.get("loss") is not None
            ]
            curves[name] = {
                "steps": [s for s, _ in steps],
                "loss": [v for _, v in steps],
                "rho": [  # an adaptive optimizer's first checks rest on one gradient: left out
                    [int(c["step"]), as_float(c["stability_ratio"])]
                    for c in report.records.curvatures
                    if c.get("stability_ratio") is not None
                    and (c.get("rule") in PLAIN_RULES or int(c["step"]) > 10)
                ],
                "baseline": report.signals.baseline,
            }
    return DoctorRuns(runs, curves)


# --- rendering ------------------------------------------------------------------------------


def render(ctx: SectionContext, cfg: Config, m: DoctorRuns) -> Rendered:
    """The findings beside the chapter's claims, the runs' loss and stability curves."""
    names = ", ".join(f"{n} ({m.runs[n]['what']})" for n in m.runs)
    return Rendered(
        experiment=(
            f"Runs of the doctor's test bed ({names}) train a {cfg.width}-unit network on "
            f"{cfg.n} rows of synthetic {cfg.task} data with trainlab's fit, the doctor's "
            "callback writing its records (loss, gradients and update sizes per layer, probe "
            "activations, the top Hessian eigenvalue against the optimizer's stability "
            "threshold). `trainlab doctor` then reads only those records and names the cause; "
            "it is not told which run is which."
        ),
        verdict=verdict(m),
        tables=[_findings_table(m)],
        figures=[_curves_figure(ctx, m)],
        notes=[
            "Rules and thresholds: trainlab.doctor.rules (the same for every run; the test suite "
            "checks them on all ten test-bed cases across seeds, widths and data)."
        ],
    )


def verdict(m: DoctorRuns) -> Verdict:
    named = [n for n, r in m.runs.items() if r["agrees"]]
    parts = [
        f"{n}: {r['cause']} ({r['severity']})" for n, r in m.runs.items()
    ]  # the first finding of each run
    if len(named) == len(m.runs):
        return Verdict(
            f"The doctor names every run's cause first from its records alone ({'; '.join(parts)}).",
            True,
        )
    return Verdict(
        f"The doctor named {len(named)} of {len(m.runs)} runs correctly ({'; '.join(parts)}).",
        False if not named else None,
    )


def _key_evidence(finding: dict[str, Any]) -> str:
    for e in finding.get("evidence", []):
        value = e.get("value")
        if isinstance(value, (int, float)):
            where = f" (step {e['step']})" if "step" in e else ""
            return f"{e['what']}: {value:.3g}{where}"
    return ""


def _findings_table(m: DoctorRuns) -> Table:
    rows = []
    for name, r in m.runs.items():
        first = r["findings"][0]
        rows.append(
            [name, CHAPTER.get(name, r["expected"]), r["cause"], r["severity"],
             _key_evidence(first), first["remedy"].split(". ")[0] + ".", r["agrees"]]
        )  # fmt: skip
    return Table(
        caption="Each run's first finding beside what the chapter says about it.",
        columns=[
            "run",
            "the chapter",
            "doctor's first finding",
            "severity",
            "key evidence",
            "remedy (first sentence)",
            "named",
        ],  # fmt: skip
        rows=rows,
        mark_columns=["named"],
    )


def _curves_figure(ctx: SectionContext, m: DoctorRuns) -> Figure:
    from trainlab.report.figures import legend, subplots

    fig, axes = subplots(2)
    loss_ax, rho_ax = axes[0, 0], axes[0, 1]
    for name, c in m.curves.items():
        loss_ax.plot(c["steps"], c["loss"], label=name, lw=1.5)
        if c["rho"]:
            xs, ys = zip(*[(s, v) for s, v in c["rho"] if v > 0] or [(0, 1.0)])
            rho_ax.plot(xs, ys, "o-", label=name, ms=4)
    if all(v > 0 for c in m.curves.values() for v in c["loss"]):
        loss_ax.set_yscale("log")
    loss_ax.set_title("training loss (the doctor's records)")
    loss_ax.set_xlabel("step")
    legend(loss_ax)
    rho_ax.axhline(1.0, color="grey", ls="--", lw=1)
    rho_ax.set_yscale("log")
    rho_ax.set_title("stability ratio ρ = lr·λ_max / threshold")
    rho_ax.set_xlabel("step")
    legend(rho_ax)
    return ctx.save_figure(
        fig,
        "runs",
        "Left: the training loss of each run as the doctor recorded it. Right: the stability "
        "ratio at each curvature check; above the dashed line (ρ = 1, the edge of stability) the "
        "learning rate is larger than the top curvature allows (Adam's checks of the first ten "
        "steps, whose statistics rest on a gradient or two, are left out).",
    )
