"""Typed configuration: every supported field type is coerced or refused with a message naming the
file and key; files load from TOML and JSON; resolved configs save and load back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from trainlab.config import from_dict, load_config, read_mapping, save_config, to_dict
from trainlab.errors import ConfigError


@dataclass
class Inner:
    width: int = 8
    rate: float = 0.5


@dataclass
class Settings:
    name: str = "run"
    epochs: int = 3
    lr: float = 1e-3
    flag: bool = False
    kind: Literal["mlp", "cnn"] = "mlp"
    maybe: int | None = None
    either: int | str = 0
    sizes: list[int] = field(default_factory=lambda: [1, 2])
    pair: tuple[float, ...] = (0.9, 0.999)
    names: Sequence[str] = ("a",)
    extra: dict[str, Any] = field(default_factory=dict)
    anything: Any = None
    inner: Inner = field(default_factory=Inner)
    maybe_inner: Inner | None = None
    path: Path = Path("x")


def build(**data: Any) -> Settings:
    return from_dict(Settings, data, source="run.toml")


def test_defaults_and_missing_keys():
    assert build() == Settings()


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("name", "x", "x"),
        ("epochs", 5, 5),
        ("lr", 1, 1.0),  # an integer is a fine number
        ("lr", 0.25, 0.25),
        ("flag", True, True),
        ("kind", "cnn", "cnn"),
        ("maybe", None, None),
        ("maybe", 4, 4),
        ("either", "s", "s"),
        ("either", 7, 7),
        ("sizes", (3, 4), [3, 4]),
        ("pair", [0.5, 1], (0.5, 1.0)),
        ("names", ["p", "q"], ["p", "q"]),
        ("extra", {"k": [1]}, {"k": [1]}),
        ("anything", {"free": object}, {"free": object}),
        ("inner", {"width": 2}, Inner(width=2)),
        ("inner", Inner(width=5), Inner(width=5)),
        ("maybe_inner", {"rate": 1}, Inner(rate=1.0)),
        ("maybe_inner", None, None),
        ("path", "a/b", "a/b"),  # types without a rule pass through unchanged
    ],
)
def test_coercion(key, value, expected):
    got = getattr(build(**{key: value}), key)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("name", 3, "run.toml: name: expected a string, got 3"),
        ("epochs", 2.0, "run.toml: epochs: expected an integer, got 2.0"),
        ("epochs", True, "run.toml: epochs: expected an integer, got True"),
        ("epochs", "3", "expected an integer, got '3'"),
        ("lr", "fast", "run.toml: lr: expected a number, got 'fast'"),
        ("lr", False, "run.toml: lr: expected a number, got False"),
        ("flag", 1, "run.toml: flag: expected true or false, got 1"),
        ("kind", "rnn", "run.toml: kind: must be one of 'mlp', 'cnn', got 'rnn'"),
        ("maybe", "4", "run.toml: maybe: expected an integer"),
        ("either", 1.5, "run.toml: either: expected an integer, got 1.5"),
        ("sizes", 3, "run.toml: sizes: expected a list, got 3"),
        ("sizes", [1, "2"], "run.toml: sizes: expected an integer, got '2'"),
        ("names", "ab", "run.toml: names: expected a list"),
        ("pair", [0.5, "x"], "run.toml: pair: expected a number"),
        ("extra", [1], "run.toml: extra: expected a table, got \\[1\\]"),
        ("inner", {"width": "w"}, "run.toml: inner: width: expected an integer"),
        ("inner", {"depth": 3}, "run.toml: inner: unknown setting\\(s\\) depth for Inner"),
        ("inner", 3, "run.toml: inner: expected a table of settings, got int"),
        ("maybe_inner", {"rate": "r"}, "maybe_inner: rate: expected a number"),
    ],
)
def test_wrong_types_name_the_file_and_key(key, value, message):
    with pytest.raises(ConfigError, match=message) as e:
        build(**{key: value})
    assert "\n" not in str(e.value)


def test_unknown_keys_are_listed_with_the_known_ones():
    with pytest.raises(
        ConfigError, match=r"run.toml: unknown setting\(s\) ephocs, zz for Settings; known: "
    ):
        build(ephocs=3, zz=1)
    with pytest.raises(ConfigError, match="expected a table of settings, got list"):
        from_dict(Settings, [1], source="run.toml")  # type: ignore[arg-type]


def test_to_dict_is_plain_json_data():
    d = to_dict(build(pair=[1, 2], maybe_inner={"width": 1}))
    assert d["pair"] == [1.0, 2.0] and d["inner"] == {"width": 8, "rate": 0.5}
    assert d["maybe_inner"] == {"width": 1, "rate": 0.5} and d["path"] == "x"
    assert json.loads(json.dumps(d)) == d


def test_read_mapping_toml_and_json(tmp_path):
    (tmp_path / "a.toml").write_text("epochs = 4\n[inner]\nwidth = 2\n")
    (tmp_path / "a.json").write_text('{"epochs": 4, "inner": {"width": 2}}')
    assert read_mapping(tmp_path / "a.toml") == read_mapping(tmp_path / "a.json")


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("bad.toml", "epochs = = 4", "bad.toml: not valid TOML"),
        ("bad.json", "{epochs: 4", "bad.json: not valid JSON"),
        ("list.json", "[1, 2]", "list.json: the top level must be a table of settings"),
    ],
)
def test_read_mapping_errors(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_mapping(tmp_path / name)


def test_read_mapping_missing_and_undecodable(tmp_path):
    with pytest.raises(ConfigError, match="nope.toml: config file not found"):
        read_mapping(tmp_path / "nope.toml")
    (tmp_path / "latin.toml").write_bytes(b'name = "caf\xe9"')
    with pytest.raises(ConfigError, match="latin.toml: not valid TOML"):
        read_mapping(tmp_path / "latin.toml")


def test_load_config_layers_defaults_file_and_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("epochs = 9\nlr = 0.1\n")
    cfg = load_config(Settings, path, lr=0.5, name=None)  # None means "not given"
    assert (cfg.epochs, cfg.lr, cfg.name) == (9, 0.5, "run")
    assert load_config(Settings, epochs=2).epochs == 2
    path.write_text("epochs = 'many'\n")
    with pytest.raises(ConfigError, match=f"{path}: epochs: expected an integer"):
        load_config(Settings, path)


def test_save_config_loads_back(tmp_path):
    cfg = build(epochs=7, inner={"width": 3}, pair=[0.1, 0.2], kind="cnn")
    save_config(cfg, tmp_path / "config.json")
    again = load_config(Settings, tmp_path / "config.json")
    assert to_dict(again) == to_dict(cfg)
    assert again.inner == Inner(width=3) and again.pair == (0.1, 0.2)
