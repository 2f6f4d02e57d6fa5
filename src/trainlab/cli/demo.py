"""``trainlab demo``: a one-minute training run on scikit-learn's bundled handwritten digits."""

from __future__ import annotations

import argparse

HELP = "train a small network on the bundled digits data and print its accuracy (a smoke test)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int, default=20, help="passes over the data (default 20)")
    parser.add_argument("--out", default=None, help="folder for history, curves and checkpoints")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def run(args: argparse.Namespace) -> int:
    from trainlab.demo import run_demo

    result = run_demo(
        epochs=args.epochs, out_dir=args.out, seed=args.seed, device=args.device, quiet=args.quiet
    )
    print(
        f"validation accuracy {result['val_acc']:.4f} after {result['epochs']} epochs "
        f"({result['seconds']:.1f} s)"
    )
    return 0
