"""Mixed precision: bf16 autocast on CUDA and on CPUs with native bf16, float32 elsewhere."""

from __future__ import annotations

import pytest
import torch

from trainlab.train import _forward
from trainlab.train._forward import autocast, cpu_has_bf16


def _out_dtype(amp: bool) -> torch.dtype:
    layer = torch.nn.Linear(4, 3)
    with autocast(torch.device("cpu"), amp):
        return layer(torch.randn(2, 4)).dtype


def test_amp_computes_in_bf16_on_a_cpu_that_has_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(_forward, "cpu_has_bf16", lambda: True)
    assert _out_dtype(amp=True) == torch.bfloat16
    assert _out_dtype(amp=False) == torch.float32


def test_amp_is_ignored_on_a_cpu_without_native_bf16(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(_forward, "cpu_has_bf16", lambda: False)
    assert _out_dtype(amp=True) == torch.float32


def test_cpu_has_bf16_answers_a_bool_and_survives_a_missing_backend(
    monkeypatch: pytest.MonkeyPatch,
):
    assert isinstance(cpu_has_bf16(), bool)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert cpu_has_bf16() is False


def test_fit_with_amp_trains_a_cpu_model_to_finite_weights(monkeypatch: pytest.MonkeyPatch):
    from trainlab.train import TrainConfig, fit

    monkeypatch.setattr(_forward, "cpu_has_bf16", lambda: True)
    torch.manual_seed(0)
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    model = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    seen: list[torch.dtype] = []
    model[0].register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    cfg = TrainConfig(
        epochs=3, batch_size=16, optimizer_kwargs={"lr": 1e-2}, device="cpu", quiet=True, amp=True
    )
    history = fit(model, torch.nn.CrossEntropyLoss(), (x, y), config=cfg)
    losses = history["train_loss"]
    assert seen and set(seen) == {torch.bfloat16}  # training and validation ran in bf16
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert losses[-1] < losses[0] and all(p.dtype == torch.float32 for p in model.parameters())
