"""COVID settings: presets, TOML/JSON files, the fallback table."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainlab.covid.config import PRESETS, CovidConfig, load_covid_config, preset
from trainlab.errors import ConfigError


def test_presets_and_config_files(tmp_path: Path) -> None:
    sample = preset("sample")
    assert (
        sample.features == "all"
        and sample.model.widths == [64]
        and sample.model.activation == "relu"
    )
    assert sample.train.optimizer == "sgd" and sample.train.optimizer_kwargs == {
        "lr": 1e-3,
        "momentum": 0.9,
    }
    assert (sample.train.batch_size, sample.train.epochs, sample.train.patience) == (270, 3000, 200)
    assert sample.validation == "course" and sample.target == "raw" and sample.loss == "mse"
    default = preset("default")
    assert default.validation == "blocked"
    path = tmp_path / "c.toml"
    path.write_text(
        'preset = "sample"\nfeatures = "survey14"\n[train]\nepochs = 7\n[model]\nwidths = [8, 4]\n'
    )
    cfg = load_covid_config(path, seed=5)
    assert cfg.features == "survey14" and cfg.train.epochs == 7 and cfg.model.widths == [8, 4]
    assert cfg.train.optimizer == "sgd" and cfg.train.patience == 200  # kept from the preset
    assert cfg.seed == 5 and cfg.train.seed == 5
    path.write_text("bogus = 1\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_covid_config(path)
    with pytest.raises(ConfigError, match="unknown validation scheme"):
        load_covid_config(overrides={"validation": "future"})
    with pytest.raises(ConfigError, match="unknown preset"):
        load_covid_config(preset_name="best")


def test_config_files_match_the_presets() -> None:
    from trainlab.config import to_dict

    configs = Path(__file__).resolve().parents[2] / "configs"
    assert to_dict(load_covid_config(configs / "covid_default.toml")) == to_dict(preset("default"))
    assert to_dict(load_covid_config(configs / "covid_sample.toml")) == to_dict(preset("sample"))


def test_fallback_table_overrides_only_its_networks() -> None:
    cfg = load_covid_config(
        overrides={"fallback": {"model": {"widths": [4, 2]}, "train": {"epochs": 9}}}
    )
    fb = cfg.fallback_config()
    assert fb.model.widths == [4, 2] and fb.train.epochs == 9 and fb.loss == "huber"
    assert fb.train.optimizer_kwargs == {"lr": 3e-3}  # kept from the preset's table
    assert cfg.model.widths == [] and cfg.train.epochs == 800
    with pytest.raises(ConfigError, match="fallback: unknown setting"):
        load_covid_config(overrides={"fallback": {"folds": 3}})
    assert preset("sample").fallback_config().model.widths == [64]


@pytest.mark.parametrize("name", PRESETS.names())
def test_every_preset_is_a_valid_config_that_loads_by_name(name: str) -> None:
    from trainlab.config import to_dict

    cfg = preset(name)
    assert isinstance(cfg, CovidConfig) and PRESETS.help(name)
    assert preset(name) is not cfg  # a fresh copy each time
    assert to_dict(load_covid_config(preset_name=name)) == to_dict(cfg)
    assert to_dict(cfg.fallback_config()) == to_dict(cfg.fallback_config())
