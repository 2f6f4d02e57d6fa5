"""Run folders: the model-folder resolver, output checks, staging, publishing and verification."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from trainlab.errors import DataError, TrainlabError
from trainlab.runs import (
    MANIFEST,
    begin_run,
    check_output_dir,
    check_output_file,
    find_model_dir,
    publish_run,
    read_model_json,
    staging_dir,
    verify_run,
)


def _run(out: Path, tag: str, settings: dict | None = None) -> Path:
    stage = begin_run(out, settings or {"lr": 0.1}, log=lambda _m: None)
    (stage / "model").mkdir()
    (stage / "model" / "model.json").write_text(json.dumps({"task": "covid", "tag": tag}))
    (stage / "submission.csv").write_text(f"id,y\n0,{tag}\n")
    return stage


def test_publish_then_verify_and_resolve(tmp_path: Path) -> None:
    out = tmp_path / "run"
    publish_run(_run(out, "a"), out)
    assert (out / MANIFEST).is_file() and not staging_dir(out).exists()
    assert json.loads((out / "config.json").read_text()) == {"lr": 0.1}
    assert find_model_dir(out) == out / "model"
    assert find_model_dir(out / "model" / "model.json") == out / "model"
    assert read_model_json(out / "model", "covid")["tag"] == "a"
    with pytest.raises(DataError, match="not 'phoneme'"):
        read_model_json(out / "model", "phoneme")


def test_an_unfinished_run_leaves_the_old_one_untouched(tmp_path: Path) -> None:
    out = tmp_path / "run"
    publish_run(_run(out, "a"), out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    _run(out, "b", {"lr": 0.2})  # killed before publishing
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    verify_run(out)
    publish_run(_run(out, "c"), out)  # a new start discards the stale stage
    assert "c" in (out / "submission.csv").read_text()


def test_verify_refuses_mixed_missing_or_changed_files(tmp_path: Path) -> None:
    out = tmp_path / "run"
    publish_run(_run(out, "a"), out)
    (out / "diagnosis.json").write_text("{}")  # an analysis written beside the run is fine
    verify_run(out)
    (out / "model" / "member_9.pt").write_bytes(b"x")
    with pytest.raises(DataError, match="not part of the run: model/member_9.pt"):
        find_model_dir(out)
    (out / "model" / "member_9.pt").unlink()
    (out / "submission.csv").write_text("id,y\n0,tampered\n")
    with pytest.raises(DataError, match="changed since the run: submission.csv"):
        verify_run(out / "model")
    (out / "submission.csv").unlink()
    with pytest.raises(DataError, match="missing: submission.csv"):
        verify_run(out)


def test_an_interrupted_first_run_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _run(out, "a")
    with pytest.raises(DataError, match="incomplete"):
        find_model_dir(out)


def test_resume_checks_the_settings(tmp_path: Path) -> None:
    out = tmp_path / "run"
    stage = _run(out, "a", {"lr": 0.1, "epochs": 3, "quiet": False})
    (stage / ".x.pt.tmp").write_bytes(b"half")
    again = begin_run(out, {"lr": 0.1, "epochs": 3, "quiet": True}, resume=True, ignore=("quiet",))
    assert again == stage and (stage / "submission.csv").is_file()
    assert not (stage / ".x.pt.tmp").exists()  # a killed write's temporary is cleaned up
    with pytest.raises(TrainlabError, match="other settings for epochs, lr"):
        begin_run(out, {"lr": 0.2, "epochs": 4}, resume=True, ignore=("quiet",))
    publish_run(stage, out)
    with pytest.raises(TrainlabError, match="complete; nothing to resume"):
        begin_run(out, {"lr": 0.1}, resume=True)
    with pytest.raises(TrainlabError, match="no interrupted run"):
        begin_run(tmp_path / "other", {}, resume=True)


def test_a_publish_killed_between_its_renames_is_repaired(tmp_path: Path) -> None:
    out = tmp_path / "run"
    publish_run(_run(out, "a"), out)
    stage = _run(out, "b")
    publish_run(stage, tmp_path / "scratch")  # seals a manifest; now undo the move by hand
    os.replace(tmp_path / "scratch", stage)
    os.replace(out, tmp_path / ".run.old")  # killed after the first rename
    assert "b" in (verify_run(out) / "submission.csv").read_text()
    assert not (tmp_path / ".run.old").exists()


def test_output_places_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(TrainlabError, match="exists and is not a folder"):
        check_output_dir(f)
    with pytest.raises(TrainlabError, match="is a file, not a folder"):
        check_output_dir(f / "sub")
    with pytest.raises(TrainlabError, match="is a folder"):
        check_output_file(tmp_path)
    with pytest.raises(TrainlabError, match="is a file, not a folder"):
        check_output_file(f / "out.csv")
    assert check_output_file(tmp_path / "new" / "out.csv") == tmp_path / "new" / "out.csv"
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if Path(p) == ro else real(p, m))
    with pytest.raises(TrainlabError, match="not writable"):
        check_output_dir(ro)
    with pytest.raises(TrainlabError, match="not writable"):
        check_output_file(ro / "x.csv")
    with pytest.raises(TrainlabError, match="not writable"):
        check_output_dir(ro / "deeper" / "run")


def test_output_checks_try_to_create_a_file_where_access_says_yes(tmp_path: Path) -> None:
    """``os.access`` says yes to root everywhere; a real creation in /proc fails (and leaves
    nothing behind where it succeeds)."""
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc filesystem here")
    with pytest.raises(TrainlabError, match="no file can be created in /proc"):
        check_output_file("/proc/out.csv")
    with pytest.raises(TrainlabError, match="no file can be created in /proc"):
        check_output_dir("/proc/run")
    check_output_dir(tmp_path)
    check_output_file(tmp_path / "out.csv")
    assert list(tmp_path.iterdir()) == []
