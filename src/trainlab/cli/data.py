"""``trainlab data``: fetch the competitions' files from Kaggle."""

from __future__ import annotations

import argparse

HELP = "download the Kaggle competition files (covid, phoneme)"
DESCRIPTION = (
    "Download a competition's files through the official kaggle package and unpack them. "
    "Credentials: ~/.kaggle/kaggle.json, or KAGGLE_USERNAME and KAGGLE_KEY, or KAGGLE_API_TOKEN; "
    "you must also have accepted the competition's rules on kaggle.com."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from trainlab.data.kaggle import COMPETITIONS

    sub = parser.add_subparsers(
        dest="data_command", metavar="ACTION", required=True, parser_class=type(parser)
    )
    p = sub.add_parser(
        "download",
        help="fetch covid (ml2021spring-hw1) or phoneme (ml2021spring-hw2)",
        description=DESCRIPTION,
    )
    p.add_argument("name", choices=list(COMPETITIONS), help="which competition")
    p.add_argument("--dest", required=True, metavar="DIR", help="folder to download into")
    p.add_argument("--force", action="store_true", help="download again even if the files exist")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(_run=run_download)


def run_download(args: argparse.Namespace) -> int:
    from trainlab.data.kaggle import COMPETITIONS, download
    from trainlab.runs import check_output_dir

    check_output_dir(args.dest, "--dest")
    files = download(args.name, args.dest, force=args.force, quiet=args.quiet)
    if not args.quiet:
        print(f"{COMPETITIONS[args.name].slug}: {len(files)} file(s) in {args.dest}")
        for f in files[:20]:
            print(f"  {f}")
    return 0
