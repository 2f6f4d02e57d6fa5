"""``trainlab report``: the chapter's experiments, measured on real digits, as one HTML page."""

from __future__ import annotations

import argparse

HELP = "measure the chapter's claims on real handwritten digits and write an HTML report"

DESCRIPTION = """\
Run the chapter's experiments on real data on this machine and write DIR/index.html (opens
offline), DIR/results.json (every number shown), DIR/config.json (every setting) and the figures
as PNG. Sections: 1 overfitting, 2 initialisation, 3 critical points, 4 batch size, 5 momentum,
6 adaptive learning rates, 7 batch normalisation, 8 the doctor. The full report takes a few minutes on a laptop
CPU; --quick runs smaller experiments in about a minute."""


def _sections(text: str) -> list[int]:
    try:
        numbers = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected section numbers like 1,4,7, got {text!r}"
        ) from None
    from trainlab.report.config import ALL_SECTIONS

    if not numbers or any(n not in ALL_SECTIONS for n in numbers):
        raise argparse.ArgumentTypeError(
            f"section numbers are 1 to {max(ALL_SECTIONS)}, got {text!r}"
        )
    return numbers


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        default=None,
        metavar="digits|mnist:DIR",
        help="'digits' (built in, default) or an MNIST/Fashion-MNIST IDX folder",
    )
    parser.add_argument(
        "--out", default=None, metavar="DIR", help="report folder (default runs/report)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        default=None,
        help="small experiments (about a minute in all)",
    )
    parser.add_argument(
        "--sections",
        type=_sections,
        default=None,
        metavar="1,4,...",
        help="run only these sections (default: all)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda or mps (default auto)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for PyTorch (default 1: fastest for these small models "
        "on a busy machine; 0 = PyTorch's default)",
    )
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="settings file (JSON/TOML) with 'report' and 'sections' tables, "
        "e.g. a previous report's config.json",
    )
    parser.add_argument("--quiet", action="store_true", default=None, help="no progress output")


def run(args: argparse.Namespace) -> int:
    import sys

    from trainlab.config import from_dict
    from trainlab.report import ReportConfig, read_report_file, run_report

    report, sections = read_report_file(args.config) if args.config else ({}, {})
    cli = {
        "data": args.data,
        "out": args.out,
        "quick": args.quick,
        "sections": args.sections,
        "seed": args.seed,
        "device": args.device,
        "threads": args.threads,
        "quiet": args.quiet,
    }
    settings = {**report, **{k: v for k, v in cli.items() if v is not None}}
    config = from_dict(ReportConfig, settings, source=args.config or "command line")
    outcome = run_report(config, sections)
    print(f"report: {outcome.index} ({outcome.total_time_s:.0f} s)")
    if outcome.failed:
        names = ", ".join(f"{r.number} ({r.error})" for r in outcome.failed)
        print(f"trainlab: error: section(s) failed: {names}", file=sys.stderr)
        return 1
    return 0
