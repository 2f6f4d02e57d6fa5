"""Batch normalisation from scratch: the function and the layer, drop-in for ``nn.BatchNorm1d/2d``.

Follows Ioffe & Szegedy (2015), "Batch Normalization: Accelerating Deep Network Training by
Reducing Internal Covariate Shift", and the lecture's account of it: in training each channel is
normalised with the mean and (biased) variance of the current batch, then scaled by γ (``weight``)
and shifted by β (``bias``); running averages of the statistics (with the *unbiased* batch
variance, as PyTorch keeps them) replace the batch statistics at inference.

:func:`batch_norm` takes PyTorch's ``F.batch_norm`` arguments in the same order; :class:`BatchNorm`
holds the parameters and buffers under PyTorch's names (``weight``, ``bias``, ``running_mean``,
``running_var``, ``num_batches_tracked``), so state dicts load across in both directions. The mode
follows ``module.training`` (``model.train()`` / ``model.eval()``), never ``torch.no_grad()``.

Synchronised mode (``sync=True``, set on the layer by :func:`trainlab.distributed.sync_batchnorm`)
is for data-parallel training: in training the statistics are those of the global batch, every
rank's shard together (:mod:`trainlab.nn._sync_batchnorm_fn`), and the running variance is the
unbiased variance over all ``N`` rows of the global batch. Outside a process group of more than
one rank it is ordinary batch norm.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from trainlab.nn._batchnorm_fn import BatchNormTrainFn, channel_shape
from trainlab.nn._sync_batchnorm_fn import SyncBatchNormTrainFn


def _synchronised(sync: bool) -> bool:
    if not sync:
        return False
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
    *,
    sync: bool = False,
    process_group: Any = None,
) -> Tensor:
    """Batch-normalise ``input`` of shape ``(N, C, *)`` over every dimension but ``C``.

    Args:
        input: ``(N, C)``, ``(N, C, L)`` or ``(N, C, H, W)`` (any ``(N, C, *)``).
        running_mean: ``(C,)`` buffer; updated in place when ``training``; used when not.
        running_var: ``(C,)`` buffer of the unbiased variance, likewise.
        weight: γ, ``(C,)`` or None (no scaling).
        bias: β, ``(C,)`` or None (no shift).
        training: normalise with batch statistics (and update the running ones) if True, with the
            running statistics if False.
        momentum: weight of the new batch in ``running = (1 − momentum) · running + momentum · batch``.
        eps: added to the variance before the square root.
        sync: in training, use the statistics of every rank's batch together (needs a process
            group of several ranks; otherwise ignored).
        process_group: the ranks to synchronise over (default: all).

    Returns:
        Tensor shaped like ``input``.
    """
    if input.dim() < 2:
        raise ValueError(f"batch_norm expects input of shape (N, C, *), got {tuple(input.shape)}")
    num_channels = input.shape[1]
    for name, t in (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ):
        if t is not None and t.shape != (num_channels,):
            raise ValueError(f"{name} must have shape ({num_channels},), got {tuple(t.shape)}")
    shape = channel_shape(input)  # (1, C, 1, ...) broadcasts per channel
    if training:
        if _synchronised(sync):  # n counts the rows of the global batch
            y, mean, var, n = SyncBatchNormTrainFn.apply(input, weight, bias, eps, process_group)
        else:
            n = input.numel() // num_channels
            y, mean, var = BatchNormTrainFn.apply(input, weight, bias, eps)
        if n <= 1:
            raise ValueError(
                f"expected more than 1 value per channel when training, got input size {tuple(input.shape)}"
            )
        with torch.no_grad():
            if running_mean is not None:
                running_mean.mul_(1 - momentum).add_(mean.to(running_mean.dtype), alpha=momentum)
            if running_var is not None:
                # The running variance estimates the population's, hence Bessel's n / (n − 1).
                unbiased = var.to(running_var.dtype) * (n / (n - 1))
                running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)
        return y
    if running_mean is None or running_var is None:
        raise ValueError("running_mean and running_var are required when training=False")
    # Inference is an affine map per channel: y = x · scale + shift.
    scale = torch.rsqrt(running_var + eps)
    if weight is not None:
        scale = scale * weight
    shift = -running_mean * scale
    if bias is not None:
        shift = shift + bias
    return torch.addcmul(shift.view(shape), input, scale.view(shape))


class BatchNorm(nn.Module):
    """Batch normalisation layer for ``(N, C)``/``(N, C, L)`` (``num_dims=2``) or ``(N, C, H, W)``
    (``num_dims=4``) input, equal to ``nn.BatchNorm1d`` / ``nn.BatchNorm2d``.

    Args:
        num_features: number of channels ``C``.
        num_dims: 2 for fully connected layers, 4 for convolutional ones (as in d2l).
        eps: added to the variance before the square root.
        momentum: running-statistics update weight; None for a cumulative (equal-weight) average.
        affine: learn γ (``weight``, init 1) and β (``bias``, init 0).
        bias: with ``affine``, whether to learn β too (PyTorch's keyword of the same name).
        track_running_stats: keep running statistics for inference; without them the layer
            normalises with batch statistics in eval mode too.
        device, dtype: where and how to create parameters and buffers.
    """

    _version = 2  # PyTorch's _NormBase version: state dicts before 2 lack num_batches_tracked

    def __init__(
        self,
        num_features: int,
        num_dims: int = 2,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if num_dims not in (2, 4):
            raise ValueError(
                f"num_dims must be 2 (fully connected) or 4 (convolutional), got {num_dims}"
            )
        if num_features < 1:
            raise ValueError(f"num_features must be positive, got {num_features}")
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        self.num_features = num_features
        self.num_dims = num_dims
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        self.sync = False  # statistics over every rank's batch (see the module docstring)
        self.process_group: Any = None
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, **factory))
            if bias:
                self.bias = nn.Parameter(torch.zeros(num_features, **factory))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.running_mean: Tensor | None
        self.running_var: Tensor | None
        self.num_batches_tracked: Tensor | None
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer(
                "num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device)
            )
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches seen."""
        if self.track_running_stats:
            assert self.running_mean is not None and self.running_var is not None
            assert self.num_batches_tracked is not None
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """Reset running statistics and set γ = 1, β = 0."""
        self.reset_running_stats()
        if self.affine:
            with torch.no_grad():
                self.weight.fill_(1)
                if self.bias is not None:
                    self.bias.zero_()

    def _check_input_dim(self, input: Tensor) -> None:
        allowed = (2, 3) if self.num_dims == 2 else (4,)
        if input.dim() not in allowed:
            want = " or ".join(f"{d}D" for d in allowed)
            raise ValueError(f"expected {want} input (got {input.dim()}D input)")
        if input.shape[1] != self.num_features:
            raise ValueError(
                f"expected {self.num_features} channels in dimension 1, got input of shape {tuple(input.shape)}"
            )

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        # momentum=None means a cumulative average: the k-th batch gets weight 1/k.
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        # Without running statistics there is nothing to use at inference but the batch's own.
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        # Buffers that are not tracked must not be updated in training.
        pass_stats = not self.training or self.track_running_stats
        return batch_norm(
            input,
            self.running_mean if pass_stats else None,
            self.running_var if pass_stats else None,
            self.weight,
            self.bias,
            use_batch_stats,
            factor,
            self.eps,
            sync=self.sync,
            process_group=self.process_group,
        )

    def extra_repr(self) -> str:
        dims = f", num_dims={self.num_dims}" if type(self) is BatchNorm else ""
        return (
            f"{self.num_features}{dims}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={self.bias is not None}, "
            f"track_running_stats={self.track_running_stats}"
        )

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        version = local_metadata.get("version", None)
        if (version is None or version < 2) and self.track_running_stats:
            # State dicts from before num_batches_tracked existed: start counting from 0.
            key = prefix + "num_batches_tracked"
            if key not in state_dict:
                state_dict[key] = torch.tensor(0, dtype=torch.long)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )


class BatchNorm1d(BatchNorm):
    """:class:`BatchNorm` for ``(N, C)`` or ``(N, C, L)`` input, like ``nn.BatchNorm1d``."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__(
            num_features, 2, eps, momentum, affine, track_running_stats, device, dtype, bias=bias
        )


class BatchNorm2d(BatchNorm):
    """:class:`BatchNorm` for ``(N, C, H, W)`` input, like ``nn.BatchNorm2d``."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__(
            num_features, 4, eps, momentum, affine, track_running_stats, device, dtype, bias=bias
        )
