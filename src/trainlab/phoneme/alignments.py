"""Time-aligned phone labels: TIMIT ``.PHN`` files and Praat TextGrids, folded to the 39 phones.

Two sources are read:

* TIMIT ``.PHN``: ``start end phone`` per line, sample offsets at 16 kHz, the 61-phone set;
* Praat TextGrids as the Montreal Forced Aligner writes them: a ``phones`` tier in ARPAbet with
  stress digits (``AH0``), ``sil``/``sp``/``spn``/empty intervals for silence and noise.

Both fold to the 39 classes of Lee & Hon (1989) ("Speaker-independent phone recognition using
hidden Markov models"): closures, pauses, epenthetic silence and ``h#`` become ``sil``; ``q`` (the
glottal stop) gets no class, so frames under it carry no label (the featurizer drops them from the
training rows, keeping their audio as context for the neighbouring frames); ``ao -> aa``,
``zh -> sh``, ``ax/ax-h -> ah``, ``axr -> er``, ``hv -> hh``, ``ix -> ih``, ``el -> l``,
``em -> m``, ``en/nx -> n``, ``eng -> ng``, ``ux -> uw``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainlab.errors import DataError
from trainlab.phoneme._textgrid import read_textgrid
from trainlab.phoneme.files import PHONE_TO_INDEX, PHONES

TIMIT_SAMPLE_RATE = 16000
ALIGNMENT_SUFFIXES = (".phn", ".textgrid")

# Everything not listed maps to itself (the 39 target phones).
FOLD: dict[str, str | None] = {
    # TIMIT 61 -> 39 (Lee & Hon 1989)
    "bcl": "sil", "dcl": "sil", "gcl": "sil", "pcl": "sil", "tcl": "sil", "kcl": "sil",
    "pau": "sil", "epi": "sil", "h#": "sil", "q": None,
    "ao": "aa", "zh": "sh", "ax": "ah", "ax-h": "ah", "axr": "er", "hv": "hh", "ix": "ih",
    "el": "l", "em": "m", "en": "n", "nx": "n", "eng": "ng", "ux": "uw",
    # Montreal Forced Aligner silence / noise marks
    "": "sil", "sp": "sil", "spn": "sil", "sil": "sil",
}  # fmt: skip


def fold_phone(label: str) -> str | None:
    """Fold one phone label to the 39-phone set (``None`` for ``q``).

    Case and ARPAbet stress digits are ignored (``AH0`` -> ``ah``).

    Raises:
        KeyError: the label is not a TIMIT, ARPAbet or MFA silence label.
    """
    p = label.strip().lower().rstrip("012")
    if p in FOLD:
        return FOLD[p]
    if p in PHONE_TO_INDEX:
        return p
    raise KeyError(label)


@dataclass
class Alignment:
    """Phone segments of one utterance, folded to the 39 classes.

    Attributes:
        starts, ends: (S,) float64 segment times in seconds.
        labels: (S,) int64 class indices into :data:`PHONES`; -1 where the segment has no class (q).
        source: the file it came from.
    """

    starts: np.ndarray
    ends: np.ndarray
    labels: np.ndarray
    source: Path | None = None

    @property
    def duration(self) -> float:
        return float(self.ends[-1]) if len(self.ends) else 0.0

    @property
    def speech_end(self) -> float:
        """End of the last segment that is not silence.

        Aligners pad a trailing silence that may run past the audio (MFA does); only speech past
        the end of the audio means the labels and the audio do not belong together.
        """
        speech = np.flatnonzero(self.labels != PHONE_TO_INDEX["sil"])
        return float(self.ends[speech[-1]]) if len(speech) else 0.0

    def phones(self) -> list[str | None]:
        return [PHONES[k] if k >= 0 else None for k in self.labels.tolist()]

    def frame_labels(
        self, num_frames: int, frame_shift: float = 0.010, frame_length: float = 0.025
    ) -> np.ndarray:
        """The class under each frame's centre (``t * shift + length / 2``), -1 where none.

        Frames whose centre is in no segment (a gap, past the end, or under ``q``) get -1.

        Returns:
            (num_frames,) int64.
        """
        if not len(self.ends):
            return np.full(num_frames, -1, dtype=np.int64)
        # integer ticks of 0.1 us, so a centre on a boundary is decided exactly (not by rounding)
        tick = 1e7
        centres = np.arange(num_frames, dtype=np.int64) * round(frame_shift * tick) + round(
            frame_length * tick / 2
        )
        starts, ends = np.rint(self.starts * tick), np.rint(self.ends * tick)
        # segment k holds [starts[k], ends[k]): the first segment ending after the centre
        k = np.searchsorted(ends, centres, side="right")
        k_safe = np.minimum(k, len(ends) - 1)
        inside = (k < len(ends)) & (starts[k_safe] <= centres)
        return np.where(inside, self.labels[k_safe], -1).astype(np.int64)


def read_alignment(path: str | Path, tier: str = "phones") -> Alignment:
    """Read a ``.PHN`` or ``.TextGrid`` file (chosen by suffix, any case).

    Args:
        path: the alignment file.
        tier: the TextGrid tier holding phones (case-insensitive; ``phone`` is also accepted).

    Raises:
        DataError: unreadable file, malformed lines, unknown phone labels, no phone tier.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".phn":
        return read_phn(path)
    if suffix == ".textgrid":
        return read_textgrid_phones(path, tier)
    raise DataError(path, f"unknown alignment format {path.suffix!r}; expected .PHN or .TextGrid")


def read_phn(path: str | Path, sample_rate: int = TIMIT_SAMPLE_RATE) -> Alignment:
    """Read a TIMIT ``.PHN`` file (``start_sample end_sample phone`` per line)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise DataError(path, f"cannot read the alignment: {e.strerror}") from None
    starts, ends, labels = [], [], []
    for n, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise DataError(path, f"line {n}: expected 'start end phone', got {line.strip()!r}")
        try:
            a, b = int(parts[0]), int(parts[1])
        except ValueError:
            raise DataError(
                path, f"line {n}: sample offsets must be integers, got {line.strip()!r}"
            ) from None
        if b < a:
            raise DataError(path, f"line {n}: the segment ends ({b}) before it starts ({a})")
        starts.append(a / sample_rate)
        ends.append(b / sample_rate)
        labels.append(_fold(parts[2], path, n))
    return _make(path, starts, ends, labels)


def read_textgrid_phones(path: str | Path, tier: str = "phones") -> Alignment:
    """Read the phone tier of a Praat TextGrid (MFA output)."""
    path = Path(path)
    tiers = read_textgrid(path)
    wanted = {tier.lower(), "phone"} if tier.lower() == "phones" else {tier.lower()}
    found = [t for t in tiers if t.name.strip().lower() in wanted and t.kind == "IntervalTier"]
    if not found:
        names = ", ".join(repr(t.name) for t in tiers) or "none"
        raise DataError(path, f"no interval tier named {tier!r} (tiers: {names})")
    starts, ends, labels = [], [], []
    for n, (a, b, text) in enumerate(found[0].items, start=1):
        if b < a:
            raise DataError(path, f"interval {n}: xmax {b} is before xmin {a}")
        starts.append(a)
        ends.append(b)
        labels.append(_fold(text, path, n, what="interval"))
    return _make(path, starts, ends, labels)


def find_alignments(root: str | Path) -> dict[str, Path]:
    """Map utterance id (file stem) -> alignment file, searching ``root`` recursively.

    Raises:
        DataError: ``root`` is missing, or two alignment files share a stem.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "alignment folder not found")
    found: dict[str, Path] = {}
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in ALIGNMENT_SUFFIXES and p.is_file():
            if p.stem in found:
                raise DataError(
                    p, f"utterance id {p.stem!r} also has an alignment at {found[p.stem]}"
                )
            found[p.stem] = p
    return found


def _fold(label: str, path: Path, n: int, what: str = "line") -> int:
    try:
        p = fold_phone(label)
    except KeyError:
        raise DataError(path, f"{what} {n}: unknown phone label {label!r}") from None
    return -1 if p is None else PHONE_TO_INDEX[p]


def _make(path: Path, starts: list[float], ends: list[float], labels: list[int]) -> Alignment:
    if not starts:
        raise DataError(path, "the alignment holds no segments")
    s = np.asarray(starts, dtype=np.float64)
    e = np.asarray(ends, dtype=np.float64)
    if not (np.isfinite(s).all() and np.isfinite(e).all()) or s[0] < 0:
        raise DataError(path, f"impossible segment times (the first starts at {s[0]} s)")
    if (np.diff(s) < 0).any() or (np.diff(e) < 0).any() or (s[1:] < e[:-1] - 1e-9).any():
        raise DataError(path, "segments overlap or are not in time order")
    return Alignment(s, e, np.asarray(labels, dtype=np.int64), path)
