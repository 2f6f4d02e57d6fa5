"""A reader for Praat TextGrid files (text format, long or short), as the Montreal Forced Aligner writes.

Praat's text formats hold the same sequence of values; the long one adds ``key =`` names and
``item [1]:`` headers. Both are read by pulling out the values (quoted strings, numbers,
``<exists>``) in order and walking the object structure, as Praat's own reader does
(Boersma & Weenink, Praat manual: "TextGrid file formats").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from trainlab.errors import DataError

_TOKEN = re.compile(
    r'"(?:[^"]|"")*"'  # a string; "" is an escaped quote
    r"|\[\s*\d*\s*\]"  # item [1] / intervals [3] headers (dropped)
    r"|<exists>|<absent>"
    r"|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
)


@dataclass
class Tier:
    """One tier: intervals ``(xmin, xmax, text)`` or, for point tiers, ``(time, time, mark)``."""

    name: str
    kind: str  # "IntervalTier" or "TextTier"
    xmin: float
    xmax: float
    items: list[tuple[float, float, str]] = field(default_factory=list)


def read_textgrid(path: str | Path) -> list[Tier]:
    """Parse a TextGrid file into its tiers.

    Raises:
        DataError: the file is missing, binary, or not a well-formed TextGrid.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(path, f"cannot read the TextGrid: {e.strerror}") from None
    return parse_textgrid(_decode(raw, path), path)


def parse_textgrid(text: str, path: str | Path | None = None) -> list[Tier]:
    """Parse the text of a TextGrid (long or short format). ``path`` only names errors."""
    if not text.lstrip().startswith("File type"):
        raise DataError(path, "not a Praat text TextGrid (no 'File type' header)")
    values = [t for t in _TOKEN.findall(text) if not t.startswith("[")]
    it = iter(values)

    def nxt(what: str) -> str:
        try:
            return next(it)
        except StopIteration:
            raise DataError(path, f"the TextGrid ends early (expected {what})") from None

    def string(what: str) -> str:
        v = nxt(what)
        if not v.startswith('"'):
            raise DataError(path, f"expected a quoted {what}, got {v!r}")
        return v[1:-1].replace('""', '"')

    def number(what: str) -> float:
        v = nxt(what)
        try:
            return float(v)
        except ValueError:
            raise DataError(path, f"expected a number for {what}, got {v!r}") from None

    if string("file type") != "ooTextFile" or string("object class") != "TextGrid":
        raise DataError(path, "not a TextGrid (the header must say ooTextFile / TextGrid)")
    number("xmin")
    number("xmax")
    if nxt("tiers flag") != "<exists>":
        return []
    tiers = []
    for _ in range(int(number("tier count"))):
        kind = string("tier class")
        name = string("tier name")
        tier = Tier(name, kind, number("tier xmin"), number("tier xmax"))
        count = int(number("interval count"))
        for _ in range(count):
            if kind == "IntervalTier":
                a, b = number("interval xmin"), number("interval xmax")
                tier.items.append((a, b, string("interval text")))
            elif kind == "TextTier":
                t = number("point time")
                tier.items.append((t, t, string("point mark")))
            else:
                raise DataError(path, f"unknown tier class {kind!r}")
        tiers.append(tier)
    return tiers


def _decode(raw: bytes, path: Path) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            raise DataError(path, "not valid UTF-16 text (a damaged TextGrid?)") from None
    if raw.startswith(b"ooBinaryFile"):
        raise DataError(path, "binary TextGrids are not supported; save it as a text file in Praat")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
