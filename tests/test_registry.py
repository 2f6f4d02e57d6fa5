"""Registries: a decorator registers a factory under a name; unknown names list the known ones."""

from __future__ import annotations

import pytest

from trainlab.errors import ConfigError
from trainlab.registry import Registry


def make() -> Registry:
    reg: Registry = Registry("widget")

    @reg.register("b", "the b widget")
    def b() -> str:
        return "B"

    @reg.register("a")
    def a() -> str:
        """Builds an a.

        More text that is not the help line.
        """
        return "A"

    return reg


def test_register_get_and_list():
    reg = make()
    assert reg.get("a")() == "A" and reg.get("b")() == "B"
    assert reg.names() == ["a", "b"] and list(reg) == ["a", "b"]
    assert len(reg) == 2 and "a" in reg and "c" not in reg and 3 not in reg


def test_decorator_returns_the_factory_unchanged():
    reg: Registry = Registry("widget")

    def f() -> int:
        return 1

    assert reg.register("f")(f) is f


def test_help_from_the_argument_or_the_docstrings_first_line():
    reg = make()
    assert reg.help("b") == "the b widget"
    assert reg.help("a") == "Builds an a."
    reg.register("c")(lambda: None)
    assert reg.help("c") == ""


def test_unknown_name_is_a_config_error_listing_the_choices():
    with pytest.raises(ConfigError, match=r"^unknown widget 'z'; choose one of: a, b$"):
        make().get("z")
    with pytest.raises(ConfigError, match="choose one of: $"):
        Registry("widget").get("z")


def test_a_name_registers_once():
    reg = make()
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        reg.register("a")(lambda: None)
    assert reg.get("a")() == "A"


def test_registries_are_independent():
    one, two = make(), Registry("widget")
    two.register("x")(lambda: 0)
    assert one.names() == ["a", "b"] and two.names() == ["x"]
