"""``fit`` on two gloo ranks equals ``fit`` in one process: plain SGD, float64, BatchNorm
synchronised, uneven shards, an empty shard in the last batch, all-reduced validation metrics."""

from __future__ import annotations

import argparse
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


def _args(out: Path, **kw: object) -> argparse.Namespace:
    base = {"out": str(out), "epochs": 3, "batch": 20, "rows": 203, "no_bn": False,
            "run_dir": None, "kill_epoch": 0, "fail_epoch": 0, "deterministic": False}  # fmt: skip
    base.update(kw)
    return argparse.Namespace(**base)


def _fit_rank(args: argparse.Namespace) -> dict:
    from trainlab.distributed import detect_env

    rank = detect_env().rank
    args.out = args.out.replace(".pt", f".{rank}.pt")
    workers.run_fit(args, save_every_rank=True)
    return torch.load(args.out)


@pytest.mark.parametrize(
    "case",
    [
        {"rows": 203, "no_bn": False},  # last batch of 3 rows: shards of 1 and 2
        {"rows": 201, "no_bn": True},  # last batch of 1 row: rank 0 gets an empty shard
    ],
    ids=["batchnorm-uneven", "empty-shard"],
)
def test_ddp_fit_equals_single_process(tmp_path: Path, case: dict) -> None:
    ranks = run_ranks(_fit_rank, tmp_path, args=(_args(tmp_path / "ddp.pt", **case),))
    single_args = _args(tmp_path / "single.pt", **case)
    workers.run_fit(single_args)
    single = torch.load(single_args.out)
    for got in ranks:
        for key, want in single["state"].items():
            if want.is_floating_point():
                torch.testing.assert_close(got["state"][key], want, rtol=1e-10, atol=1e-12)
            else:
                assert torch.equal(got["state"][key], want)
        for g, w in zip(got["history"], single["history"]):
            assert g["val_loss"] == pytest.approx(w["val_loss"], rel=1e-10)
            assert g["val_acc"] == pytest.approx(w["val_acc"], rel=1e-12)
            # the training loss is accumulated in float32, as in one process
            assert g["train_loss"] == pytest.approx(w["train_loss"], rel=1e-6)
    # every rank ends with the same weights
    for key in ranks[0]["state"]:
        assert torch.equal(ranks[0]["state"][key], ranks[1]["state"][key])
    assert single["state"]["0.weight"].dtype == torch.float64
