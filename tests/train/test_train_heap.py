"""Keeping host memory flat: the heap trimmed every few steps, oneDNN's kernel cache capped."""

from __future__ import annotations

import sys

import pytest
import torch

from trainlab.train import TrainConfig, fit, heap
from trainlab.train.heap import TrimHeap, limit_kernel_cache, release_freed_memory


def _train(callbacks: list) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    x, y = torch.randn(64, 5), torch.randn(64, 1)
    cfg = TrainConfig(epochs=3, batch_size=8, quiet=True, seed=0)
    fit(model, torch.nn.functional.mse_loss, (x, y), config=cfg, callbacks=callbacks)
    return model.state_dict()


def test_trimming_the_heap_changes_no_weight(monkeypatch: pytest.MonkeyPatch):
    calls: list[int] = []
    monkeypatch.setattr(heap, "release_freed_memory", lambda: calls.append(1) or True)
    plain, trimmed = _train([]), _train([TrimHeap(every=5)])
    assert len(calls) == 24 // 5  # 3 epochs of 8 steps, every 5th step
    for name, w in plain.items():
        assert torch.equal(w, trimmed[name]), name


def test_release_freed_memory_says_whether_it_could():
    released = release_freed_memory()
    if sys.platform.startswith("linux") and heap._malloc_trim() is not None:
        assert released is True
    else:
        assert released is False


def test_trim_heap_rejects_a_period_below_one():
    with pytest.raises(ValueError, match="every must be >= 1"):
        TrimHeap(every=0)


def test_the_kernel_cache_cap_keeps_a_users_own_setting(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    limit_kernel_cache(8)
    assert heap.os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "8"
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "256")
    limit_kernel_cache(8)
    assert heap.os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "256"
