"""``trainlab phoneme``: framewise phoneme classification (Kaggle ml2021spring-hw2), audio to submission.

Subcommands: ``featurize`` (wav + alignments -> ``train_11.npy`` & co.), ``train`` (a preset model,
validation by utterance, smoothing, submission), ``predict`` (a saved model on a feature file),
``evaluate`` (a saved model's accuracy on a labelled data folder) and ``presets``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

HELP = "framewise phoneme classification: featurize audio, train, smooth, predict (hw2)"
DESCRIPTION = (
    "Framewise phoneme classification (Kaggle ml2021spring-hw2): turn audio and phone alignments "
    "into the competition's 11-frame MFCC rows, train the course's MLP, a strong MLP or a "
    "bidirectional RNN with an utterance-level validation split, smooth predictions along each "
    "utterance (median filter or Viterbi), and write Id,Class submissions."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``featurize``, ``train``, ``predict``, ``evaluate`` and ``presets`` actions."""
    sub = parser.add_subparsers(
        dest="phoneme_command", metavar="COMMAND", required=True, parser_class=type(parser)
    )
    _add_featurize(sub)
    _add_train(sub)
    _add_predict(sub)
    p = sub.add_parser("evaluate", help="accuracy of a saved model on a labelled data folder")
    p.add_argument("--model", required=True, help="a training run's folder (or its model/)")
    p.add_argument("--data", required=True, help="folder with train_11.npy and train_label_11.npy")
    p.set_defaults(_run=_evaluate)
    p = sub.add_parser("presets", help="list the model presets and their settings")
    p.set_defaults(_run=_presets)


def _add_featurize(sub: Any) -> None:
    from trainlab.phoneme.featurize import FeaturizeConfig

    d = FeaturizeConfig()
    p = sub.add_parser("featurize", help="wav files + .PHN/.TextGrid alignments -> *_11.npy rows")
    p.add_argument("--audio", required=True, help="folder searched recursively for .wav files")
    p.add_argument(
        "--align", help="folder searched recursively for .PHN / .TextGrid (by file stem)"
    )
    p.add_argument(
        "--out", required=True, help="folder for train_11.npy (or test_11.npy) and index"
    )
    p.add_argument(
        "--test", action="store_true", help="write unlabelled test_11.npy (no alignments needed)"
    )
    p.add_argument(
        "--tier", default=d.tier, help=f"TextGrid tier with the phones (default {d.tier})"
    )
    p.add_argument(
        "--workers", type=int, default=d.workers, help=f"processes (default {d.workers})"
    )
    p.set_defaults(_run=_featurize)


def _add_train(sub: Any) -> None:
    from trainlab.phoneme.config import DEFAULT_PRESET, PRESETS, PhonemeConfig, smoothing_choices

    d = PhonemeConfig()
    p = sub.add_parser(
        "train", help="train a model, validate by utterance, write model and submission"
    )
    p.add_argument(
        "--data", required=True, help="folder with train_11.npy, train_label_11.npy (test_11.npy)"
    )
    p.add_argument(
        "--out", required=True, help="folder for metrics, config, model/, submission.csv"
    )
    p.add_argument(
        "--model",
        choices=PRESETS.names(),
        help=f"preset (default: config's, else {DEFAULT_PRESET})",
    )
    p.add_argument(
        "--config", help="TOML or JSON file of settings (see 'trainlab phoneme presets')"
    )
    p.add_argument("--epochs", type=int, help="override the preset's epochs")
    p.add_argument(
        "--members",
        type=int,
        help="networks trained with seeds seed, seed+1, ... (in parallel on a multi-core CPU) and averaged (an ensemble; default: the preset's)",
    )
    p.add_argument("--seed", type=int, help=f"random seed (default {d.seed})")
    p.add_argument("--device", help="auto, cpu, cuda or mps")
    p.add_argument(
        "--smoothing",
        choices=smoothing_choices(),
        help=f"post-processing (default {d.smoothing})",
    )
    p.add_argument("--quiet", action="store_true", help="no per-epoch output")
    _add_columns(p)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run of --out from its last checkpoint (same settings and "
        "data; the result is the uninterrupted run's)",
    )
    p.set_defaults(_run=_train)


def _add_predict(sub: Any) -> None:
    from trainlab.phoneme.smoothing import SMOOTHERS

    p = sub.add_parser("predict", help="classify the rows of a feature file with a saved model")
    p.add_argument("--model", required=True, help="a training run's folder (or its model/)")
    p.add_argument("--input", required=True, help="an (N, 429) float32 .npy, e.g. test_11.npy")
    p.add_argument("--output", required=True, help="the Id,Class CSV to write")
    p.add_argument(
        "--smoothing", choices=SMOOTHERS.names(), help="default: the one chosen in training"
    )
    p.add_argument("--device", help="auto, cpu, cuda or mps (default: auto, the best available)")
    _add_columns(p)
    p.set_defaults(_run=_predict)


def _add_columns(p: argparse.ArgumentParser) -> None:
    """``--format`` and ``--id-column/--class-column``: the submission's header."""
    from trainlab.phoneme.infer import SUBMISSION_FORMATS

    p.add_argument(
        "--format",
        choices=sorted(SUBMISSION_FORMATS),
        default="kaggle",
        help="submission header: kaggle (Id,Class, the default) or mlebench (Id,ClassId)",
    )
    p.add_argument("--id-column", help="name of the id column (overrides --format)")
    p.add_argument("--class-column", help="name of the class column (overrides --format)")


def _columns(args: argparse.Namespace) -> tuple[str, str]:
    from trainlab.phoneme.infer import SUBMISSION_FORMATS

    ident, cls = SUBMISSION_FORMATS[args.format]
    return (args.id_column or ident, args.class_column or cls)


def _featurize(args: argparse.Namespace) -> int:
    from trainlab.phoneme.featurize import FeaturizeConfig, featurize

    report = featurize(
        args.audio,
        args.out,
        args.align,
        test=args.test,
        config=FeaturizeConfig(tier=args.tier, workers=args.workers),
    )
    for what, ids in (
        ("wav file(s) without an alignment, skipped", report.missing_alignment),
        ("alignment(s) without a wav file, skipped", report.missing_audio),
        ("utterance(s) with no labelled frame, skipped", report.empty),
        ("alignment(s) ending over 0.1 s before the audio", report.short_alignment),
    ):
        if ids:
            shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
            print(f"warning: {len(ids)} {what}: {shown}")
    if report.dropped_frames:
        print(f"note: {report.dropped_frames} frame(s) without a class (q, gaps) left out")
    print(
        f"{report.utterances} utterances, {report.frames} frames -> "
        f"{', '.join(str(p) for p in report.outputs)} ({report.seconds:.1f} s)"
    )
    return 0


def _train(args: argparse.Namespace) -> int:
    from trainlab.phoneme import resolve_config, train_phoneme
    from trainlab.phoneme.config import train_config
    from trainlab.phoneme.models import build_model

    with _settings_source(args.config):
        cfg = resolve_config(
            args.model,
            args.config,
            epochs=args.epochs,
            members=args.members,
            seed=args.seed,
            device=args.device,
            smoothing=args.smoothing,
        )
        train_config(cfg, args.out)  # the Trainer's settings and the network's, before any work
        build_model(cfg)
    m = train_phoneme(
        args.data, args.out, cfg, quiet=args.quiet, resume=args.resume, columns=_columns(args)
    )
    if not m:  # a rank other than 0 under torchrun: rank 0 reports
        return 0
    if m.get("layout") == "shuffled":
        print(
            f"shuffled rows: {m['single_row_utterances']} row(s) chain with no other and are "
            "classified framewise"
        )
    if "val_accuracy" in m:
        s = m["smoothing"]
        print(
            f"{cfg.model}: validation accuracy (used for the choices) {m['val_accuracy']:.4f} "
            f"raw, {m['val_accuracy_median']:.4f} median, {m['val_accuracy_viterbi']:.4f} "
            f"Viterbi; using {s['method']} ({s['val_accuracy']:.4f}) "
            f"[{m['val_frames']} frames, {m['val_utterances']} utterances"
            + (", each fold by the member that did not train on it]"
               if m.get("validation") == "out of fold" else "]")
        )  # fmt: skip
    if "untouched_accuracy" in m:
        print(
            f"untouched hold-out accuracy (no choice saw it) {m['untouched_accuracy']:.4f} "
            f"with {m['smoothing']['method']}, {m['untouched_accuracy_raw']:.4f} raw "
            f"[{m['untouched_frames']} frames, {m['untouched_utterances']} utterances]"
        )
    if "test_frames" in m:
        print(f"submission: {args.out}/submission.csv ({m['test_frames']} rows)")
    print(f"model: {args.out}/model  metrics: {args.out}/metrics.json  ({m['seconds']:.0f} s)")
    return 0


@contextmanager
def _settings_source(config: str | None) -> Iterator[None]:
    """Name the settings file in a refused setting's message when the message does not."""
    from trainlab.errors import ConfigError

    try:
        yield
    except ConfigError as e:
        if config is None or str(config) in str(e):
            raise
        raise ConfigError(f"{config}: {e}") from None


def _predict(args: argparse.Namespace) -> int:
    from trainlab.phoneme import predict_phoneme

    device = {} if args.device is None else {"device": args.device}
    pred = predict_phoneme(
        args.model,
        args.input,
        args.output,
        smoothing=args.smoothing,
        columns=_columns(args),
        **device,
    )
    print(f"{len(pred)} predictions -> {args.output}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from trainlab.phoneme import evaluate_phoneme

    r = evaluate_phoneme(args.model, args.data)
    print(
        f"{int(r['frames'])} frames: accuracy {r['accuracy']:.4f} raw, {r['accuracy_median']:.4f} "
        f"median, {r['accuracy_majority']:.4f} majority, {r['accuracy_viterbi']:.4f} Viterbi"
    )
    return 0


def _presets(args: argparse.Namespace) -> int:
    from trainlab.config import to_dict
    from trainlab.phoneme import PRESETS, preset

    for name in PRESETS.names():
        print(f"{name}: {PRESETS.help(name)}")
        cfg = preset(name)
        d = to_dict(cfg)
        keys: tuple[str, ...] = (
            ("hidden", "activation", "batch_norm", "dropout")
            if not cfg.sequence
            else (
                "rnn_cell",
                "rnn_layers",
                "rnn_hidden",
                "rnn_stride",
                "rnn_frames",
                "conv_layers",
                "chunk_frames",
                "dropout",
                "utterances_per_batch",
            )
        )
        keys += ("members", "epochs", "batch_size", "optimizer", "lr", "weight_decay", "scheduler")
        print("    " + ", ".join(f"{k}={d[k]}" for k in keys))
    return 0
