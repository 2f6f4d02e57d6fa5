"""BatchNorm over the global batch: torch layers swapped for ``SyncBatchNorm``, ours synchronised.

Under data parallelism each rank sees only its shard, so plain BatchNorm would normalise with
shard statistics and training would depend on the number of ranks. :func:`sync_batchnorm`
makes every BatchNorm layer use the statistics of the whole global batch for the duration of a
``with`` block (:class:`SynchronisedForward` does it for each forward of the training step only): ``nn.BatchNorm*d`` layers are replaced by modules that share their parameters and
buffers (so optimizers and state dicts see the same tensors) - ``nn.SyncBatchNorm`` on CUDA, and on
the CPU, where PyTorch's ``SyncBatchNorm`` refuses to run, trainlab's own
:class:`~trainlab.nn.batchnorm.BatchNorm` in synchronised mode - and trainlab's own layers switch to
their synchronised mode. The original modules and modes are put back when the block ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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


class BatchNormSwap:
    """The synchronised stand-ins for ``model``'s BatchNorm layers, put in and taken out cheaply.

    Built once; ``with swap:`` puts the stand-ins in (each taking its original's train/eval
    mode) and switches trainlab's own layers to synchronised mode, and undoes both on exit.

    Args:
        model: the network.
        device: where it runs.
    """

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        if isinstance(model, _TORCH_BN):
            raise ConfigError(
                "a bare torch BatchNorm layer cannot be swapped for a synchronised one in place; "
                "wrap it in nn.Sequential"
            )
        self.swaps: list[tuple[nn.Module, str, nn.Module, nn.Module]] = []
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, _TORCH_BN) and not isinstance(child, nn.SyncBatchNorm):
                    self.swaps.append((parent, name, child, _as_sync(child, device)))
        self.ours = [m for m in model.modules() if isinstance(m, BatchNorm) and not m.sync]

    def __len__(self) -> int:
        return len(self.swaps) + len(self.ours)

    def __enter__(self) -> BatchNormSwap:
        for parent, name, original, stand_in in self.swaps:
            stand_in.train(original.training)
            setattr(parent, name, stand_in)
        for m in self.ours:
            m.sync = True
        return self

    def __exit__(self, *exc: object) -> None:
        for parent, name, original, _ in self.swaps:
            setattr(parent, name, original)
        for m in self.ours:
            m.sync = False


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
    with BatchNormSwap(model, device) as swap:
        yield len(swap)


class SynchronisedForward(nn.Module):
    """``model`` whose BatchNorm layers use global-batch statistics during this module's forward.

    Only the forward of the training step synchronises (every rank runs it); any other call of
    ``model`` on one rank (a probe, an evaluation) keeps per-rank statistics and cannot wait for
    ranks that never join. The backward of a synchronised forward all-reduces on every rank.

    Args:
        model: the network.
        device: where it runs.
    """

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        super().__init__()
        self.model = model
        self._swap = [BatchNormSwap(model, device)]  # in a list: not a submodule

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with self._swap[0]:
            return self.model(*args, **kwargs)
