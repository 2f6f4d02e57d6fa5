"""Sharding, environment detection, error classification and the BatchNorm swap, in one process."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainlab.distributed import (
    DistEnv,
    ShardedBatches,
    backend_for,
    detect_env,
    is_communication_error,
    shard_batches,
    shard_bounds,
    sync_batchnorm,
)
from trainlab.errors import ConfigError
from trainlab.nn import BatchNorm
from trainlab.train import ArrayBatches


@pytest.mark.parametrize("n", [0, 1, 5, 64, 203])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_shards_are_disjoint_balanced_and_cover(n: int, world: int) -> None:
    bounds = [shard_bounds(n, r, world) for r in range(world)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1


def test_array_batches_shards_union_is_the_single_process_batch() -> None:
    x, y = torch.arange(203.0).reshape(-1, 1), torch.arange(203)
    whole = list(ArrayBatches((x, y), 20, shuffle=True, generator=torch.Generator().manual_seed(4)))
    shards = [
        list(
            ArrayBatches((x, y), 20, shuffle=True, generator=torch.Generator().manual_seed(4))
            .shard(r, 3)
        )
        for r in range(3)
    ]  # fmt: skip
    assert all(len(s) == len(whole) == 11 for s in shards)  # same steps on every rank
    seen: list[int] = []
    for step, (_, by) in enumerate(whole):
        parts = torch.cat([s[step][1] for s in shards])
        assert torch.equal(parts.sort().values, by.sort().values)
        seen += parts.tolist()
    assert sorted(seen) == list(range(203))  # every row once per epoch
    assert [len(s[-1][1]) for s in shards] == [1, 1, 1]  # the last batch of 3 rows


def test_generic_sharding_slices_rows_and_refuses_unaligned_batches() -> None:
    batches = [(torch.arange(10.0), torch.arange(10))]
    got = list(shard_batches(batches, 1, 2))
    assert torch.equal(got[0][1], torch.arange(5, 10))
    bad = ShardedBatches([((torch.zeros(2, 3, 4), torch.tensor([3, 3])), torch.zeros(6))], 0, 2)
    with pytest.raises(ConfigError, match="shard"):
        list(bad)


def test_detect_env() -> None:
    assert detect_env({}) == DistEnv()
    env = detect_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert env.distributed and not env.is_main and env.local_rank == 1
    with pytest.raises(ConfigError, match="WORLD_SIZE"):
        detect_env({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(ConfigError, match="RANK"):
        detect_env({"RANK": "x", "WORLD_SIZE": "2"})


def test_backend_and_error_classification() -> None:
    assert backend_for(torch.device("cpu")) == "gloo"
    assert backend_for(torch.device("cuda", 1)) == "nccl"
    assert is_communication_error(RuntimeError("[pair.cc:553] Connection closed by peer"))
    assert not is_communication_error(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_communication_error(ValueError("connection closed"))


def test_sync_batchnorm_shares_tensors_and_restores_the_model() -> None:
    torch_bn, ours = nn.BatchNorm1d(4), BatchNorm(4)
    model = nn.Sequential(nn.Linear(3, 4), torch_bn, ours)
    params = {id(p) for p in model.parameters()}
    with sync_batchnorm(model, torch.device("cpu")) as n:
        assert n == 2
        stand_in = model[1]
        assert isinstance(stand_in, BatchNorm) and stand_in.sync and ours.sync
        assert stand_in.weight is torch_bn.weight and stand_in.running_var is torch_bn.running_var
        assert {id(p) for p in model.parameters()} == params
    assert model[1] is torch_bn and not ours.sync
    with pytest.raises(ConfigError, match="Sequential"):
        with sync_batchnorm(nn.BatchNorm1d(2)):
            pass
