"""MNIST / Fashion-MNIST in the IDX format, read with NumPy only (gzip or plain files).

The IDX format (LeCun, Cortes and Burges, "THE MNIST DATABASE of handwritten digits") is a big-endian
header - two zero bytes, a type code, the number of dimensions, then one 32-bit size per dimension -
followed by the values in C order. Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017) uses the same
format and file names, so :func:`load_mnist` reads either folder.

Every problem with a file (missing, not IDX, truncated, labels out of range, images and labels of
different lengths) raises one :class:`~trainlab.errors.DataError` naming the file.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from trainlab.errors import DataError

__all__ = ["IDX_DTYPES", "available_splits", "find_idx_files", "load_mnist", "read_idx"]

# IDX type code -> big-endian NumPy dtype
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# The official names; some mirrors write "idx3.ubyte" instead of "idx3-ubyte".
_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "t10k": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise DataError(path, "file not found")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip magic: decompress whatever the suffix says
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(path, f"corrupt or truncated gzip data ({e})") from None
    if path.suffix == ".gz":
        raise DataError(path, "named .gz but is not gzip-compressed")
    return raw


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (``.gz`` or plain) into an array of its stored type and shape.

    Args:
        path: the file, e.g. ``t10k-images-idx3-ubyte.gz``.

    Returns:
        An array of shape ``(n, d1, ...)`` as stored (``uint8`` for MNIST images and labels),
        in native byte order.

    Raises:
        DataError: the file is missing, has a bad magic number, or is truncated.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(path, f"not an IDX file: only {len(data)} bytes")
    zero, code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or code not in IDX_DTYPES or ndim == 0:
        raise DataError(
            path,
            f"not an IDX file: bad magic number 0x{data[:4].hex()} (expected 0x0000 + type code "
            f"{'/'.join(f'{c:02x}' for c in IDX_DTYPES)} + number of dimensions)",
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(path, f"truncated IDX header: {len(data)} bytes, need {header}")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_DTYPES[code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) < expected:
        raise DataError(
            path,
            f"truncated: header says shape {shape} ({expected} bytes) but the file holds "
            f"{len(data)} bytes",
        )
    if len(data) > expected:
        raise DataError(
            path, f"{len(data) - expected} unexpected bytes after the data of shape {shape}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def find_idx_files(folder: str | Path, split: str = "t10k") -> tuple[Path, Path]:
    """Locate the images and labels files of ``split`` (``"train"`` or ``"t10k"``) in ``folder``.

    Accepts the official names with or without ``.gz`` (and the ``idx3.ubyte`` spelling).

    Raises:
        DataError: the folder or one of the files is missing.
    """
    folder = Path(folder)
    if split not in _STEMS:
        raise ValueError(f"split must be 'train' or 't10k', got {split!r}")
    if not folder.is_dir():
        raise DataError(folder, "MNIST folder not found")
    found = []
    for stem in _STEMS[split]:
        candidates = [stem, stem.replace("-ubyte", ".ubyte")]
        hits = [
            folder / (c + s)
            for c in candidates
            for s in (".gz", "")
            if (folder / (c + s)).is_file()
        ]
        if not hits:
            raise DataError(
                folder,
                f"missing {stem}[.gz] (an MNIST/Fashion-MNIST IDX folder holds "
                f"{_STEMS[split][0]}.gz and {_STEMS[split][1]}.gz)",
            )
        found.append(hits[0])
    return found[0], found[1]


def available_splits(folder: str | Path) -> list[str]:
    """The splits (``"train"``, ``"t10k"``) whose two files are both present in ``folder``."""
    out = []
    for split in _STEMS:
        try:
            find_idx_files(folder, split)
        except DataError:
            continue
        out.append(split)
    return out


def load_mnist(folder: str | Path, split: str = "t10k") -> tuple[np.ndarray, np.ndarray]:
    """Read the images and labels of one MNIST-format split.

    Args:
        folder: a folder with the IDX files (MNIST or Fashion-MNIST).
        split: ``"t10k"`` (10,000 images) or ``"train"`` (60,000 images).

    Returns:
        ``(images, labels)``: ``uint8`` array ``(N, 28, 28)`` and ``int64`` array ``(N,)`` in 0..9.

    Raises:
        DataError: missing or malformed files, mismatched counts, labels outside 0..9.
    """
    img_path, lab_path = find_idx_files(folder, split)
    images = read_idx(img_path)
    labels = read_idx(lab_path)
    if images.ndim != 3:
        raise DataError(img_path, f"expected images of shape (N, rows, cols), got {images.shape}")
    if labels.ndim != 1:
        raise DataError(lab_path, f"expected labels of shape (N,), got {labels.shape}")
    if len(images) != len(labels):
        raise DataError(
            lab_path, f"{len(labels)} labels for {len(images)} images in {img_path.name}"
        )
    if images.dtype != np.uint8:
        raise DataError(
            img_path, f"expected unsigned-byte pixels (IDX type 0x08), got {images.dtype}"
        )
    if len(labels) == 0:
        raise DataError(lab_path, "no examples")
    if labels.min() < 0 or labels.max() > 9:
        bad = int(np.flatnonzero((labels < 0) | (labels > 9))[0])
        raise DataError(lab_path, f"label {int(labels[bad])} at index {bad} is outside 0..9")
    return images, labels.astype(np.int64)
