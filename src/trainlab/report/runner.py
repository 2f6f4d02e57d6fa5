"""Run the report: load the data once, run each section with a fixed seed, write the outputs.

Outputs (in ``ReportConfig.out``): ``index.html`` (offline, figures beside it), ``results.json``
(every number shown), ``config.json`` (the report's and every section's resolved settings) and the
figures as PNG. The run is written into a staging folder beside ``out`` (``.NAME.partial``; the
page and ``results.json`` there are rewritten after every section, so a long run can be watched in
a browser) and replaces ``out`` only when complete, so ``out`` never mixes two reports. A section
that fails is shown as failed (traceback in
``<n>-<key>-error.txt``) and the others still run.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainlab import __version__
from trainlab._io import atomic_write_json, atomic_write_text
from trainlab._threads import torch_threads
from trainlab.config import from_dict, to_dict
from trainlab.errors import ConfigError
from trainlab.report.config import ReportConfig, rerun_command
from trainlab.report.context import SectionContext, readable
from trainlab.report.data import ImageData, load_report_data
from trainlab.report.html import render_html
from trainlab.report.result import Measurement, Rendered, SectionResult, SectionUnavailable
from trainlab.report.sections import SECTIONS, load_section
from trainlab.runs import begin_run, check_output_dir, publish_run
from trainlab.seed import seed_everything

__all__ = ["ReportOutcome", "resolve_section_configs", "run_report"]


@dataclass
class ReportOutcome:
    """What :func:`run_report` wrote and found."""

    out_dir: Path
    results: list[SectionResult] = field(default_factory=list)
    total_time_s: float = 0.0

    @property
    def index(self) -> Path:
        return self.out_dir / "index.html"

    @property
    def failed(self) -> list[SectionResult]:
        return [r for r in self.results if r.status == "failed"]


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def resolve_section_configs(
    config: ReportConfig, overrides: dict[str, dict[str, Any]] | None = None, source: str = "config"
) -> dict[int, Any]:
    """Each selected section's settings: its quick or full defaults updated from ``overrides``.

    Raises:
        ConfigError: an unknown section key or setting in ``overrides``.
    """
    overrides = dict(overrides or {})
    keys = {key: n for n, (key, _) in SECTIONS.items()}
    unknown = sorted(set(overrides) - set(keys))
    if unknown:
        raise ConfigError(
            f"{source}: unknown section(s) {', '.join(unknown)}; known: {', '.join(keys)}"
        )
    out = {}
    for n in config.sections:
        key = SECTIONS[n][0]
        mod = load_section(n)
        cfg = mod.default_config(config.quick)
        if key in overrides:
            cfg = from_dict(
                mod.Config, {**to_dict(cfg), **overrides[key]}, source=f"{source}: sections.{key}"
            )
        out[n] = cfg
    return out


def run_report(
    config: ReportConfig,
    section_overrides: dict[str, dict[str, Any]] | None = None,
    log: Callable[[str], None] | None = None,
    command: str | None = None,
) -> ReportOutcome:
    """Run the selected sections and write the report.

    Args:
        config: what to run and where to write it.
        section_overrides: section key -> settings replacing that section's defaults.
        log: receives progress lines (default: stderr, silent when ``config.quiet``).
        command: the command line shown in the report's header.

    Returns:
        The outcome: folder, per-section results, total time.

    Raises:
        TrainlabError: the data cannot be loaded or a setting is invalid (nothing is run).
    """
    with torch_threads(config.threads):
        return _run_report(config, section_overrides, log, command)


def _run_report(
    config: ReportConfig,
    section_overrides: dict[str, dict[str, Any]] | None,
    log: Callable[[str], None] | None,
    command: str | None,
) -> ReportOutcome:
    if log is None:
        log = (
            (lambda _msg: None)
            if config.quiet
            else (lambda msg: print(msg, file=sys.stderr, flush=True))
        )
    t_start = time.perf_counter()
    out_dir = check_output_dir(config.out)
    section_cfgs = resolve_section_configs(config, section_overrides)
    data = load_report_data(config.data)
    settings = {
        "report": to_dict(config),
        "sections": {SECTIONS[n][0]: to_dict(c) for n, c in section_cfgs.items()},
    }
    stage = begin_run(out_dir, settings, log=log)  # published into out_dir once complete
    config_file = str(out_dir / "config.json")
    meta = _meta(config, data, command)
    results = [
        SectionResult(number=n, key=SECTIONS[n][0], title=SECTIONS[n][1], status="pending")
        for n in config.sections
    ]
    outcome = ReportOutcome(out_dir=out_dir, results=results)
    s = data.summary()
    log(
        f"trainlab report: {s['name']} ({s['n_train']:,} train / {s['n_val']:,} val), "
        f"{'quick' if config.quick else 'full'}, seed {config.seed}, {meta['device']} -> {out_dir}"
    )
    for i, n in enumerate(config.sections):
        key, title = SECTIONS[n]
        log(f"[{i + 1}/{len(config.sections)}] {n}. {title}")
        results[i] = _run_one(config, n, section_cfgs[n], data, stage, log, config_file)
        r = results[i]
        what = r.verdict.text if (r.status == "ok" and r.verdict) else f"{r.status}: {r.error}"
        log(f"    done in {r.time_s:.1f} s - {what}")
        meta["total_time_s"] = time.perf_counter() - t_start
        _write(stage, results, meta)
    outcome.total_time_s = time.perf_counter() - t_start
    meta["total_time_s"] = outcome.total_time_s
    _write(stage, results, meta)
    publish_run(stage, out_dir)
    log(f"wrote {out_dir / 'index.html'} ({len(results)} sections, {outcome.total_time_s:.1f} s)")
    return outcome


def _meta(config: ReportConfig, data: ImageData, command: str | None) -> dict[str, Any]:
    """The facts shown in the report's header and stored at the top of ``results.json``."""
    import torch

    from trainlab.device import resolve_device

    device = resolve_device(config.device)
    return {
        "data": data.summary(),
        "seed": config.seed,
        "quick": config.quick,
        "device": str(device)
        if device.type != "cpu"
        else f"cpu ({torch.get_num_threads()} threads)",
        "cpu": _cpu_name(),
        "torch": torch.__version__,
        "trainlab": __version__,
        "python": platform.python_version(),
        "created": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "command": command or rerun_command(config),
        "total_time_s": 0.0,
    }


def _run_one(
    config: ReportConfig,
    number: int,
    cfg: Any,
    data: ImageData,
    out_dir: Path,
    log: Callable[[str], None],
    config_file: str,
) -> SectionResult:
    key, title = SECTIONS[number]
    mod = load_section(number)
    ctx = SectionContext(
        config=config, out_dir=out_dir, number=number, key=key, data=data, log_fn=log
    )
    result = SectionResult(number=number, key=key, title=title, claim=mod.CLAIM)
    seed_everything(config.seed)
    t0 = time.perf_counter()
    try:
        measured: Measurement = mod.measure(ctx, cfg)
        rendered: Rendered = mod.render(ctx, cfg, measured)
    except SectionUnavailable as e:
        result.status, result.error = "unavailable", str(e)
    except Exception as e:  # noqa: BLE001 - one failed section must not stop the rest
        err_file = out_dir / f"{number}-{key.replace('_', '-')}-error.txt"
        atomic_write_text(err_file, traceback.format_exc())
        readable(err_file)
        result.status = "failed"
        result.error = f"{type(e).__name__}: {e} (traceback in {err_file.name})"
    else:
        result.experiment, result.verdict = rendered.experiment, rendered.verdict
        result.tables, result.figures = rendered.tables, rendered.figures
        result.notes, result.numbers = rendered.notes, measured.numbers()
    result.time_s = time.perf_counter() - t0
    result.config = to_dict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)
    result.rerun = rerun_command(config, number, config_file)
    return result


def _write(out_dir: Path, results: list[SectionResult], meta: dict[str, Any]) -> None:
    atomic_write_json(
        out_dir / "results.json", {**meta, "sections": [r.to_json() for r in results]}
    )
    atomic_write_text(out_dir / "index.html", render_html(results, meta))
