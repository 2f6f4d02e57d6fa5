"""Small name -> factory registries (optimizers, schedules, initialisers, models, tasks).

A registry is a dict plus a decorator: ``@OPTIMIZERS.register("adam")``. Names listed by
``registry.names()`` feed the command line's choices and the parametrised tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from trainlab.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


class Registry(Generic[F]):
    """Maps names to factories; unknown names give an error that lists the known ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, F] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, help: str = "") -> Callable[[F], F]:
        """Decorator: register the decorated factory under ``name``."""

        def deco(fn: F) -> F:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = fn
            self._help[name] = help or (fn.__doc__ or "").strip().split("\n")[0]
            return fn

        return deco

    def get(self, name: str) -> F:
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def help(self, name: str) -> str:
        return self._help[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
