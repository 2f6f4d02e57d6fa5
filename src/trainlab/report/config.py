"""Settings of a report run, and how they are saved so that any section can be rerun exactly.

``config.json`` beside the report holds the :class:`ReportConfig` under ``"report"`` and every
section's resolved settings under ``"sections"``; ``trainlab report --config config.json`` reads the
same layout back (TOML works too), so a saved report reruns with the same numbers.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainlab.config import from_dict, read_mapping
from trainlab.errors import ConfigError

__all__ = ["ALL_SECTIONS", "ReportConfig", "read_report_file", "rerun_command"]

ALL_SECTIONS = [1, 2, 3, 4, 5, 6, 7, 8]


@dataclass
class ReportConfig:
    """What ``trainlab report`` runs.

    Attributes:
        data: ``"digits"`` (scikit-learn's bundled 8x8 digits) or ``"mnist:DIR"``.
        out: the report folder (``index.html``, ``results.json``, ``config.json``, PNGs).
        quick: smaller experiments (seconds per section) instead of the full ones (minutes).
        sections: section numbers to run (1-8).
        seed: every section seeds everything with this before it starts.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"`` for the training runs.
        threads: CPU threads for PyTorch while the report runs (``0``: PyTorch's default). One
            thread is the default: the report's models are small, and on a busy machine several
            threads spin-wait for each other and run up to ten times slower.
        quiet: no progress on stderr.
    """

    data: str = "digits"
    out: str = "runs/report"
    quick: bool = False
    sections: list[int] = field(default_factory=lambda: list(ALL_SECTIONS))
    seed: int = 0
    device: str = "auto"
    threads: int = 1
    quiet: bool = False

    def __post_init__(self) -> None:
        bad = [s for s in self.sections if s not in ALL_SECTIONS]
        if bad or not self.sections:
            raise ConfigError(
                f"sections must be numbers among {', '.join(map(str, ALL_SECTIONS))}, got {self.sections}"
            )
        self.sections = sorted(set(self.sections))
        if self.threads < 0:
            raise ConfigError(f"threads must be 0 (PyTorch's default) or more, got {self.threads}")


def read_report_file(path: str | Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Read a report config file: ``({report settings}, {section key: {settings}})``.

    The file has an optional ``report`` table (fields of :class:`ReportConfig`) and an optional
    ``sections`` table with one table per section key (``overfitting``, ``batch_size``, ...).
    """
    data = read_mapping(path)
    unknown = sorted(set(data) - {"report", "sections"})
    if unknown:
        raise ConfigError(
            f"{path}: unknown table(s) {', '.join(unknown)}; expected 'report' and 'sections'"
        )
    report = data.get("report", {})
    sections = data.get("sections", {})
    if not isinstance(report, dict) or not isinstance(sections, dict):
        raise ConfigError(f"{path}: 'report' and 'sections' must be tables")
    from_dict(ReportConfig, report, source=f"{path}: report")  # validate early
    return report, sections


def rerun_command(
    config: ReportConfig, number: int | None = None, config_file: str | None = None
) -> str:
    """The command line that reruns the report (or only section ``number``) with these settings.

    A single section is sent to its own folder (``<out>-section<n>``) so that the rerun does not
    overwrite the report it came from.
    """
    sections = [number] if number is not None else config.sections
    args = ["trainlab", "report", "--data", config.data, "--seed", str(config.seed)]
    if sections != ALL_SECTIONS:
        args[2:2] = ["--sections", ",".join(map(str, sections))]
    if config.quick:
        args.append("--quick")
    if config.device != "auto":
        args += ["--device", config.device]
    if config.threads != 1:
        args += ["--threads", str(config.threads)]
    if config_file:
        args += ["--config", config_file]
    out = config.out.rstrip("/") or "."
    args += ["--out", f"{out}-section{number}" if number is not None else out]
    return shlex.join(args)
