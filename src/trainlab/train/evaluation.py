"""Evaluation and prediction: the model in evaluation mode, no gradients (nanoGPT's
``estimate_loss``), its training mode put back afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from trainlab.distributed.group import DistContext
from trainlab.distributed.reduce import all_gather_rows, all_reduce_sum, reduce_sum_count
from trainlab.errors import TrainlabError
from trainlab.train._forward import autocast, batch_rows, forward
from trainlab.train.batches import as_batches, to_device

LossFn = Callable[[Any, Any], Tensor]
Metric = Callable[[Tensor, Tensor], float]


def evaluate(
    model: torch.nn.Module,
    loss_fn: LossFn | None,
    data: Any,
    metrics: dict[str, Metric] | None = None,
    batch_size: int = 1024,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """Loss and metrics of ``model`` on ``data`` in evaluation mode.

    Args:
        model: the model (its training mode is restored afterwards).
        loss_fn: as in :func:`trainlab.train.fit`, or ``None`` to skip the loss.
        data: ``(X, y)`` arrays, an iterable of ``(inputs, targets)`` batches, or a zero-argument
            callable returning one.
        metrics: name -> ``fn(outputs, targets)``; computed on all outputs at once when they
            concatenate, else averaged over batches weighted by their size.
        batch_size: rows per forward pass for array data.
        device: where to run (default: the model's device).

    Returns:
        ``{"loss": ..., "<metric>": ...}``.

    Raises:
        TrainlabError: ``data`` yields no batches.
    """
    device = _model_device(model) if device is None else torch.device(device)
    return evaluate_batches(model, loss_fn, as_batches(data, batch_size), metrics, device)


@torch.no_grad()
def evaluate_batches(
    model: torch.nn.Module,
    loss_fn: LossFn | None,
    batches: Iterable[Any],
    metrics: dict[str, Metric] | None,
    device: torch.device,
    amp: bool = False,
    dist: DistContext | None = None,
) -> dict[str, float]:
    """:func:`evaluate` on ready batches, under bf16 autocast when ``amp`` (CUDA only).

    With ``dist`` (under ``torchrun``, each rank holding a shard) the loss is reduced as a global
    sum over a global count, and the metrics are computed on every rank's outputs gathered, so
    every rank gets the single-process scores.
    """
    total, count, outs, tgts = _outputs(model, loss_fn, batches, device, amp)
    if dist is not None:
        total, count = reduce_sum_count(total, count, dist.device)
    if count == 0:
        raise TrainlabError("the evaluation data yielded no batches")
    scores: dict[str, float] = {}
    if loss_fn is not None:
        scores["loss"] = total / count
    if metrics:
        scores.update(_metrics(metrics, outs, tgts, count, dist))
    return scores


def _outputs(
    model: torch.nn.Module,
    loss_fn: LossFn | None,
    batches: Iterable[Any],
    device: torch.device,
    amp: bool,
) -> tuple[float, int, list[Tensor], list[Tensor]]:
    """The summed loss, the rows, and every batch's outputs and targets (on the CPU)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    outs: list[Tensor] = []
    tgts: list[Tensor] = []
    try:
        for inputs, targets in batches:
            inputs, targets = to_device(inputs, device), to_device(targets, device)
            with autocast(device, amp):
                outputs = forward(model, inputs)
                n = batch_rows(targets)
                if loss_fn is not None and n:
                    total += float(loss_fn(outputs, targets)) * n
            count += n
            outs.append(outputs.float().cpu())
            tgts.append(targets.cpu())
    finally:
        model.train(was_training)
    return total, count, outs, tgts


def _metrics(
    metrics: dict[str, Metric],
    outs: list[Tensor],
    tgts: list[Tensor],
    count: int,
    dist: DistContext | None = None,
) -> dict[str, float]:
    try:
        all_out, all_tgt = torch.cat(outs), torch.cat(tgts)
        ragged = False
    except RuntimeError:  # ragged outputs (e.g. padded sequences): weighted batch average
        ragged = True
    if dist is not None:
        # every rank must take the same branch, or the collectives below would not match
        flag = torch.tensor([float(ragged)], dtype=torch.float64, device=dist.device)
        ragged = bool(all_reduce_sum(flag).item() > 0)
    if ragged:
        sums = {
            k: sum(fn(o, t) * batch_rows(t) for o, t in zip(outs, tgts) if batch_rows(t))
            for k, fn in metrics.items()
        }
        if dist is not None:
            sums = {k: reduce_sum_count(v, 0, dist.device)[0] for k, v in sums.items()}
        return {k: v / count for k, v in sums.items()}
    if dist is not None:
        all_out = all_gather_rows(all_out.to(dist.device)).cpu()
        all_tgt = all_gather_rows(all_tgt.to(dist.device)).cpu()
    return {k: float(fn(all_out, all_tgt)) for k, fn in metrics.items()}


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    data: Any,
    batch_size: int = 1024,
    device: torch.device | str | None = None,
) -> Tensor:
    """Outputs of ``model`` in evaluation mode, on the CPU.

    Args:
        model: the model (its training mode is restored afterwards).
        data: an array of inputs (batched by ``batch_size`` rows) or an iterable of input batches.
        batch_size: rows per forward pass for array data.
        device: where to run (default: the model's device).

    Returns:
        The outputs of all batches, concatenated.
    """
    device = _model_device(model) if device is None else torch.device(device)
    was_training = model.training
    model.eval()
    try:
        if isinstance(data, Tensor) or hasattr(data, "__array__"):
            batches: Iterable[Any] = (b[0] for b in as_batches((data,), batch_size))
        else:
            batches = data
        outs = [forward(model, to_device(x, device)).float().cpu() for x in batches]
    finally:
        model.train(was_training)
    return torch.cat(outs)


def _model_device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")
