"""Evaluation and prediction: the model in evaluation mode, no gradients (nanoGPT's
``estimate_loss``), its training mode put back afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

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
) -> dict[str, float]:
    """:func:`evaluate` on ready batches, under bf16 autocast when ``amp`` (CUDA only)."""
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
                if loss_fn is not None:
                    total += float(loss_fn(outputs, targets)) * n
            count += n
            outs.append(outputs.float().cpu())
            tgts.append(targets.cpu())
    finally:
        model.train(was_training)
    if count == 0:
        raise TrainlabError("the evaluation data yielded no batches")
    scores: dict[str, float] = {}
    if loss_fn is not None:
        scores["loss"] = total / count
    if metrics:
        scores.update(_metrics(metrics, outs, tgts, count))
    return scores


def _metrics(
    metrics: dict[str, Metric], outs: list[Tensor], tgts: list[Tensor], count: int
) -> dict[str, float]:
    try:
        all_out, all_tgt = torch.cat(outs), torch.cat(tgts)
    except RuntimeError:  # ragged outputs (e.g. padded sequences): weighted batch average
        return {
            k: sum(fn(o, t) * batch_rows(t) for o, t in zip(outs, tgts)) / count
            for k, fn in metrics.items()
        }
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
