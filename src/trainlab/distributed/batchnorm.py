"""BatchNorm over the global batch: torch layers swapped for ``SyncBatchNorm``, ours synchronised.

Under data parallelism each rank sees only its shard, so plain BatchNorm would normalise with
shard statistics and training would depend on the number of ranks. :func:`sync_batchnorm`
makes every BatchNorm layer use the statistics of the whole global batch for the duration of a
``with`` block: ``nn.BatchNorm*d`` layers are replaced by modules that share their parameters and
buffers (so optimizers and state dicts see the same tensors) - ``nn.SyncBatchNorm`` on CUDA, and on
the CPU, where PyTorch's ``SyncBatchNorm`` refuses to run, trainlab's own
:class:`~trainlab.nn.batchnorm.BatchNorm` in synchronised mode - and trainlab's own layers switch to
their synchronised mode. The original modules and modes are put back when the block ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from trainlab.errors import ConfigError
from trainlab.nn.batchnorm import BatchNorm

_TORCH_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _as_sync(bn: nn.modules.batchnorm._BatchNorm, device: torch.device) -> nn.Module:
    sync: nn.Module
    if device.type == "cuda":
        sync = nn.SyncBatchNorm(
            bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats
        )
    else:
        if isinstance(bn, nn.BatchNorm3d):
            raise ConfigError(
                "distributed training on the CPU: BatchNorm3d cannot be synchronised across "
                "ranks (PyTorch's SyncBatchNorm needs a GPU); use BatchNorm1d/2d"
            )
        dims = 4 if isinstance(bn, nn.BatchNorm2d) else 2
        sync = BatchNorm(bn.num_features, dims, bn.eps, bn.momentum, bn.affine)
        sync.track_running_stats = bn.track_running_stats
        sync.sync = True
    # Share, not copy: the optimizer and the caller's state dict keep seeing the same tensors.
    sync.weight, sync.bias = bn.weight, bn.bias
    sync.running_mean, sync.running_var = bn.running_mean, bn.running_var
    sync.num_batches_tracked = bn.num_batches_tracked
    sync.train(bn.training)
    return sync


@contextmanager
def sync_batchnorm(model: nn.Module, device: torch.device | None = None) -> Iterator[int]:
    """Synchronise every BatchNorm layer of ``model`` across ranks inside the block.

    Args:
        model: the network (changed in place, restored on exit).
        device: where it runs (default: where its first parameter is).

    Yields:
        How many layers were synchronised.
    """
    if device is None:
        device = next(model.parameters(), torch.zeros(())).device
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    ours: list[BatchNorm] = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, _TORCH_BN) and not isinstance(child, nn.SyncBatchNorm):
                setattr(parent, name, _as_sync(child, device))
                swapped.append((parent, name, child))
    for m in model.modules():
        if isinstance(m, BatchNorm) and not m.sync:
            m.sync = True
            ours.append(m)
    try:
        yield len(swapped) + len(ours)
    finally:
        for parent, name, child in swapped:
            child.train(getattr(parent, name).training)
            setattr(parent, name, child)
        for m in ours:
            m.sync = False
