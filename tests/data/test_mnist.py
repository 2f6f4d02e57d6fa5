"""The IDX reader: round trips of generated files, every kind of damage, and the real MNIST test set."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from trainlab.data.mnist import available_splits, find_idx_files, load_mnist, read_idx
from trainlab.errors import DataError


def idx_bytes(arr: np.ndarray) -> bytes:
    """Encode ``arr`` as IDX (the format's big-endian header, then the values)."""
    codes = {
        np.uint8: 0x08,
        np.int8: 0x09,
        np.int16: 0x0B,
        np.int32: 0x0C,
        np.float32: 0x0D,
        np.float64: 0x0E,
    }
    code = codes[arr.dtype.type]
    header = struct.pack(">HBB", 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_mnist(
    folder: Path, n: int = 30, split: str = "t10k", gz: bool = True, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A small MNIST-format folder with ``n`` random images and balanced labels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for stem, arr in (
        (f"{split}-images-idx3-ubyte", images),
        (f"{split}-labels-idx1-ubyte", labels),
    ):
        data = idx_bytes(arr)
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)
    return images, labels


@pytest.mark.parametrize("gz", [True, False])
def test_round_trip(tmp_path, gz):
    images, labels = write_mnist(tmp_path, gz=gz)
    x, y = load_mnist(tmp_path)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    assert x.dtype == np.uint8 and y.dtype == np.int64
    assert available_splits(tmp_path) == ["t10k"]


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_every_idx_type(tmp_path, dtype):
    arr = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if dtype == np.uint8:
        arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.idx").write_bytes(idx_bytes(arr))
    out = read_idx(tmp_path / "a.idx")
    np.testing.assert_array_equal(out, arr)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative


def test_alternative_names_and_train_split(tmp_path):
    write_mnist(tmp_path, split="train", gz=False)
    for p in tmp_path.iterdir():  # some mirrors write idx3.ubyte
        p.rename(p.with_name(p.name.replace("-ubyte", ".ubyte")))
    assert available_splits(tmp_path) == ["train"]
    x, y = load_mnist(tmp_path, "train")
    assert x.shape == (30, 28, 28) and len(y) == 30


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b"\x08\x03" + b[2:], "bad magic number"),
        (lambda b: b[:2] + b"\x07" + b[3:], "bad magic number"),
        (lambda b: b[:-100], "truncated"),
        (lambda b: b[:10], "truncated IDX header"),
        (lambda b: b + b"\x00\x00", "unexpected bytes"),
        (lambda b: b[:3], "only 3 bytes"),
    ],
)
def test_damaged_file_raises_data_error_naming_it(tmp_path, damage, message):
    write_mnist(tmp_path, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError, match=message) as e:
        load_mnist(tmp_path)
    assert e.value.path == path


def test_corrupt_gzip(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match="corrupt or truncated gzip") as e:
        load_mnist(tmp_path)
    assert e.value.path == path


def test_gz_name_without_gzip_content(tmp_path):
    write_mnist(tmp_path, gz=False)
    (tmp_path / "t10k-images-idx3-ubyte").rename(tmp_path / "t10k-images-idx3-ubyte.gz")
    with pytest.raises(DataError, match="not gzip-compressed"):
        load_mnist(tmp_path)


def test_missing_folder_and_files(tmp_path):
    with pytest.raises(DataError, match="MNIST folder not found"):
        load_mnist(tmp_path / "nope")
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
        find_idx_files(tmp_path)


def test_count_mismatch_and_bad_labels(tmp_path):
    write_mnist(tmp_path, n=30, gz=False)
    labels = tmp_path / "t10k-labels-idx1-ubyte"
    labels.write_bytes(idx_bytes(np.zeros(29, dtype=np.uint8)))
    with pytest.raises(DataError, match="29 labels for 30 images"):
        load_mnist(tmp_path)
    bad = (np.arange(30) % 10).astype(np.uint8)
    bad[7] = 12
    labels.write_bytes(idx_bytes(bad))
    with pytest.raises(DataError, match="label 12 at index 7 is outside 0..9"):
        load_mnist(tmp_path)


def test_wrong_shapes(tmp_path):
    write_mnist(tmp_path, gz=False)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(
        idx_bytes(np.zeros((30, 784), dtype=np.uint8))
    )
    with pytest.raises(DataError, match=r"expected images of shape \(N, rows, cols\)"):
        load_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(
        idx_bytes(np.zeros((30, 28, 28), dtype=np.float32))
    )
    with pytest.raises(DataError, match="unsigned-byte pixels"):
        load_mnist(tmp_path)


def test_real_mnist_test_set(shared_data):
    folder = shared_data / "mnist"
    if not folder.is_dir():
        pytest.skip(f"MNIST test set not found at {folder}")
    x, y = load_mnist(folder)
    assert x.shape == (10_000, 28, 28) and x.dtype == np.uint8
    # the class counts and the first labels of the official t10k file (SOURCE.md)
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    raw = gzip.decompress((folder / "t10k-images-idx3-ubyte.gz").read_bytes())
    assert hashlib.md5(raw[16:]).hexdigest() == hashlib.md5(x.tobytes()).hexdigest()
