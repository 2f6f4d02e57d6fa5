"""``trainlab report``: the lecture chapter's claims, measured on real data, as one HTML page.

:func:`run_report` runs the sections (:mod:`trainlab.report.sections`) with a fixed seed and writes
``index.html``, ``results.json``, ``config.json`` and the figures.
"""

from trainlab.report.config import ALL_SECTIONS, ReportConfig, read_report_file, rerun_command
from trainlab.report.data import ImageData, load_report_data
from trainlab.report.result import Figure, SectionResult, SectionUnavailable, Table, Verdict
from trainlab.report.runner import ReportOutcome, resolve_section_configs, run_report
from trainlab.report.sections import SECTIONS

__all__ = [
    "ALL_SECTIONS",
    "SECTIONS",
    "Figure",
    "ImageData",
    "ReportConfig",
    "ReportOutcome",
    "SectionResult",
    "SectionUnavailable",
    "Table",
    "Verdict",
    "load_report_data",
    "read_report_file",
    "rerun_command",
    "resolve_section_configs",
    "run_report",
]
