"""Training and scoring helpers the report's sections share (classifiers on the digits).

The models themselves come from :mod:`trainlab.nn` (:func:`trainlab.nn.mlp.mlp`,
:func:`trainlab.nn.lenet`); these helpers train one with the report's settings, score it on the
training and validation images, and draw the same stratified subset for a given seed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from trainlab.report.context import SectionContext

__all__ = ["cross_entropy", "fit_classifier", "loss_and_accuracy", "n_params", "scores", "subset"]


def n_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy of logits ``outputs`` against class indices ``targets``."""
    return nn.functional.cross_entropy(outputs, targets)


@torch.no_grad()
def loss_and_accuracy(model: nn.Module, x: Tensor, y: Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` (in eval mode) on the whole of ``(x, y)``."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = torch.cat([model(xb.to(device)).cpu() for xb in x.split(2048)])
    model.train(was_training)
    return float(nn.functional.cross_entropy(out, y)), float((out.argmax(1) == y).float().mean())


def scores(
    model: nn.Module, train: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor]
) -> dict[str, float]:
    """``train_loss``, ``train_acc``, ``val_loss`` and ``val_acc`` of ``model``."""
    train_loss, train_acc = loss_and_accuracy(model, *train)
    val_loss, val_acc = loss_and_accuracy(model, *val)
    return {
        "train_loss": train_loss,
        "train_acc": train_acc,
        "val_loss": val_loss,
        "val_acc": val_acc,
    }


def fit_classifier(
    ctx: SectionContext,
    model: nn.Module,
    train: Any,
    val: tuple[Tensor, Tensor] | None = None,
    **overrides: Any,
) -> Any:
    """Train ``model`` with cross-entropy and the report's seed and device.

    Args:
        ctx: the section's context (seed, device).
        model: the classifier.
        train: ``(x, y)`` or an iterable of batches.
        val: ``(x, y)`` validated after every epoch (with accuracy as ``val_acc``), or ``None``.
        overrides: :class:`trainlab.train.TrainConfig` settings (``restore_best`` is off unless
            given).

    Returns:
        The Trainer's history.
    """
    from trainlab.train import accuracy, fit

    tc = ctx.train_config(**{"restore_best": False, **overrides})
    metrics: dict[str, Any] | None = {"acc": accuracy} if val is not None else None
    return fit(model, cross_entropy, train, val, tc, metrics=metrics)


def subset(x: Tensor, y: Tensor, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """A class-stratified subset of ``n`` rows, the same for a given seed."""
    if n >= len(y):
        return x, y
    from sklearn.model_selection import train_test_split

    idx, _ = train_test_split(
        torch.arange(len(y)).numpy(), train_size=n, stratify=y.numpy(), random_state=seed
    )
    idx = torch.from_numpy(idx).sort().values
    return x[idx], y[idx]
