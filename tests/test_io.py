"""Atomic writes leave either the old file or the whole new one, with normal permissions; the safe
``torch.load`` turns every unreadable or code-carrying file into one DataError."""

from __future__ import annotations

import json
import os
import pickle
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from trainlab._io import (
    atomic_open,
    atomic_torch_save,
    atomic_write_json,
    atomic_write_text,
    atomic_write_with,
    load_torch,
)
from trainlab.errors import DataError


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_text_json_and_bytes_round_trip(tmp_path):
    atomic_write_text(tmp_path / "sub" / "a.txt", "héllo\n")
    assert (tmp_path / "sub" / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    obj = {"n": np.int64(3), "x": np.float32(0.5), "v": np.arange(3), "t": torch.tensor([1.0]),
           "p": Path("a/b")}  # fmt: skip
    atomic_write_json(tmp_path / "a.json", obj)
    assert json.loads((tmp_path / "a.json").read_text()) == {
        "n": 3, "x": 0.5, "v": [0, 1, 2], "t": [1.0], "p": "a/b"
    }  # fmt: skip
    with atomic_open(tmp_path / "b.bin", "wb") as f:
        f.write(b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert leftovers(tmp_path, {"sub", "a.json", "b.bin"}) == []


def test_json_refuses_unknown_objects_and_keeps_the_old_file(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"ok": 1})
    with pytest.raises(TypeError, match="cannot serialise object"):
        atomic_write_json(tmp_path / "a.json", {"bad": object()})
    assert json.loads((tmp_path / "a.json").read_text()) == {"ok": 1}
    assert leftovers(tmp_path, {"a.json"}) == []


@pytest.mark.usefixtures("umask_027")
def test_permissions_follow_the_umask(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "x")
    atomic_write_with(tmp_path / "b.npy", lambda p: np.save(p, np.zeros(2)))
    atomic_torch_save({"w": torch.zeros(1)}, tmp_path / "c.pt")
    for name in ("a.txt", "b.npy", "c.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640, name


def test_a_failure_while_writing_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_open(target) as f:
            f.write("new, but only half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert leftovers(tmp_path, {"out.txt"}) == []


def test_a_failing_writer_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "plot.png"
    target.write_bytes(b"old")

    def writer(p: Path) -> None:
        p.write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write_with(target, writer)
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path, {"plot.png"}) == []


def test_writer_sees_the_targets_suffix(tmp_path):
    seen = []
    atomic_write_with(tmp_path / "a.npy", lambda p: (seen.append(p.suffix), np.save(p, [1])))
    assert seen == [".npy"] and np.load(tmp_path / "a.npy").tolist() == [1]


def test_load_torch_reads_tensors_and_plain_data(tmp_path):
    atomic_torch_save({"w": torch.arange(3), "meta": {"epoch": 2, "name": "x"}}, tmp_path / "a.pt")
    obj = load_torch(tmp_path / "a.pt")
    assert obj["w"].tolist() == [0, 1, 2] and obj["meta"] == {"epoch": 2, "name": "x"}


def test_load_torch_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"missing\.pt: checkpoint not found") as e:
        load_torch(tmp_path / "missing.pt", "checkpoint")
    assert e.value.path == tmp_path / "missing.pt"


@pytest.mark.parametrize("keep", [0, 10, 200])
def test_load_torch_truncated_file(tmp_path, keep):
    atomic_torch_save({"w": torch.randn(100)}, tmp_path / "a.pt")
    (tmp_path / "bad.pt").write_bytes((tmp_path / "a.pt").read_bytes()[:keep])
    with pytest.raises(DataError, match=r"bad\.pt: corrupt weights file") as e:
        load_torch(tmp_path / "bad.pt")
    assert "\n" not in str(e.value)


def test_load_torch_foreign_file(tmp_path):
    (tmp_path / "notes.pt").write_text("these are not weights")
    with pytest.raises(DataError, match=r"notes\.pt: corrupt weights file"):
        load_torch(tmp_path / "notes.pt")


class Payload:
    """Unpickling this would run ``os.system`` (it must never be unpickled)."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_load_torch_refuses_pickled_code(tmp_path, monkeypatch, writer):
    path = tmp_path / "evil.pt"
    if writer == "torch":
        torch.save({"w": torch.zeros(1), "x": Payload()}, path)
    else:
        path.write_bytes(pickle.dumps(Payload()))
    calls = []
    monkeypatch.setattr(os, "system", lambda cmd: calls.append(cmd))
    with pytest.raises(DataError, match=r"evil\.pt: "):
        load_torch(path)
    assert calls == []


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_load_torch_any_damage_is_a_data_error(tmp_path, zipped):
    good = tmp_path / "good.pt"
    torch.save({"w": torch.randn(10), "m": {"a": 1}}, good, _use_new_zipfile_serialization=zipped)
    data = good.read_bytes()
    rng = np.random.default_rng(0)
    samples = [data[:k] for k in range(0, len(data), max(1, len(data) // 60))]
    samples += [
        rng.integers(0, 256, int(rng.integers(1, 300)), dtype=np.uint8).tobytes() for _ in range(60)
    ]
    bad = tmp_path / "bad.pt"
    for sample in samples:
        bad.write_bytes(sample)
        with pytest.raises(DataError, match=r"bad\.pt: "):
            load_torch(bad)
