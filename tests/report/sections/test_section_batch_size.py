"""Section 4: costs, gradient noise and training per batch size, then rendered."""

from __future__ import annotations

import pytest
import torch

from trainlab.nn.mlp import mlp
from trainlab.report.sections import batch_size
from trainlab.report.sections.batch_size import CHAPTER_TABLE

TINY = batch_size.Config(
    batch_sizes=[4, 32, 5000],
    epochs=2,
    hidden=[8],
    max_train=128,
    timing_repeats=3,
    noise_samples=8,
    equal_updates=6,
)


@pytest.fixture(scope="module")
def result(measured):
    return measured(batch_size, TINY)


def test_counts_and_budgets(result):
    _, m = result
    assert m.n_train == 128 and m.sizes == [4, 32, 128]  # capped at the training set
    per = m.per_batch_size
    assert [per[b]["updates_per_epoch"] for b in m.sizes] == [32, 4, 1]
    assert [per[b]["equal_updates_epochs"] for b in m.sizes] == [6 * 4 / 128, 6 * 32 / 128, 6.0]
    assert all(len(m.curves[b]) == TINY.epochs for b in m.sizes)
    assert all(per[b]["time_per_update_ms"] > 0 and per[b]["time_per_epoch_s"] > 0 for b in m.sizes)
    ratio = per[128]["time_per_update_ms"] / per[4]["time_per_update_ms"]
    assert m.update_time_ratio_large_small == ratio


def test_gradient_noise_and_the_chapters_rows(result):
    _, m = result
    per = m.per_batch_size
    assert per[128]["gradient_noise"] == 0.0  # the full batch is the gradient
    assert per[4]["gradient_noise"] > per[32]["gradient_noise"] > 0
    ratio = per[4]["relative_gradient_noise"] / per[4]["gradient_noise"]
    assert per[32]["relative_gradient_noise"] / per[32]["gradient_noise"] == pytest.approx(ratio)
    assert list(m.agrees) == [row[0] for row in CHAPTER_TABLE]
    assert m.agrees["gradient"] is True
    assert m.agrees["optimisation"] == (per[4]["train_loss"] < per[128]["train_loss"])
    assert m.equal_updates_small_better_optimisation == (
        per[4]["equal_updates_train_loss"] < per[128]["equal_updates_train_loss"]
    )


def test_exact_number_of_updates():
    x, y = torch.randn(10, 3), torch.arange(10)
    batches = list(batch_size._Updates(x, y, b=4, updates=7, seed=0))
    assert len(batches) == 7
    # each pass is a permutation: the first 3 batches (4 + 4 + 2) hold every row once
    seen = torch.cat([yb for _, yb in batches[:3]])
    assert sorted(seen.tolist()) == list(range(10))


def test_gradient_noise_follows_sampling_theory():
    torch.manual_seed(0)
    x, y = torch.randn(256, 8), torch.randint(0, 3, (256,))
    model = mlp(8, [16], 3)
    full = batch_size._gradient(model, x, y)
    n4 = batch_size._gradient_noise(model, x, y, 4, full, 300, seed=0)
    n64 = batch_size._gradient_noise(model, x, y, 64, full, 300, seed=0)
    # E||g_B - g||^2 is proportional to (1/B - 1/N) when drawing without replacement
    expected = (1 / 4 - 1 / 256) / (1 / 64 - 1 / 256)
    assert n4 / n64 == pytest.approx(expected, rel=0.25)
    assert batch_size._gradient_noise(model, x, y, 256, full, 5, seed=0) == 0.0


def test_render(result, check_rendered):
    ctx, m = result
    rendered = check_rendered(batch_size, ctx, TINY, m)
    chapter, detail = rendered.tables
    assert [row[-1] for row in chapter.rows] == list(m.agrees.values())
    assert [row[0] for row in detail.rows] == m.sizes
    assert "batch 4 vs 128" in rendered.verdict.text
