"""``trainlab diagnose``: is a trained model stuck at a saddle point or at a local minimum?"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Hessian diagnosis of a saved model: saddle point or local minimum?"
DESCRIPTION = (
    "Load a model saved by `trainlab covid train` or `trainlab phoneme train`, take one batch of "
    "its data, and look at the Hessian of the loss there: gradient norm, extreme eigenvalues "
    "(exact spectrum up to --exact-max parameters, Lanczos above), minimum ratio (share of "
    "positive eigenvalues) and a verdict. --escape steps along the most negative curvature and "
    "compares the loss change with the second-order prediction. Writes diagnosis.json, "
    "diagnose_config.json and spectrum.png. Under `torchrun --nproc_per_node=N -m trainlab "
    "diagnose ...` each rank computes the products on its share of the batch and rank 0 reports "
    "the same result as one process."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from trainlab.diagnose._modes import MODES
    from trainlab.diagnose.diagnosis import DTYPES, DiagnoseConfig

    d = DiagnoseConfig()
    parser.add_argument("--model", required=True, metavar="OUT", help="training output folder")
    parser.add_argument(
        "--data", default=None, metavar="PATH", help="data (default: the training data)"
    )
    parser.add_argument(
        "--batch", type=int, default=1024, metavar="N", help="batch size (default 1024)"
    )
    parser.add_argument(
        "--k",
        type=int,
        default=d.k,
        metavar="K",
        help=f"extreme eigenvalues per end (default {d.k})",
    )
    parser.add_argument(
        "--escape", action="store_true", help="step along the most negative curvature"
    )
    parser.add_argument("--mode", choices=list(MODES), default=d.mode,
                        help="evaluation mode (default) or training mode (batch-stat BN, seeded dropout)")  # fmt: skip
    parser.add_argument("--params", default=d.params, metavar="PREFIX",
                        help="analyse only parameters with this name prefix (comma-separate several)")  # fmt: skip
    parser.add_argument("--out", default=None, metavar="DIR", help="where to write (default: OUT)")
    parser.add_argument("--dtype", choices=list(DTYPES), default=d.dtype,
                        help=f"precision of the Hessian-vector products (default {d.dtype})")  # fmt: skip
    parser.add_argument("--exact-max", type=int, default=d.exact_max_params, metavar="N",
                        help=f"exact spectrum up to N parameters (default {d.exact_max_params}; "
                             "about a minute at 5000 on a 2-core CPU)")  # fmt: skip
    parser.add_argument("--grad-tol", type=float, default=d.grad_tol,
                        help=f"critical if ‖∇L‖ ≤ this (default {d.grad_tol:g})")  # fmt: skip
    parser.add_argument("--eig-rtol", type=float, default=d.eig_rtol,
                        help=f"|λ| ≤ eig-rtol · max|λ| counts as flat (default {d.eig_rtol:g})")  # fmt: skip
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay,
                        help="analyse loss + ½·wd·‖θ‖² (default 0)")  # fmt: skip
    parser.add_argument(
        "--seed", type=int, default=d.seed, help="batch and random-vector seed (default 0)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, metavar="N",
        help="CPU threads for torch (default: torch's choice; 1 is often faster on a busy machine)",
    )  # fmt: skip
    parser.add_argument("--no-plot", action="store_true", help="do not write spectrum.png")


def run(args: argparse.Namespace) -> int:
    from trainlab._threads import torch_threads
    from trainlab.errors import TrainlabError

    if args.k < 1:
        raise TrainlabError(f"--k must be at least 1, got {args.k}")
    if args.threads is not None and args.threads < 1:
        raise TrainlabError(f"--threads must be at least 1, got {args.threads}")
    from trainlab.distributed import training_session

    # Under torchrun each rank analyses its shard of the batch; rank 0 reports.
    with torch_threads(args.threads), training_session("cpu"):
        return _diagnose(args)


def _diagnose(args: argparse.Namespace) -> int:
    from trainlab._io import atomic_write_json
    from trainlab.config import save_config
    from trainlab.diagnose.diagnosis import DiagnoseConfig, diagnose
    from trainlab.distributed import is_main_process
    from trainlab.tasks import load_target

    target, meta = load_target(args.model, args.data, args.batch, args.seed)
    config = DiagnoseConfig(
        k=args.k, mode=args.mode, params=args.params, dtype=args.dtype,
        weight_decay=args.weight_decay, exact_max_params=args.exact_max, grad_tol=args.grad_tol,
        eig_rtol=args.eig_rtol, escape=args.escape, seed=args.seed,
    )  # fmt: skip
    result = diagnose(target, config)
    if not is_main_process():
        return 0
    print(result)
    out = Path(args.out) if args.out is not None else Path(args.model)
    record = result.to_dict()
    record["task"] = meta["task"]
    record["source"] = {"model": str(args.model), "data": args.data, "batch": args.batch}
    atomic_write_json(out / "diagnosis.json", record)
    save_config(config, out / "diagnose_config.json")
    written = ["diagnosis.json", "diagnose_config.json"]
    if not args.no_plot:
        result.plot(out / "spectrum.png")
        written.append("spectrum.png")
    print(f"wrote {', '.join(str(out / w) for w in written)}")
    return 0
