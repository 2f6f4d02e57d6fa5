"""The framewise phoneme classification format of Kaggle ml2021spring-hw2 (TIMIT, 39 phones).

A data folder (``timit_11/`` or its parent) holds

* ``train_11.npy``: (N, 429) float32, 11 frames x 39 features (13 MFCC + delta + delta-delta) around
  the labelled frame, frames ``t-5 .. t+5`` in that order, edge frames repeated at utterance edges;
* ``train_label_11.npy``: (N,) labels as strings ``'0' .. '38'`` (indices into :data:`PHONES`);
* ``test_11.npy``: (M, 429) float32, same layout, no labels.

Arrays are opened memory-mapped, so a 2 GB training file is read batch by batch and never copied.
The files carry no utterance boundaries; :func:`recover_utterances` finds them from the overlap of
consecutive rows (row ``i+1``'s frames 0..9 equal row ``i``'s frames 1..10 inside an utterance), or
an utterance index written by the featurizer (``train_utterances.csv``) is read when present.
Validation is split by utterance (:func:`split_by_utterance`) so no utterance is on both sides.
Rows shuffled frame by frame (MLE-bench's copy) are chained back by :mod:`trainlab.phoneme.layout`.

The 39 classes follow Lee & Hon (1989), "Speaker-independent phone recognition using hidden Markov
models", in the course's order.
"""

from __future__ import annotations

import csv
import io
import mmap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainlab._io import atomic_write_text
from trainlab.errors import DataError

PHONES: tuple[str, ...] = (
    "iy", "ih", "eh", "ae", "ah", "uw", "uh", "aa", "ey", "ay", "oy", "aw", "ow", "l", "r", "y",
    "w", "er", "m", "n", "ng", "ch", "jh", "dh", "b", "d", "dx", "g", "p", "t", "k", "z", "v", "f",
    "th", "s", "sh", "hh", "sil",
)  # fmt: skip
NUM_CLASSES = len(PHONES)  # 39
PHONE_TO_INDEX: dict[str, int] = {p: i for i, p in enumerate(PHONES)}
FEATURE_DIM = 39  # 13 MFCC + 13 delta + 13 delta-delta per frame
CONTEXT = 11  # frames per row: the labelled frame and 5 on each side
ROW_DIM = FEATURE_DIM * CONTEXT  # 429
SUBDIR = "timit_11"


@dataclass
class Utterances:
    """Utterance boundaries of a frame array: utterance ``k`` is rows ``starts[k] : starts[k] + lengths[k]``.

    Attributes:
        ids: one name per utterance (file stems from the featurizer, ``utt00000`` when recovered).
        starts: (U,) int64 first row of each utterance, increasing.
        lengths: (U,) int64 frame count of each utterance.
    """

    ids: list[str]
    starts: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_rows(self) -> int:
        return int(self.lengths.sum())

    def rows(self, which: Sequence[int] | np.ndarray) -> np.ndarray:
        """All row indices of the utterances ``which``, in utterance order. Returns (R,) int64."""
        which = np.asarray(which, dtype=np.int64)
        if which.size == 0:
            return np.zeros(0, dtype=np.int64)
        lengths = self.lengths[which]
        # offset of each row inside its utterance, added to the utterance's first row
        inner = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(
            np.cumsum(lengths) - lengths, lengths
        )
        return np.repeat(self.starts[which], lengths) + inner

    def subset(self, which: Sequence[int] | np.ndarray) -> Utterances:
        """The utterances ``which`` renumbered as if their rows were gathered in that order."""
        which = np.asarray(which, dtype=np.int64)
        lengths = self.lengths[which].copy()
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        return Utterances([self.ids[i] for i in which], starts, lengths)

    def to_csv(self, path: str | Path) -> None:
        """Write ``id,first_row,num_frames`` lines atomically."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["id", "first_row", "num_frames"])
        for uid, s, n in zip(self.ids, self.starts.tolist(), self.lengths.tolist()):
            w.writerow([uid, s, n])
        atomic_write_text(path, buf.getvalue())

    @classmethod
    def from_csv(cls, path: str | Path, num_rows: int | None = None) -> Utterances:
        """Read an index written by :meth:`to_csv`; check it tiles ``num_rows`` rows exactly."""
        path = Path(path)
        try:
            with open(path, newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
        except OSError as e:
            raise DataError(path, f"cannot read the utterance index: {e.strerror}") from None
        if not rows or [c.strip() for c in rows[0]] != ["id", "first_row", "num_frames"]:
            raise DataError(
                path, "not an utterance index: the header must be id,first_row,num_frames"
            )
        ids, starts, lengths = [], [], []
        for line_no, r in enumerate(rows[1:], start=2):
            if not r:
                continue
            try:
                uid, s, n = r[0], int(r[1]), int(r[2])
            except (IndexError, ValueError):
                raise DataError(
                    path, f"line {line_no}: expected id,first_row,num_frames, got {r}"
                ) from None
            ids.append(uid)
            starts.append(s)
            lengths.append(n)
        utts = cls(ids, np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64))
        utts.check(num_rows, path)
        return utts

    def check(self, num_rows: int | None, path: str | Path | None = None) -> None:
        """Raise :class:`DataError` unless the utterances tile rows ``0 .. num_rows`` in order."""
        if len(self) == 0:
            if num_rows:
                raise DataError(
                    path, f"the utterance index is empty but the features hold {num_rows} rows"
                )
            return
        expected = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        if (self.lengths <= 0).any() or not np.array_equal(self.starts, expected):
            raise DataError(
                path, "utterances in the index must be non-empty and consecutive from row 0"
            )
        if num_rows is not None and self.num_rows != num_rows:
            raise DataError(
                path, f"the index covers {self.num_rows} rows but the features hold {num_rows}"
            )


@dataclass
class TimitData:
    """A loaded data folder. Arrays are memory-mapped; labels are int64 class indices."""

    root: Path
    train_x: np.ndarray | None
    train_y: np.ndarray | None
    test_x: np.ndarray | None

    def train_utterances(self) -> Utterances:
        """Utterance boundaries of the training rows (index file, else recovered from overlap)."""
        if self.train_x is None:
            raise DataError(self.root, "no training features (train_11.npy)")
        return load_utterances(self.root / "train_11.npy", self.train_x)

    def test_utterances(self) -> Utterances:
        """Utterance boundaries of the test rows (index file, else recovered from overlap)."""
        if self.test_x is None:
            raise DataError(self.root, "no test features (test_11.npy)")
        return load_utterances(self.root / "test_11.npy", self.test_x)


def find_data_dir(path: str | Path) -> Path:
    """The folder holding the ``*_11.npy`` files: ``path``, ``path/timit_11`` or MLE-bench's
    ``path/timit_11/timit_11``."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "data folder not found")
    if path.is_file():
        raise DataError(path, "expected a folder holding train_11.npy / test_11.npy, got a file")
    for cand in (path, path / SUBDIR, path / SUBDIR / SUBDIR):  # the last: MLE-bench's layout
        if (cand / "train_11.npy").is_file() or (cand / "test_11.npy").is_file():
            return cand
    raise DataError(
        path, f"no train_11.npy or test_11.npy here, in {SUBDIR}/ or {SUBDIR}/{SUBDIR}/"
    )


def load_timit(path: str | Path, *, require_train: bool = True, mmap: bool = True) -> TimitData:
    """Open a data folder in the competition's layout, validating every file.

    Args:
        path: the folder (with or without the ``timit_11/`` subfolder).
        require_train: raise if ``train_11.npy`` / ``train_label_11.npy`` are missing.
        mmap: memory-map the feature arrays (default) instead of reading them.

    Returns:
        A :class:`TimitData`; absent files are ``None``.
    """
    root = find_data_dir(path)
    check_featurized(root)
    train_x = train_y = test_x = None
    if (root / "train_11.npy").is_file() or require_train:
        train_x = load_features(root / "train_11.npy", mmap=mmap)
        train_y = load_labels(root / "train_label_11.npy", len(train_x))
    if (root / "test_11.npy").is_file():
        test_x = load_features(root / "test_11.npy", mmap=mmap)
    return TimitData(root, train_x, train_y, test_x)


def check_featurized(root: Path) -> None:
    """In a folder written by ``trainlab phoneme featurize`` (it holds the manifest), every data
    file the manifest lists must be there at its listed size: a file replaced or cut since, or
    one of a second featurize copied in beside the others, is refused before any work. (Sizes,
    not hashes: reading gigabytes to hash them would cost more than the check is worth here; a
    run folder's files are hashed, :func:`trainlab.runs.verify_run`.) Kaggle's folders have no
    manifest and are not checked."""
    import json

    from trainlab.runs import MANIFEST

    manifest = root / MANIFEST
    if not manifest.is_file():
        return
    try:
        listed = json.loads(manifest.read_text(encoding="utf-8"))["files"]
        sizes = {name: int(rec["bytes"]) for name, rec in listed.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise DataError(manifest, "unreadable featurize manifest; featurize again") from None
    for name, size in sorted(sizes.items()):
        path = root / name
        if Path(name).suffix not in (".npy", ".csv"):
            continue
        if not path.is_file():
            raise DataError(path, f"missing: {MANIFEST} lists it; featurize again")
        if path.stat().st_size != size:
            raise DataError(
                path,
                f"changed since featurize wrote it ({size} bytes listed in {MANIFEST}, "
                f"{path.stat().st_size} now); featurize again",
            )


def load_features(path: str | Path, *, mmap: bool = True) -> np.ndarray:
    """Open an (N, 429) float32 feature file (memory-mapped by default), checking its layout.

    Raises:
        DataError: the file is missing, truncated, not a ``.npy`` file, or of the wrong shape/dtype.
    """
    x = _open_npy(Path(path), mmap)
    if x.ndim != 2 or x.shape[1] != ROW_DIM:
        raise DataError(
            path, f"expected features of shape (N, {ROW_DIM}) = 11 frames x 39, got {x.shape}"
        )
    if x.dtype != np.float32:
        raise DataError(path, f"expected float32 features, got {x.dtype}")
    if x.shape[0] == 0:
        raise DataError(path, "the feature file holds no rows")
    return x


def load_labels(path: str | Path, num_rows: int) -> np.ndarray:
    """Read labels (strings ``'0'..'38'`` or integers) as an (N,) int64 array of class indices.

    Raises:
        DataError: missing/truncated file, wrong shape, count different from ``num_rows``,
            non-numeric strings or values outside 0..38.
    """
    path = Path(path)
    y = _open_npy(path, mmap=True)
    if y.ndim != 1:
        raise DataError(path, f"expected a 1-D label array, got shape {y.shape}")
    if len(y) != num_rows:
        raise DataError(path, f"{len(y)} labels for {num_rows} feature rows; the counts must match")
    if y.dtype.kind in "US":
        try:
            out = np.asarray(y).astype(np.int64)
        except ValueError:
            bad = next(
                v for v in np.unique(np.asarray(y)) if not str(v).strip().lstrip("-").isdigit()
            )
            raise DataError(path, f"label {str(bad)!r} is not a class number 0..38") from None
    elif y.dtype.kind in "iu":
        out = np.asarray(y).astype(np.int64)
    else:
        raise DataError(
            path, f"expected labels as strings '0'..'38' or integers, got dtype {y.dtype}"
        )
    if out.size and (out.min() < 0 or out.max() >= NUM_CLASSES):
        bad = out[(out < 0) | (out >= NUM_CLASSES)][0]
        raise DataError(path, f"label {bad} is outside 0..{NUM_CLASSES - 1}")
    return out


def load_utterances(features_path: str | Path, x: np.ndarray | None = None) -> Utterances:
    """Utterance boundaries for a feature file: its index beside it if present, else recovered.

    The index for ``DIR/train_11.npy`` is ``DIR/train_utterances.csv`` (``DIR/utterances.csv``
    is accepted too when it covers exactly the file's rows).
    """
    features_path = Path(features_path)
    if x is None:
        x = load_features(features_path)
    index = utterance_index_path(features_path)
    if index.is_file():
        return Utterances.from_csv(index, len(x))
    generic = features_path.parent / "utterances.csv"
    if generic.is_file():
        try:
            return Utterances.from_csv(generic, len(x))
        except DataError:
            pass  # it belongs to the other split; recover instead
    return recover_utterances(x)


def utterance_index_path(features_path: str | Path) -> Path:
    """``DIR/train_11.npy`` -> ``DIR/train_utterances.csv`` (any ``<name>_11.npy`` likewise)."""
    p = Path(features_path)
    stem = p.stem[: -len("_11")] if p.stem.endswith("_11") else p.stem
    return p.with_name(f"{stem}_utterances.csv")


def recover_utterances(
    x: np.ndarray, *, atol: float = 1e-5, chunk_rows: int = 1 << 14
) -> Utterances:
    """Find utterance boundaries from the overlap of consecutive rows.

    Inside an utterance, row ``i+1`` holds frames ``t-4 .. t+6`` and row ``i`` frames ``t-5 .. t+5``,
    so row ``i+1``'s first 10 frames equal row ``i``'s last 10 (edge frames repeat, which keeps the
    equality at the utterance's own edges). Where it fails, a new utterance starts.

    Args:
        x: (N, 429) features, memory-mapped or not; read in chunks of ``chunk_rows``.
        atol: largest absolute difference still counted as equal (the copies are exact in practice).

    Returns:
        :class:`Utterances` named ``utt00000, utt00001, ...``.
    """
    n = len(x)
    breaks = [0]
    f = FEATURE_DIM
    for lo in range(0, n - 1, chunk_rows):
        hi = min(lo + chunk_rows + 1, n)  # one row of overlap with the next chunk
        block = np.asarray(x[lo:hi])
        same = np.abs(block[1:, : ROW_DIM - f] - block[:-1, f:]).max(axis=1) <= atol
        breaks.extend((lo + 1 + np.flatnonzero(~same)).tolist())
    starts = np.asarray(breaks, dtype=np.int64)
    lengths = np.diff(np.append(starts, n)).astype(np.int64)
    return Utterances([f"utt{k:05d}" for k in range(len(starts))], starts, lengths)


def check_finite(x: np.ndarray, path: str | Path | None = None, chunk_rows: int = 1 << 14) -> None:
    """Raise :class:`DataError` naming the first row that holds a NaN or infinite value.

    Reads ``x`` in chunks, so a memory-mapped file is checked without being copied; a memory map's
    rows are read from its file (:func:`row_chunks`), so the check leaves none of its pages
    resident in this process.
    """
    for lo, block in row_chunks(x, chunk_rows):
        bad = ~np.isfinite(block).all(axis=1)
        if bad.any():
            row = lo + int(np.argmax(bad))
            raise DataError(path, f"row {row} holds NaN or infinite values")


def row_chunks(x: np.ndarray, chunk_rows: int = 1 << 14) -> Iterator[tuple[int, np.ndarray]]:
    """``(first row, rows)`` of ``x`` in chunks of ``chunk_rows`` rows.

    A C-ordered memory map of a file is read through one reused buffer with plain file reads: the
    pages go through the page cache and are never mapped, so a full pass over a large file does
    not grow the resident set (a pass over the map itself would leave every page resident).
    """
    name = getattr(x, "filename", None)
    whole_map = isinstance(x, np.memmap) and isinstance(x.base, mmap.mmap)  # not a view of one
    if not whole_map or name is None or x.ndim != 2 or not x.flags.c_contiguous:
        for lo in range(0, len(x), chunk_rows):
            yield lo, np.asarray(x[lo : lo + chunk_rows])
        return
    buf = np.empty((min(chunk_rows, len(x)), x.shape[1]), dtype=x.dtype)
    with open(name, "rb") as f:
        f.seek(int(getattr(x, "offset", 0)))
        for lo in range(0, len(x), chunk_rows):
            block = buf[: min(chunk_rows, len(x) - lo)]
            f.readinto(block.data.cast("B"))
            yield lo, block


def split_by_utterance(
    utts: Utterances, val_ratio: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Choose about ``val_ratio`` of the frames, as whole utterances, for validation.

    Args:
        utts: the utterances of the training rows.
        val_ratio: target share of frames in validation, in [0, 1).
        seed: chooses which utterances.

    Returns:
        ``(train_utts, val_utts)``: sorted utterance indices. Every utterance is on exactly one side.
    """
    if not 0.0 <= val_ratio < 1.0:
        raise ValueError(f"val_ratio must be in [0, 1), got {val_ratio}")
    order = np.random.default_rng(seed).permutation(len(utts))
    if val_ratio == 0.0 or len(utts) < 2:
        return np.sort(order), np.zeros(0, dtype=np.int64)
    covered = np.cumsum(utts.lengths[order])
    target = val_ratio * utts.num_rows
    # the number of utterances whose frames come closest to the target share
    n_val = int(np.argmin(np.abs(covered - target))) + 1
    n_val = min(max(n_val, 1), len(utts) - 1)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def centre_frames(x: np.ndarray) -> np.ndarray:
    """The labelled (middle) frame's 39 features of each row: (N, 429) -> (N, 39) view."""
    mid = CONTEXT // 2
    return x[:, mid * FEATURE_DIM : (mid + 1) * FEATURE_DIM]


def labels_to_strings(y: np.ndarray) -> np.ndarray:
    """Class indices as the competition's label strings (``'0'..'38'``, dtype ``<U2``)."""
    return np.asarray(y, dtype=np.int64).astype("<U2")


NPY_MAGIC = b"\x93NUMPY"  # the first bytes of every .npy file


def _open_npy(path: Path, mmap: bool) -> np.ndarray:
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        with open(path, "rb") as f:
            marker = f.read(len(NPY_MAGIC))
    except OSError as e:
        raise DataError(path, f"cannot read the .npy file ({e})") from None
    if marker != NPY_MAGIC:
        raise DataError(path, "not a .npy file (it does not begin with numpy's format marker)")
    try:
        if mmap:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        return np.load(path, allow_pickle=False)
    except ValueError as e:
        msg = str(e)
        if "mmap length" in msg or "cannot reshape" in msg or "size" in msg and "exceed" in msg:
            raise DataError(path, "the file is truncated (shorter than its header says)") from None
        raise DataError(path, f"not a valid .npy array file ({msg})") from None
    except (OSError, EOFError) as e:
        raise DataError(path, f"cannot read the .npy file ({e})") from None
