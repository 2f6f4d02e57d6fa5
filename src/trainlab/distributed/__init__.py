"""Data-parallel training and the distributed Hessian on PyTorch's own engine (``torchrun``).

* :mod:`~trainlab.distributed.env` - the rank, world size and local rank ``torchrun`` sets.
* :mod:`~trainlab.distributed.group` - the process group (``gloo`` on CPU, ``nccl`` on CUDA).
* :mod:`~trainlab.distributed.sharding` - each global batch split into disjoint rank shards.
* :mod:`~trainlab.distributed.reduce` - sums and counts all-reduced, rows gathered.
* :mod:`~trainlab.distributed.parallel` - ``DistributedDataParallel`` with exact loss weighting.
* :mod:`~trainlab.distributed.batchnorm` - BatchNorm over the global batch.
* :mod:`~trainlab.distributed.faults` - one failing rank stops them all, its error shown once.
* :mod:`~trainlab.distributed.output` - rank-0-only printing.

``trainlab.train.fit`` and ``trainlab diagnose`` use these by themselves under ``torchrun``; the
distributed Hessian objective is :class:`trainlab.diagnose.distributed.DistributedObjective`.
"""

from trainlab.distributed.batchnorm import sync_batchnorm
from trainlab.distributed.env import DistEnv, detect_env, restarted
from trainlab.distributed.faults import PeerFailed, is_communication_error, training_session
from trainlab.distributed.group import DistContext, backend_for, current, setup
from trainlab.distributed.output import is_main_process, print_main
from trainlab.distributed.parallel import DataParallel, zero_loss
from trainlab.distributed.reduce import (
    all_gather_rows,
    all_reduce_sum,
    gather_objects,
    reduce_sum_count,
)
from trainlab.distributed.sharding import (
    ShardableBatches,
    ShardedBatches,
    shard_batches,
    shard_bounds,
    shard_rows,
)

__all__ = [
    "DataParallel",
    "DistContext",
    "DistEnv",
    "PeerFailed",
    "ShardableBatches",
    "ShardedBatches",
    "all_gather_rows",
    "all_reduce_sum",
    "backend_for",
    "current",
    "detect_env",
    "gather_objects",
    "is_communication_error",
    "is_main_process",
    "print_main",
    "reduce_sum_count",
    "restarted",
    "setup",
    "shard_batches",
    "shard_bounds",
    "shard_rows",
    "sync_batchnorm",
    "training_session",
    "zero_loss",
]
