"""``trainlab covid``: train, predict and evaluate the COVID-19 cases model (Kaggle ml2021spring-hw1).

Parses the arguments, builds a :class:`~trainlab.covid.CovidConfig` and calls
:mod:`trainlab.covid`; choices and defaults come from the presets and the config dataclass.
"""

from __future__ import annotations

import argparse
import sys

from trainlab.covid import (
    DEFAULT_PRESET,
    PRESETS,
    TEST_FILE,
    TRAIN_FILE,
    CovidConfig,
    evaluate_covid,
    load_covid_config,
    predict_covid_info,
    train_covid,
)

HELP = "COVID-19 cases prediction (ml2021spring-hw1): train, predict, evaluate"
DESCRIPTION = (
    "Predict tested_positive on the last day of a window from the survey features and the state's "
    "earlier days (rebuilt by chaining the overlapping windows). 'train' cross-validates the model "
    "and the references (training mean, persistence, ridge with and without history) with "
    "blocked, random and course-split folds, simulates the held-out later days, trains the "
    "ensemble and writes a Kaggle submission."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(
        dest="covid_command", metavar="ACTION", required=True, parser_class=type(parser)
    )
    _add_train_arguments(
        sub.add_parser(
            "train",
            help="cross-validate, train the ensemble, write a submission",
            description=DESCRIPTION,
        )
    )

    p = sub.add_parser(
        "predict",
        help="predict a file in the test layout with a trained model",
        description="Rows that continue the training days (or follow enough of the file's own "
        "rows) are predicted with history features; the others by the fallback networks.",
    )
    p.add_argument(
        "--model", required=True, metavar="OUT", help="a training run's folder (or its model/)"
    )
    p.add_argument("--input", required=True, metavar="FILE", help="CSV in the test layout")
    p.add_argument(
        "--output", required=True, metavar="FILE", help="where to write id,tested_positive"
    )
    p.set_defaults(_run=run_predict)

    p = sub.add_parser("evaluate", help="MSE of a trained model on a labelled file")
    p.add_argument(
        "--model", required=True, metavar="OUT", help="a training run's folder (or its model/)"
    )
    p.add_argument("--input", required=True, metavar="FILE", help="CSV in the training layout")
    p.set_defaults(_run=run_evaluate)


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data", required=True, metavar="DIR", help=f"folder with {TRAIN_FILE} and {TEST_FILE}"
    )
    p.add_argument("--out", required=True, metavar="OUT", help="output folder")
    p.add_argument(
        "--config", metavar="FILE", help="TOML or JSON settings (see configs/covid_*.toml)"
    )
    presets = "; ".join(f"'{name}' = {PRESETS.help(name)}" for name in PRESETS.names())
    p.add_argument(
        "--preset",
        choices=PRESETS.names(),
        default=None,
        help=f"base settings (default: the config file's, else '{DEFAULT_PRESET}'; {presets})",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help=f"base seed (default: from the config, {CovidConfig.seed})",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="override train.epochs of every network (the fallback networks' too)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines (the table is printed)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run of --out (same settings and data; finished fits are "
        "kept, the result is the uninterrupted run's)",
    )
    p.set_defaults(_run=run_train)


def run_train(args: argparse.Namespace) -> int:
    overrides = None
    if args.epochs is not None:
        epochs = {"train": {"epochs": args.epochs}}
        overrides = {**epochs, "fallback": epochs}
    cfg = load_covid_config(args.config, args.preset, args.seed, overrides=overrides)
    log = None if args.quiet else (lambda line: print(line, flush=True))
    run = train_covid(args.data, args.out, cfg, log=log, resume=args.resume)
    print(run.table)
    print(
        f"wrote {run.out_dir}/submission.csv ({len(run.test_predictions)} rows), metrics.json, "
        f"config.json, model/ ({len(run.ensemble.members)} members) in {run.seconds:.1f} s"
    )
    return 0


def run_predict(args: argparse.Namespace) -> int:
    pred, info = predict_covid_info(args.model, args.input, args.output)
    print(
        f"wrote {args.output} ({len(pred)} rows: {info['history_rows']} with history, "
        f"{len(pred) - info['history_rows']} by the fallback networks; "
        f"{info['attached_chains']} of {info['chains']} chains of rows continue the training days)",
        file=sys.stderr,
    )
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    scores = evaluate_covid(args.model, args.input)
    print(
        f"{args.input}: {int(scores['rows'])} rows ({int(scores['history_rows'])} with history)  "
        f"model MSE {scores['model_mse']:.4f}  persistence MSE {scores['persistence_mse']:.4f}"
    )
    return 0
