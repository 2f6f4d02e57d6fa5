"""``trainlab doctor``: which of the chapter's causes holds for a training run, and what to try."""

from __future__ import annotations

import argparse

HELP = "diagnose a training run from its records: the cause and the remedy"
DESCRIPTION = (
    "trainlab doctor RUN_DIR reads the records a monitored run left in RUN_DIR/doctor.jsonl "
    "(or, where RUN_DIR holds several runs in subfolders, as covid train's one per tier under "
    "OUT/doctor, each of them) "
    "(trainlab's own runs write them; elsewhere trainlab.doctor.Monitor or the Lightning "
    "callback), whether the run finished, is still running or was killed, and writes "
    "RUN_DIR/doctor.json and RUN_DIR/doctor.html: the findings (cause, severity, evidence, "
    "remedy), most important first, and prints a summary. "
    "trainlab doctor --model OUT is the Hessian diagnosis of a saved model, exactly as "
    "`trainlab diagnose --model OUT` (which stays: diagnose looks at one trained point, doctor at "
    "a whole run); the options below the first group apply to it."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from trainlab.cli import diagnose

    parser.add_argument("run_dir", nargs="?", metavar="RUN_DIR",
                        help="a run folder holding doctor.jsonl")  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    group = parser.add_argument_group(
        "with --model OUT: the Hessian diagnosis of a saved model (as trainlab diagnose); "
        "--out and --no-plot also apply to RUN_DIR"
    )
    diagnose.add_arguments(group)  # type: ignore[arg-type]
    for action in group._group_actions:
        if action.dest == "model":
            action.required = False
            action.help = "a saved model folder (instead of RUN_DIR): as trainlab diagnose"


def run(args: argparse.Namespace) -> int:
    from trainlab.errors import TrainlabError

    if args.model is not None:
        if args.run_dir is not None:
            raise TrainlabError("give RUN_DIR (a run's records) or --model OUT (a saved model)")
        from trainlab.cli import diagnose

        return diagnose.run(args)
    if args.run_dir is None:
        raise TrainlabError("give RUN_DIR (a run folder with doctor.jsonl) or --model OUT")
    from pathlib import Path

    from trainlab.doctor.records import find_all_records
    from trainlab.doctor.report import examine
    from trainlab.runs import check_output_dir

    found = find_all_records(args.run_dir)
    out = None if args.out is None else check_output_dir(args.out)
    reports = [examine(path) for path in found]  # every run read before anything is written
    for i, report in enumerate(reports):
        target = None
        if out is not None:
            rel = report.run_dir.relative_to(Path(args.run_dir)) if len(found) > 1 else Path()
            target = out / rel
            target.mkdir(parents=True, exist_ok=True)
        written = report.write(target, plots=not args.no_plot)
        if not args.quiet:
            print(("\n" if i else "") + report.summary())
            print(f"wrote {', '.join(str(p) for p in written)}")
    return 0
