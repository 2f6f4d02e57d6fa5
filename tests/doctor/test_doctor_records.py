"""Records: append-and-flush JSON lines, read back after a crash; damage named by file and line."""

from __future__ import annotations

import json
import math

import pytest

from trainlab.doctor.records import RECORDS_FILE, RecordWriter, as_float, read_records
from trainlab.errors import DataError


def _write(tmp_path, n_steps=3):
    w = RecordWriter(tmp_path, tensorboard=False)
    w.write("meta", {"version": 1, "layers": []})
    for i in range(1, n_steps + 1):
        w.write("step", {"step": i, "loss": 1.0 / i, "grad_norm": math.inf if i == 2 else 0.5})
    return w


def test_round_trip_keeps_kinds_order_and_non_finite_values(tmp_path):
    w = _write(tmp_path)
    w.write("epoch", {"epoch": 1, "step": 3, "val_loss": math.nan})
    w.write("end", {"step": 3})
    w.close()
    r = read_records(tmp_path)
    assert [s["step"] for s in r.steps] == [1, 2, 3]
    assert as_float(r.steps[1]["grad_norm"]) == math.inf
    assert math.isnan(as_float(r.epochs[0]["val_loss"]))
    assert r.ended and r.status == "finished" and not r.truncated and r.last_step == 3


def test_each_record_is_on_disk_as_soon_as_it_is_written(tmp_path):
    w = _write(tmp_path)  # not closed: a running process
    lines = (tmp_path / RECORDS_FILE).read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line)["kind"] for line in lines)
    r = read_records(tmp_path)
    assert r.status == "running or killed" and len(r.steps) == 3
    w.close()


def test_a_cut_last_line_is_skipped(tmp_path):
    _write(tmp_path).close()
    path = tmp_path / RECORDS_FILE
    path.write_text(path.read_text() + '{"kind": "step", "step": 4, "lo')
    r = read_records(tmp_path)
    assert r.truncated and len(r.steps) == 3


@pytest.mark.parametrize(
    "damage, message",
    [
        ("not json\n", "line 2: not a JSON record"),
        ('{"no": "kind"}\n', "line 2: not a doctor record"),
        ("\n", "line 2: empty line"),
        ("[1, 2]\n", "line 2: not a doctor record"),
    ],
)
def test_damage_before_the_last_line_is_refused_with_its_line(tmp_path, damage, message):
    _write(tmp_path).close()
    path = tmp_path / RECORDS_FILE
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + damage + "".join(lines[1:]))
    with pytest.raises(DataError, match=message) as err:
        read_records(tmp_path)
    assert str(path) in str(err.value)


def test_missing_empty_and_foreign_files(tmp_path):
    with pytest.raises(DataError, match="no such run folder"):
        read_records(tmp_path / "absent")
    with pytest.raises(DataError, match=f"no {RECORDS_FILE}"):
        read_records(tmp_path)
    (tmp_path / RECORDS_FILE).write_text("")
    with pytest.raises(DataError, match="empty"):
        read_records(tmp_path)
    (tmp_path / RECORDS_FILE).write_text('{"kind": "step", "step": 1}\n')
    with pytest.raises(DataError, match="no meta record"):
        read_records(tmp_path)
    (tmp_path / RECORDS_FILE).write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError, match="not UTF-8"):
        read_records(tmp_path)


def test_records_in_one_subfolder_are_found_several_are_refused(tmp_path):
    _write(tmp_path / "training").close()
    assert read_records(tmp_path).path == tmp_path / "training" / RECORDS_FILE
    assert read_records(tmp_path / "training" / RECORDS_FILE).steps
    _write(tmp_path / "other").close()
    with pytest.raises(DataError, match="several runs"):
        read_records(tmp_path)
