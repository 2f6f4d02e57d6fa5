"""Learning-rate schedules: every registered one behaves as a per-step LRScheduler; each has the
shape its formula says."""

from __future__ import annotations

import math

import pytest
import torch

from trainlab.errors import ConfigError
from trainlab.optim import (
    cosine_factor,
    create_optimizer,
    create_scheduler,
    list_schedulers,
    schedule_factors,
    step_factor,
    transformer_factor,
    warmup_factor,
)

TOTAL = 60
# Settings that exercise each schedule within TOTAL steps; unlisted ones use their defaults.
KWARGS: dict[str, dict[str, float]] = {
    "warmup": {"warmup_steps": 10},
    "cosine": {"warmup_steps": 5, "min_factor": 0.1},
    "step": {"step_size": 20, "gamma": 0.5},
    "transformer": {"d_model": 64, "warmup_steps": 10},
}


def _lrs(
    scheduler: torch.optim.lr_scheduler.LRScheduler, optimizer: torch.optim.Optimizer, n: int
) -> list[float]:
    out = []
    for _ in range(n):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_registry_has_the_schedules() -> None:
    assert {"constant", "warmup", "cosine", "step", "transformer"} <= set(list_schedulers())


@pytest.mark.parametrize("name", list_schedulers())
def test_every_schedule_runs_and_resumes(name: str) -> None:
    p = torch.zeros(2, requires_grad=True)
    opt = create_optimizer("adam", [p], lr=0.5)
    sched = create_scheduler(name, opt, TOTAL, **KWARGS.get(name, {}))
    assert isinstance(sched, torch.optim.lr_scheduler.LRScheduler)
    straight = _lrs(sched, opt, TOTAL)
    assert all(math.isfinite(lr) and lr >= 0 for lr in straight)
    assert [lr / 0.5 for lr in straight] == pytest.approx(
        schedule_factors(name, TOTAL, **KWARGS.get(name, {}))
    )

    # Interrupt after 25 steps, restore both state dicts, continue: the same learning rates.
    opt = create_optimizer("adam", [p], lr=0.5)
    sched = create_scheduler(name, opt, TOTAL, **KWARGS.get(name, {}))
    first = _lrs(sched, opt, 25)
    states = (opt.state_dict(), sched.state_dict())
    opt = create_optimizer("adam", [p], lr=0.5)
    sched = create_scheduler(name, opt, TOTAL, **KWARGS.get(name, {}))
    opt.load_state_dict(states[0])
    sched.load_state_dict(states[1])
    assert first + _lrs(sched, opt, TOTAL - 25) == pytest.approx(straight)


def test_warmup_is_linear_then_constant() -> None:
    f = schedule_factors("warmup", TOTAL, warmup_steps=10)
    assert f[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert f[10:] == [1.0] * (TOTAL - 10)
    assert schedule_factors("warmup", 100)[:10] == pytest.approx(
        [(i + 1) / 10 for i in range(10)]
    )  # default 10%
    assert warmup_factor(0, 0) == 1.0


def test_cosine_shape() -> None:
    w, total, lo = 10, 110, 0.1
    f = [cosine_factor(s, total, w, lo) for s in range(total + 5)]
    assert f[:w] == pytest.approx([(i + 1) / w for i in range(w)])
    assert f[w] == pytest.approx(1.0)
    assert f[w + 50] == pytest.approx((1 + lo) / 2)  # halfway through the decay
    assert f[total] == pytest.approx(lo) and f[-1] == pytest.approx(lo)
    assert all(a >= b for a, b in zip(f[w:], f[w + 1 :]))
    assert schedule_factors("cosine", 100)[0] == 1.0  # no warm-up by default


def test_step_shape() -> None:
    f = [step_factor(s, step_size=20, gamma=0.5, warmup_steps=4) for s in range(70)]
    assert f[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert f[4:24] == [1.0] * 20 and f[24:44] == [0.5] * 20 and f[44:64] == [0.25] * 20
    assert schedule_factors("step", 90)[::30] == pytest.approx([1.0, 0.1, 0.01])  # default: thirds


def test_transformer_matches_paper_with_lr_one() -> None:
    d_model, warmup = 512, 4000
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=1.0)
    sched = create_scheduler("transformer", opt, 10_000, d_model=d_model, warmup_steps=warmup)
    lrs = _lrs(sched, opt, 8000)
    for step_num in (1, 100, 3999, 4000, 4001, 8000):
        paper = d_model**-0.5 * min(step_num**-0.5, step_num * warmup**-1.5)
        assert lrs[step_num - 1] == pytest.approx(paper, rel=1e-12)
    assert max(lrs) == pytest.approx(d_model**-0.5 * warmup**-0.5)  # the peak, at step_num = warmup
    assert lrs.index(max(lrs)) == warmup - 1
    assert transformer_factor(0, 512, 4000) == pytest.approx(512**-0.5 * 4000**-1.5)


def test_trainlab_adam_follows_a_schedule_like_torch_adam() -> None:
    torch.manual_seed(0)
    target = torch.randn(5, dtype=torch.float64)
    ps = [torch.zeros(5, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    opts = [create_optimizer("adam", [ps[0]], lr=0.1), torch.optim.Adam([ps[1]], lr=0.1)]
    scheds = [create_scheduler("cosine", o, 30, warmup_steps=5) for o in opts]
    for _ in range(30):
        for p, o, s in zip(ps, opts, scheds):
            o.zero_grad()
            ((p - target) ** 2).sum().backward()
            o.step()
            s.step()
    torch.testing.assert_close(ps[0], ps[1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("warmup", {"warmup_steps": -1}),
        ("cosine", {"min_factor": -0.5}),
        ("step", {"step_size": 0}),
        ("transformer", {"warmup_steps": 0}),
    ],
)
def test_bad_settings_raise_config_error(name: str, kwargs: dict[str, float]) -> None:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    with pytest.raises(ConfigError, match="schedule"):
        create_scheduler(name, opt, 100, **kwargs)
    with pytest.raises(ConfigError, match="total_steps"):
        create_scheduler(name, opt, 0)


def test_unknown_schedule_is_an_error_listing_the_known_names() -> None:
    from trainlab.train import TrainConfig

    p = torch.zeros(2, requires_grad=True)
    opt = create_optimizer("sgd", [p], lr=0.1)
    with pytest.raises(ConfigError, match="unknown schedule 'cosin'; choose one of: ") as e:
        create_scheduler("cosin", opt, TOTAL)
    assert all(name in str(e.value) for name in list_schedulers())
    with pytest.raises(ConfigError, match="unknown schedule"):
        schedule_factors("cosin", TOTAL)
    with pytest.raises(ConfigError, match="^scheduler: unknown schedule 'cosin'"):
        TrainConfig(scheduler="cosin")
