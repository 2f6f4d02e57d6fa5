"""Top-k Hessian eigenvalues of a 1M-parameter network: Lanczos against power iteration.

The model is the phoneme task's ``sample`` MLP (429-1024-512-128-39, sigmoid, 1,035,815
parameters), built here with a fixed seed and lightly trained (``--train-steps`` Adam steps on the
analysis batch of random frames and labels, so the point is not the initialisation). Its loss on one
``--batch``-frame batch is analysed in float32, the solvers work in float64.

Three ways to the top-5 eigenvalues, each counted in Hessian-vector products (HVPs) and timed:

* ``lanczos``: :func:`trainlab.diagnose.extreme_eigenpairs` (ARPACK's implicitly restarted
  Lanczos through ``scipy.sparse.linalg.eigsh``), relative residual ``≤ tol``;
* ``power (residual)``: :func:`trainlab.diagnose.power_iteration_topk`, PyHessian's power
  iteration with deflation, stopped by the same residual test at the same ``tol``;
* ``power (PyHessian rule)``: the same iteration stopped as PyHessian does, when the eigenvalue
  changes by less than ``tol`` (relative) - fewer products, but less accurate when gaps are small.

A tight Lanczos run (``tol = 1e-6``) is the reference for the error column. Times are medians of
``--repeats`` runs in this process; the HVP counts do not vary between runs.

Run: ``.venv/bin/python benchmarks/bench_hessian.py [--quick] [--tol 1e-3] [--threads 1]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from trainlab.diagnose import Eigenpairs, ModelObjective, extreme_eigenpairs, power_iteration_topk
from trainlab.phoneme import build_model, preset

WIDTHS = (429, 1024, 512, 128, 39)


def sample_mlp() -> nn.Module:
    """The phoneme ``sample`` model: 429-1024-512-128-39 with sigmoid activations."""
    return build_model(preset("sample"))


def build(batch: int, train_steps: int, seed: int) -> tuple[ModelObjective, float]:
    torch.manual_seed(seed)
    net = sample_mlp()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, WIDTHS[0], generator=g)  # (B, 429): 11 frames x 39 features
    y = torch.randint(0, WIDTHS[-1], (batch,), generator=g)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss = torch.tensor(float("nan"))
    for _ in range(train_steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
    return ModelObjective(net, nn.functional.cross_entropy, x, y), float(loss.detach())


def timed(
    obj: ModelObjective, fn: Callable[[], Eigenpairs], repeats: int
) -> tuple[Eigenpairs, float]:
    """Run ``fn`` ``repeats`` times from a fresh graph; the result and the median seconds."""
    times, result = [], None
    for _ in range(repeats):
        obj.release()  # every run pays for building the gradient graph
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    assert result is not None
    return result, statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--tol", type=float, default=1e-3, help="relative tolerance for every method")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--train-steps", type=int, default=100)
    ap.add_argument(
        "--maxiter", type=int, default=3000, help="power iteration: most HVPs per eigenvalue"
    )
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on a shared 2-core machine more is slower)")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="256 frames, 20 training steps, k = 3")
    ap.add_argument("--no-reference", action="store_true", help="skip the tight reference run")
    args = ap.parse_args()
    if args.quick:
        args.batch, args.train_steps, args.k = 256, 20, 3
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    obj, loss = build(args.batch, args.train_steps, args.seed)
    print(
        f"model 429-1024-512-128-39 sigmoid, {obj.num_params:,} parameters, batch {args.batch}, "
        f"{args.train_steps} Adam steps (loss {loss:.4f}), built in {time.perf_counter() - t0:.1f} s; "
        f"float32 HVPs, {torch.get_num_threads()} thread(s), tol {args.tol:g}, k {args.k}"
    )
    v = torch.randn(obj.num_params, generator=torch.Generator().manual_seed(1))
    obj.hvp(v)  # builds the graph once
    hvp_times = []
    for _ in range(5):
        t = time.perf_counter()
        obj.hvp(v)
        hvp_times.append(time.perf_counter() - t)
    print(f"one HVP (graph cached): median {statistics.median(hvp_times) * 1e3:.0f} ms of 5\n")

    rows: list[tuple[str, Eigenpairs, float]] = []
    k, tol, seed = args.k, args.tol, args.seed
    lanczos, t_l = timed(
        obj, lambda: extreme_eigenpairs(obj, k, "top", tol=tol, seed=seed), args.repeats
    )
    rows.append(("lanczos (eigsh)", lanczos, t_l))
    power, t_p = timed(
        obj,
        lambda: power_iteration_topk(obj, k, tol=tol, maxiter=args.maxiter, seed=seed),
        args.repeats,
    )
    rows.append(("power (residual)", power, t_p))
    pyh, t_h = timed(
        obj,
        lambda: power_iteration_topk(
            obj, k, tol=tol, maxiter=args.maxiter, criterion="change", seed=seed
        ),
        args.repeats,
    )
    rows.append(("power (PyHessian rule)", pyh, t_h))
    ref = None
    if not args.no_reference:
        obj.release()
        ref = extreme_eigenpairs(obj, k, "top", tol=1e-6, seed=seed + 1).eigenvalues

    print(
        f"{'method':<24}{'HVPs':>7}{'time s':>9}{'s/HVP':>8}{'conv':>6}{'max rel err':>13}  eigenvalues (top first)"
    )
    for name, pairs, secs in rows:
        top = np.sort(pairs.eigenvalues)[::-1]
        err = "" if ref is None else f"{np.max(np.abs(top - ref[::-1]) / np.abs(ref[::-1])):.1e}"
        print(
            f"{name:<24}{pairs.num_hvp:>7d}{secs:>9.1f}{secs / pairs.num_hvp:>8.3f}"
            f"{'yes' if pairs.converged else 'no':>6}{err:>13}  "
            + " ".join(f"{x:.6f}" for x in top)
        )
    if ref is not None:
        print(f"{'reference (tol 1e-6)':<24}{'':>43}  " + " ".join(f"{x:.6f}" for x in ref[::-1]))
    print(
        f"\npower (residual) / lanczos: {power.num_hvp / lanczos.num_hvp:.1f}x the HVPs, "
        f"{t_p / t_l:.1f}x the time (goal: lanczos needs >= 3x fewer HVPs)"
    )
    print(
        f"power (PyHessian rule) / lanczos: {pyh.num_hvp / lanczos.num_hvp:.1f}x the HVPs, "
        f"{t_h / t_l:.1f}x the time"
    )
    print(f"lanczos top-{k}: {t_l:.1f} s (goal: under 60 s)")


if __name__ == "__main__":
    main()
