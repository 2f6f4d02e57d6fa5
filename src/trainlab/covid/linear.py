"""Closed-form fits of the COVID task's linear predictors.

Two least-squares problems recur in every fold: the ridge reference over a grid of penalties
(inner cross-validation picks one) and the networks without a hidden layer trained on MSE, whose
fixed-epoch gradient descent only approaches the least-squares minimum. Both are solved exactly
here from one singular value decomposition of the centred inputs: for ``X = U S V'`` the penalised
solution is ``V diag(s / (s^2 + alpha)) U' y`` for every ``alpha`` at once, the intercept
unpenalised (what ``sklearn.linear_model.Ridge`` computes; ``alpha = 0`` gives the minimum-norm
least-squares solution). Milliseconds where the Trainer needed seconds, and no optimiser setting
can leave it short of the minimum.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


def ridge_path(
    x: np.ndarray, t: np.ndarray, alphas: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Ridge coefficients for every penalty: minimise ``|X w + b - t|^2 + alpha |w|^2``.

    Args:
        x: (N, F) inputs.
        t: (N,) targets.
        alphas: penalties (0: least squares, minimum norm where the inputs are collinear).

    Returns:
        (A, F) coefficients and (A,) intercepts, one row per penalty.
    """
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    x_mean, t_mean = x.mean(axis=0), float(t.mean())
    u, s, vt = np.linalg.svd(x - x_mean, full_matrices=False)
    uty = u.T @ (t - t_mean)  # (K,)
    a = np.asarray(alphas, dtype=np.float64)[:, None]  # (A, 1)
    tol = s.max(initial=0.0) * max(x.shape) * np.finfo(np.float64).eps
    with np.errstate(divide="ignore", invalid="ignore"):
        shrink = np.where(s[None, :] > tol, s[None, :] / (s[None, :] ** 2 + a), 0.0)  # (A, K)
    coef = (shrink * uty[None, :]) @ vt  # (A, F)
    return coef, t_mean - coef @ x_mean


def solves_exactly(widths: Sequence[int], linear_skip: bool, loss: str, l1: float) -> bool:
    """Whether a network is a linear least-squares problem (no hidden layer, MSE, no L1)."""
    return not widths and not linear_skip and loss == "mse" and l1 == 0.0


def fit_linear(model: nn.Module, x: np.ndarray, y: np.ndarray, l2: float = 0.0) -> None:
    """Set the one ``nn.Linear`` of ``model`` to the minimiser of ``mean((X w + b - y)^2) +
    l2 |w|^2`` (the loss :func:`trainlab.covid.model.make_loss` trains) on ``x`` (N, F), ``y``
    (N,)."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if len(layers) != 1 or layers[0].bias is None:
        raise ValueError("fit_linear needs a model with exactly one Linear layer with a bias")
    coef, intercept = ridge_path(x, y, [len(y) * l2])
    layer = layers[0]
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(coef[:1]).to(layer.weight.dtype))
        layer.bias.fill_(float(intercept[0]))
