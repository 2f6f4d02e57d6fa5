"""Programs that the distributed tests run under ``torchrun`` (and once in a single process).

``python workers.py MODE OUT [options]`` writes its results to ``OUT`` (rank 0 only), so a test
compares them with the single-process reference computed in the test process itself.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import torch
from torch import nn

from trainlab.distributed import detect_env


def problem(n: int = 203, d: int = 6, classes: int = 3, seed: int = 1) -> tuple:
    """A small float64 classification problem (odd sizes: uneven last batches and shards)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    return x, y.clamp(max=classes - 1)


def network(d: int = 6, classes: int = 3, batchnorm: bool = True) -> nn.Module:
    """A seeded MLP; with a torch BatchNorm1d layer (swapped for a synchronised one under torchrun)."""
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(d, 16)]
    if batchnorm:
        layers.append(nn.BatchNorm1d(16))
    layers += [nn.Tanh(), nn.Linear(16, classes)]
    return nn.Sequential(*layers).double()


class KillOnce:
    """SIGKILL this process at ``epoch``/``step`` of the first attempt (torchrun restarts it)."""

    def __init__(self, rank: int, epoch: int, step: int) -> None:
        self.rank, self.epoch, self.step = rank, epoch, step

    def on_step_end(self, state) -> None:  # noqa: ANN001 - a duck-typed callback
        first = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
        here = state.epoch + 1 == self.epoch and state.batch_index == self.step
        if first and here and detect_env().rank == self.rank:
            os.kill(os.getpid(), signal.SIGKILL)


class FailAt:
    """Raise a user error on ``rank`` at ``epoch``."""

    def __init__(self, rank: int, epoch: int) -> None:
        self.rank, self.epoch = rank, epoch

    def on_epoch_start(self, state) -> None:  # noqa: ANN001
        if detect_env().rank == self.rank and state.epoch + 1 == self.epoch:
            from trainlab.errors import DataError

            raise DataError("broken.npy", "row 7 holds NaN (planted by the test)")


def run_fit(args: argparse.Namespace, save_every_rank: bool = False) -> None:
    from trainlab.train import TrainConfig, accuracy, fit

    x, y = problem(args.rows)
    model = network(batchnorm=not args.no_bn)
    callbacks = []
    if args.kill_epoch:
        callbacks.append(KillOnce(1, args.kill_epoch, 3))
    if args.fail_epoch:
        callbacks.append(FailAt(1, args.fail_epoch))
    cfg = TrainConfig(
        epochs=args.epochs, batch_size=args.batch, optimizer="sgd",
        optimizer_kwargs={"lr": 0.1}, device="cpu", quiet=True, deterministic=args.deterministic,
        out_dir=args.run_dir, resume=bool(args.run_dir), restore_best=False, seed=3,
    )  # fmt: skip
    history = fit(model, nn.functional.cross_entropy, (x, y), (x[:57], y[:57]), cfg,
                  metrics={"acc": accuracy}, callbacks=callbacks)  # fmt: skip
    if detect_env().is_main or save_every_rank:
        torch.save({"state": model.state_dict(), "history": history.records}, args.out)


def hessian_problem() -> tuple:
    """A float64 tanh MLP (163 parameters) and a 101-row batch: shards of 50 and 51 rows."""
    x, y = problem(n=101)
    return network(batchnorm=False), x, y


def run_hessian(args: argparse.Namespace) -> None:
    from trainlab.diagnose import DiagnosisTarget, diagnose
    from trainlab.diagnose.distributed import DistributedObjective, shard_target
    from trainlab.distributed import setup

    ctx = setup("cpu")
    results = hessian_results(*hessian_problem(), ctx, DistributedObjective, shard_target)
    model, x, y = hessian_problem()
    target = DiagnosisTarget(model, nn.functional.cross_entropy, x, y, "test MLP")
    found = diagnose(target, exact_max_params=10, k=3, slq_steps=30)
    results["diagnose"] = found.report.to_dict()
    if ctx is None or ctx.is_main:
        torch.save(results, args.out)


def hessian_results(model, x, y, ctx=None, wrap=None, shard=None) -> dict:  # noqa: ANN001
    """Loss, gradient, products, Hessian, eigenvalues, trace and density (the same code path
    for one process, ``ctx=None``, and for each rank)."""
    from trainlab.diagnose import (
        DiagnosisTarget,
        ModelObjective,
        extreme_eigenpairs,
        hutchinson_trace,
        slq_density,
    )  # fmt: skip

    target = DiagnosisTarget(model, nn.functional.cross_entropy, x, y, "test MLP")
    rows = len(y)
    if ctx is not None:
        target, rows = shard(target, ctx.rank, ctx.world_size)
    obj = ModelObjective(model, target.loss_fn, target.inputs, target.targets)
    if ctx is not None:
        obj = wrap(obj, rows)
    g = torch.Generator().manual_seed(5)
    vs = torch.randn(3, obj.num_params, generator=g, dtype=torch.float64)
    pairs = extreme_eigenpairs(obj, 5, "both", tol=1e-10)
    density = slq_density(obj, num_vectors=2, num_steps=20, seed=1)
    return {
        "rows": rows,
        "loss": obj.loss(),
        "gradient": obj.gradient(),
        "hvp": torch.stack([obj.hvp(v) for v in vs]),
        "hessian": obj.hessian(),
        "eigenvalues": torch.from_numpy(pairs.eigenvalues),
        "trace": hutchinson_trace(obj, num_samples=8, seed=2).mean,
        "slq_nodes": [torch.from_numpy(n) for n in density.nodes],
        "slq_weights": [torch.from_numpy(w) for w in density.weights],
    }


def run_batchnorm(args: argparse.Namespace) -> None:
    from trainlab.distributed import all_gather_rows, setup, shard_rows, sync_batchnorm

    ctx = setup("cpu")
    assert ctx is not None
    out: dict = {}
    for name, layer, x, g in batchnorm_cases():
        x = shard_rows(x, ctx.rank, ctx.world_size).clone().requires_grad_(True)
        g = shard_rows(g, ctx.rank, ctx.world_size)
        with sync_batchnorm(layer):
            y = layer(x)
            y.backward(g)
        bn = layer[0] if isinstance(layer, nn.Sequential) else layer
        dw, db = bn.weight.grad.clone(), bn.bias.grad.clone()
        torch.distributed.all_reduce(dw)
        torch.distributed.all_reduce(db)
        out[name] = {
            "y": all_gather_rows(y.detach()), "dx": all_gather_rows(x.grad), "dw": dw, "db": db,
            "running_mean": bn.running_mean.clone(), "running_var": bn.running_var.clone(),
        }  # fmt: skip
    if ctx.is_main:
        torch.save(out, args.out)


def batchnorm_cases() -> list:
    """(name, fresh layer, input, upstream gradient): 37 rows, shards of 18 and 19."""
    from trainlab.nn import BatchNorm1d, BatchNorm2d

    g = torch.Generator().manual_seed(7)
    cases = []
    for name, layer, shape in (
        ("ours_2d", BatchNorm1d(5, momentum=0.3), (37, 5)),
        ("ours_4d", BatchNorm2d(3), (37, 3, 4, 4)),
        ("torch_2d", nn.Sequential(nn.BatchNorm1d(5, momentum=0.3)), (37, 5)),
    ):
        layer = layer.double()
        bn = layer[0] if isinstance(layer, nn.Sequential) else layer
        with torch.no_grad():
            bn.weight.copy_(torch.rand(bn.num_features, generator=g, dtype=torch.float64) + 0.5)
            bn.bias.copy_(torch.randn(bn.num_features, generator=g, dtype=torch.float64))
        x = 3.0 + 2.0 * torch.randn(shape, generator=g, dtype=torch.float64)
        cases.append((name, layer, x, torch.randn(shape, generator=g, dtype=torch.float64)))
    return cases


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode")
    p.add_argument("out")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--rows", type=int, default=203)
    p.add_argument("--no-bn", action="store_true")
    p.add_argument("--deterministic", action="store_true")
    p.add_argument("--run-dir", default=None)
    p.add_argument("--kill-epoch", type=int, default=0)
    p.add_argument("--fail-epoch", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    {"fit": run_fit, "hessian": run_hessian, "batchnorm": run_batchnorm}[args.mode](args)


if __name__ == "__main__":
    main(sys.argv[1:])
