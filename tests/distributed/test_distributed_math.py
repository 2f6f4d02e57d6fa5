"""Two gloo ranks against one process, float64: synchronised BatchNorm, the distributed Hessian
(products, Hessian, Lanczos, Hutchinson trace, SLQ) and ``diagnose``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workers  # noqa: E402
from launch import run_ranks  # noqa: E402

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with gloo is not available",
)


def _rel(a, b) -> float:  # noqa: ANN001
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def _bn_rank(out: str) -> None:
    workers.run_batchnorm(type("A", (), {"out": out})())


def test_sync_batchnorm_equals_full_batch(tmp_path: Path) -> None:
    """Shards of 18 and 19 rows: output, input gradient, parameter gradients (summed over ranks,
    as DDP does) and running statistics equal one layer on all 37 rows."""
    out = tmp_path / "bn.pt"
    run_ranks(_bn_rank, tmp_path, args=(str(out),))
    got = torch.load(out)
    for name, layer, x, g in workers.batchnorm_cases():
        x = x.clone().requires_grad_(True)
        y = layer(x)
        y.backward(g)
        bn = layer[0] if isinstance(layer, torch.nn.Sequential) else layer
        want = {
            "y": y.detach(), "dx": x.grad, "dw": bn.weight.grad, "db": bn.bias.grad,
            "running_mean": bn.running_mean, "running_var": bn.running_var,
        }  # fmt: skip
        for key, value in want.items():
            assert _rel(got[name][key], value) <= 1e-10, (name, key)


def _hessian_rank() -> dict:
    from trainlab.diagnose import DiagnosisTarget, diagnose
    from trainlab.diagnose.distributed import DistributedObjective, shard_target
    from trainlab.distributed import setup

    ctx = setup("cpu")
    results = workers.hessian_results(
        *workers.hessian_problem(), ctx, DistributedObjective, shard_target
    )
    model, x, y = workers.hessian_problem()
    target = DiagnosisTarget(model, torch.nn.functional.cross_entropy, x, y, "test MLP")
    results["diagnose"] = diagnose(target, exact_max_params=10, k=3, slq_steps=30).report
    return results


@pytest.fixture(scope="module")
def hessian_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], dict]:
    ranks = run_ranks(_hessian_rank, tmp_path_factory.mktemp("hessian"))
    return ranks, workers.hessian_results(*workers.hessian_problem())


@pytest.mark.parametrize("key", ["loss", "gradient", "hvp", "hessian", "eigenvalues", "trace"])
def test_distributed_hessian_equals_single_process(hessian_runs, key: str) -> None:  # noqa: ANN001
    ranks, single = hessian_runs
    assert [r["rows"] for r in ranks] == [50, 51]  # unequal shards, weighted exactly
    for r in ranks:  # every rank holds the same combined values
        assert _rel(r[key], single[key]) <= 1e-8


def test_distributed_slq_equals_single_process(hessian_runs) -> None:  # noqa: ANN001
    ranks, single = hessian_runs
    for r in ranks:
        for got, want in zip(
            r["slq_nodes"] + r["slq_weights"], single["slq_nodes"] + single["slq_weights"]
        ):
            assert _rel(got, want) <= 1e-8


def test_distributed_diagnose_equals_single_process(hessian_runs) -> None:  # noqa: ANN001
    from trainlab.diagnose import DiagnosisTarget, diagnose

    ranks, _ = hessian_runs
    model, x, y = workers.hessian_problem()
    target = DiagnosisTarget(model, torch.nn.functional.cross_entropy, x, y, "test MLP")
    want = diagnose(target, exact_max_params=10, k=3, slq_steps=30).report
    for r in ranks:
        got = r["diagnose"]
        assert got.method == want.method == "lanczos"
        assert got.verdict == want.verdict
        assert _rel(got.lambda_min, want.lambda_min) <= 1e-8
        assert _rel(got.lambda_max, want.lambda_max) <= 1e-8
        assert _rel(got.grad_norm, want.grad_norm) <= 1e-8
