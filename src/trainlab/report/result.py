"""What a report section produces: figures, tables, numbers and a one-sentence verdict.

A section works in two steps. Its measurement returns plain data (a :class:`Measurement`: the
numbers that go into ``results.json``), and its rendering turns that data into a
:class:`Rendered` (prose, tables, figures, verdict). The runner joins the two with the fields every
section shares (number, key, title, claim) into a :class:`SectionResult`. The HTML page
(:mod:`trainlab.report.html`) and ``results.json`` are both rendered from these objects, so every
number the page shows is also in the JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

__all__ = [
    "Figure",
    "Measurement",
    "Rendered",
    "SectionResult",
    "SectionUnavailable",
    "Table",
    "Verdict",
    "agree_word",
]


class SectionUnavailable(Exception):
    """A section cannot run in this build (a part of trainlab it needs is missing)."""


@dataclass
class Figure:
    """A PNG written beside ``index.html``; ``file`` is relative to the report folder."""

    file: str
    caption: str
    width: int = 860  # display width in CSS pixels (the PNG itself is larger, for sharp zoom)


@dataclass
class Table:
    """A table of measured values.

    Cells hold raw values: numbers are formatted by the renderer (``formats`` maps a column to a
    format spec such as ``".3f"`` or ``".1%"``), ``True``/``False`` in an ``agree``-style column are
    shown as marks, ``None`` as a dash.
    """

    caption: str
    columns: list[str]
    rows: list[list[Any]]
    formats: dict[str, str] = field(default_factory=dict)
    mark_columns: list[str] = field(default_factory=list)  # columns of booleans shown as marks


@dataclass
class Verdict:
    """One sentence computed from the measurements, and whether they agree with the chapter.

    ``agrees`` is ``True`` (the measurements support the claim), ``False`` (they contradict it),
    or ``None`` (mixed, or the claim is not a yes/no statement).
    """

    text: str
    agrees: bool | None = None


class Measurement(Protocol):
    """What a section's measurement returns: plain data that knows its ``results.json`` form."""

    def numbers(self) -> dict[str, Any]:
        """The measured values as JSON-ready data (``SectionResult.numbers``)."""
        ...


@dataclass
class Rendered:
    """What a section's rendering step produces from its measurement."""

    experiment: str
    verdict: Verdict
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class SectionResult:
    """Everything one section of the report shows."""

    number: int
    key: str
    title: str
    claim: str = ""
    experiment: str = ""
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    verdict: Verdict | None = None
    numbers: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    rerun: str = ""
    notes: list[str] = field(default_factory=list)
    status: str = "ok"  # "ok" | "unavailable" | "failed" | "pending"
    error: str = ""
    time_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def agree_word(agrees: bool | None) -> str:
    """``True`` -> "agrees", ``False`` -> "disagrees", ``None`` -> "mixed"."""
    return {True: "agrees", False: "disagrees", None: "mixed"}[agrees]
