"""The lecture's forms against their formulas, written out step by step in plain Python.

The loss ``Σ cᵗ·θ`` has gradient exactly ``cᵗ`` whatever θ is, so each optimizer can be fed a
chosen gradient sequence and its trajectory compared with the formula evaluated by hand.
"""

from __future__ import annotations

import math

import pytest
import torch

import trainlab.optim as optim

GRADS = [[0.5, -2.0], [1.5, -1.0], [-0.3, 0.2], [2.0, 0.7], [0.1, -0.4], [-1.2, 1.1]]


def _run(
    opt_cls: type, grads: list[list[float]], lrs: list[float] | None = None, **kwargs: object
) -> list[list[float]]:
    """θ after each step, starting from θ = (1, 1), with lr changed to lrs[t] before step t."""
    theta = torch.ones(2, dtype=torch.float64, requires_grad=True)
    opt = opt_cls([theta], **kwargs)
    out = []
    for t, g in enumerate(grads):
        if lrs is not None:
            opt.param_groups[0]["lr"] = lrs[t]
        opt.zero_grad()
        (torch.tensor(g, dtype=torch.float64) * theta).sum().backward()
        opt.step()
        out.append(theta.detach().tolist())
    return out


def _close(got: list[list[float]], want: list[list[float]]) -> None:
    torch.testing.assert_close(torch.tensor(got), torch.tensor(want), rtol=1e-12, atol=1e-12)


def test_adagrad_lecture_divides_by_root_mean_square() -> None:
    lr, eps = 0.1, 1e-10
    want, theta = [], [1.0, 1.0]
    for t in range(len(GRADS)):
        for i in range(2):
            sigma = math.sqrt(
                sum(GRADS[k][i] ** 2 for k in range(t + 1)) / (t + 1)
            )  # RMS of g⁰..gᵗ
            theta[i] -= lr / (sigma + eps) * GRADS[t][i]
        want.append(list(theta))
    _close(_run(optim.AdagradLecture, GRADS, lr=lr), want)


def test_adagrad_pytorch_form_divides_by_root_of_sum() -> None:
    lr, eps = 0.1, 1e-10
    want, theta = [], [1.0, 1.0]
    for t in range(len(GRADS)):
        for i in range(2):
            s = math.sqrt(sum(GRADS[k][i] ** 2 for k in range(t + 1)))
            theta[i] -= lr * GRADS[t][i] / (s + eps)
        want.append(list(theta))
    _close(_run(optim.Adagrad, GRADS, lr=lr), want)


def test_rmsprop_lecture_starts_from_first_gradient() -> None:
    lr, alpha, eps = 0.1, 0.9, 1e-8
    want, theta, sigma = [], [1.0, 1.0], [0.0, 0.0]
    for t, g in enumerate(GRADS):
        for i in range(2):
            if t == 0:
                sigma[i] = abs(g[i])  # σ⁰ = |g⁰|
            else:
                sigma[i] = math.sqrt(alpha * sigma[i] ** 2 + (1 - alpha) * g[i] ** 2)
            theta[i] -= lr / (sigma[i] + eps) * g[i]
        want.append(list(theta))
    got = _run(optim.RMSpropLecture, GRADS, lr=lr, alpha=alpha)
    _close(got, want)
    # First step: every coordinate moves by η against its gradient's sign.
    _close([got[0]], [[1 - lr, 1 + lr]])


def test_rmsprop_forms_differ_only_in_the_start() -> None:
    # PyTorch's average starts at 0: the first step is η/sqrt(1 − α) = 10η for α = 0.99.
    torch_form = _run(optim.RMSprop, GRADS[:1], lr=0.01, alpha=0.99)
    lecture = _run(optim.RMSpropLecture, GRADS[:1], lr=0.01, alpha=0.99)
    torch.testing.assert_close(
        torch.tensor(torch_form[0]), torch.tensor([1 - 0.1, 1 + 0.1]), rtol=1e-6, atol=1e-8
    )
    torch.testing.assert_close(
        torch.tensor(lecture[0]), torch.tensor([1 - 0.01, 1 + 0.01]), rtol=1e-6, atol=1e-8
    )


def test_adam_lecture_follows_the_paper() -> None:
    lr, b1, b2, eps = 0.05, 0.9, 0.999, 1e-8
    want, theta, m, v = [], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0]
    for t, g in enumerate(GRADS, start=1):
        for i in range(2):
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            m_hat, v_hat = m[i] / (1 - b1**t), v[i] / (1 - b2**t)
            theta[i] -= lr * m_hat / (math.sqrt(v_hat) + eps)
        want.append(list(theta))
    _close(_run(optim.AdamLecture, GRADS, lr=lr), want)
    _close(_run(optim.Adam, GRADS, lr=lr), want)


def test_momentum_follows_the_lecture() -> None:
    lr, lam = 0.1, 0.9
    want, theta, m = [], [1.0, 1.0], [0.0, 0.0]
    for g in GRADS:
        for i in range(2):
            m[i] = lam * m[i] - lr * g[i]  # mᵗ = λmᵗ⁻¹ − ηgᵗ⁻¹
            theta[i] += m[i]  # θᵗ = θᵗ⁻¹ + mᵗ
        want.append(list(theta))
    _close(_run(optim.Momentum, GRADS, lr=lr, momentum=lam), want)


@pytest.mark.parametrize("lam", [0.9, 0.5])
def test_momentum_differs_from_torch_sgd_after_lr_change(lam: float) -> None:
    # Constant gradient c, lr η₁ for two steps, then η₂ for one.
    c, eta1, eta2 = 2.0, 0.1, 0.01
    grads, lrs = [[c, c]] * 3, [eta1, eta1, eta2]
    # Lecture: m accumulates lr-scaled steps: m¹ = −η₁c, m² = λm¹ − η₁c, m³ = λm² − η₂c.
    m1 = -eta1 * c
    m2 = lam * m1 - eta1 * c
    m3 = lam * m2 - eta2 * c
    lecture_want = [1 + m1, 1 + m1 + m2, 1 + m1 + m2 + m3]
    # PyTorch: b accumulates gradients and is scaled by the current lr: b¹ = c, b² = λc + c,
    # b³ = λb² + c, θ −= η·b.
    b1, b2 = c, lam * c + c
    b3 = lam * b2 + c
    torch_want = [1 - eta1 * b1, 1 - eta1 * b1 - eta1 * b2, 1 - eta1 * b1 - eta1 * b2 - eta2 * b3]
    lecture = [row[0] for row in _run(optim.Momentum, grads, lrs, lr=eta1, momentum=lam)]
    sgd = [row[0] for row in _run(torch.optim.SGD, grads, lrs, lr=eta1, momentum=lam)]
    assert lecture == pytest.approx(lecture_want, rel=1e-12)
    assert sgd == pytest.approx(torch_want, rel=1e-12)
    # Equal while η is constant, different once it changes.
    assert lecture[:2] == pytest.approx(sgd[:2], rel=1e-12)
    assert abs(lecture[2] - sgd[2]) > 0.01
