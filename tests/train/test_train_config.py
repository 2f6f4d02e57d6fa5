"""TrainConfig refuses impossible settings when it is built, naming the setting."""

from __future__ import annotations

import pytest

from trainlab.config import from_dict, to_dict
from trainlab.errors import ConfigError
from trainlab.optim import list_optimizers, list_schedulers
from trainlab.train import TrainConfig


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"epochs": 0}, "epochs must be at least 1, got 0"),
        ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
        ({"checkpoint_every": 0}, "checkpoint_every must be at least 1"),
        ({"steps_per_epoch": 0}, "steps_per_epoch must be at least 1"),
        ({"eval_batch_size": -1}, "eval_batch_size must be at least 1"),
        ({"optimizer_kwargs": {"lr": 0.0}}, "optimizer_kwargs.lr must be a positive number"),
        ({"optimizer_kwargs": {"lr": -1e-3}}, "optimizer_kwargs.lr must be a positive number"),
        ({"optimizer_kwargs": {"lr": float("nan")}}, "optimizer_kwargs.lr"),
        ({"optimizer_kwargs": {"lr": "fast"}}, "optimizer_kwargs.lr"),
        ({"weight_decay": -0.1}, "weight_decay must be >= 0, got -0.1"),
        ({"optimizer_kwargs": {"lr": 0.1, "weight_decay": -1}}, "optimizer_kwargs.weight_decay"),
        ({"grad_clip": 0.0}, "grad_clip must be positive"),
        ({"grad_clip": -1.0}, "grad_clip must be positive"),
        ({"mode": "up"}, "mode must be 'min' or 'max'"),
        ({"patience": 0}, "patience must be at least 1"),
        ({"min_delta": -1.0}, "min_delta must be >= 0"),
        ({"log_every": -1}, "log_every must be >= 0"),
        ({"device": "tpu"}, "device must be auto, cpu, cuda, cuda:N or mps"),
        ({"scheduler": "cosine", "scheduler_kwargs": {"bogus": 1}}, "scheduler_kwargs: cosine"),
        (
            {"optimizer": "adam", "optimizer_kwargs": {"lr": 0.1, "betas": (1.5, 0.9)}},
            "optimizer_kwargs: adam refuses them",
        ),  # fmt: skip
    ],
)
def test_impossible_settings_are_refused(kw, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(**kw)


def test_unknown_optimizer_names_the_setting_and_the_choices():
    with pytest.raises(
        ConfigError, match="optimizer: unknown optimizer 'nope'; choose one of: "
    ) as e:
        TrainConfig(optimizer="nope")
    assert all(name in str(e.value) for name in list_optimizers())


def test_unknown_scheduler_names_the_setting_and_the_choices():
    with pytest.raises(
        ConfigError, match="scheduler: unknown schedule 'cosin'; choose one of: "
    ) as e:
        TrainConfig(scheduler="cosin")
    assert all(name in str(e.value) for name in list_schedulers())


def test_every_registered_name_is_accepted():
    for name in list_optimizers():
        TrainConfig(optimizer=name)
    for name in list_schedulers():
        TrainConfig(scheduler=name)


def test_defaults_are_valid_and_round_trip():
    cfg = TrainConfig(steps_per_epoch=10, grad_clip=1.0)
    assert from_dict(TrainConfig, to_dict(cfg)) == cfg


def test_validation_applies_to_configs_loaded_from_files():
    with pytest.raises(ConfigError, match="epochs must be at least 1"):
        from_dict(TrainConfig, {"epochs": 0})
