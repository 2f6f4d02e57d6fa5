"""The report runner: outputs, failure isolation, unavailable sections, settings files, seeds."""

from __future__ import annotations

import json

import pytest

from trainlab.errors import ConfigError
from trainlab.report import ReportConfig, read_report_file, resolve_section_configs, run_report
from trainlab.report.config import rerun_command
from trainlab.report.result import SectionUnavailable
from trainlab.report.sections import SECTIONS, load_section

TINY_MOMENTUM = {"momentum": {"steps": 60, "sweep": [0.0, 0.9], "epochs": 2, "hidden": [16]}}


def _numbers_without_timings(section: dict) -> dict:
    return json.loads(json.dumps(section["numbers"]))


def test_one_section_writes_every_output(tmp_path):
    cfg = ReportConfig(out=str(tmp_path / "r"), sections=[5], quick=True, quiet=True)
    outcome = run_report(cfg, TINY_MOMENTUM)
    out = tmp_path / "r"
    assert outcome.index == out / "index.html" and not outcome.failed
    results = json.loads((out / "results.json").read_text())
    (sec,) = results["sections"]
    assert sec["status"] == "ok" and sec["verdict"]["text"]
    momentum = load_section(5)
    assert (sec["number"], sec["key"], sec["title"]) == (5, momentum.KEY, momentum.TITLE)
    assert sec["claim"] == momentum.CLAIM and sec["numbers"]["escaped_local_minimum"] is True
    for fig in sec["figures"]:
        assert (out / fig["file"]).stat().st_size > 1000
        assert f'src="{fig["file"]}"' in (out / "index.html").read_text()
    saved = json.loads((out / "config.json").read_text())
    assert saved["report"]["sections"] == [5]
    assert saved["sections"]["momentum"]["steps"] == 60
    assert "--config" in sec["rerun"] and "--sections 5" in sec["rerun"]


def test_same_seed_same_numbers_and_config_file_reruns_it(tmp_path):
    a = run_report(
        ReportConfig(out=str(tmp_path / "a"), sections=[5], quick=True, quiet=True), TINY_MOMENTUM
    )
    # rerun from the first report's config.json, as its "rerun" command says
    report, sections = read_report_file(tmp_path / "a" / "config.json")
    report.update(out=str(tmp_path / "b"))
    b = run_report(ReportConfig(**report), sections)
    ja = json.loads((a.out_dir / "results.json").read_text())["sections"][0]
    jb = json.loads((b.out_dir / "results.json").read_text())["sections"][0]
    assert _numbers_without_timings(ja) == _numbers_without_timings(jb)
    assert ja["verdict"] == jb["verdict"]


def test_failed_section_is_reported_and_others_still_run(tmp_path, monkeypatch, capsys):
    mod = load_section(5)

    def boom(ctx, cfg, measured):
        raise RuntimeError("kaput")

    monkeypatch.setattr(mod, "render", boom)  # a failure in rendering counts like one in measuring
    unavailable = load_section(3)

    def missing(ctx, cfg):
        raise SectionUnavailable("trainlab.diagnose is not available")

    monkeypatch.setattr(unavailable, "measure", missing)
    cfg = ReportConfig(out=str(tmp_path), sections=[3, 5, 6], quick=True)
    outcome = run_report(cfg, {"adaptive": {"epochs": 1, "hidden": [8], "steps": 30}})
    status = {r.number: r.status for r in outcome.results}
    assert status == {3: "unavailable", 5: "failed", 6: "ok"}
    assert [r.number for r in outcome.failed] == [5]
    for r in outcome.results:  # the common fields are filled in whatever happened
        assert (r.key, r.title) == SECTIONS[r.number] and r.claim == load_section(r.number).CLAIM
        assert r.config and r.rerun
    assert not outcome.results[1].numbers and outcome.results[2].numbers
    assert "kaput" in (tmp_path / "5-momentum-error.txt").read_text()
    page = (tmp_path / "index.html").read_text()
    assert "This section failed" in page and "Not available in this build" in page
    err = capsys.readouterr().err
    assert "[1/3] 3. " in err and "[3/3] 6. " in err and "done in" in err


def test_bad_settings_fail_before_anything_runs(tmp_path):
    cfg = ReportConfig(out=str(tmp_path / "never"), sections=[5], quiet=True)
    with pytest.raises(ConfigError, match="unknown section"):
        run_report(cfg, {"nope": {}})
    with pytest.raises(ConfigError, match="unknown setting"):
        run_report(cfg, {"momentum": {"stepz": 3}})
    assert not (tmp_path / "never").exists()
    with pytest.raises(ConfigError, match="sections must be numbers"):
        ReportConfig(sections=[99])
    bad = tmp_path / "bad.json"
    bad.write_text('{"report": {"seed": "x"}}')
    with pytest.raises(ConfigError, match="seed"):
        read_report_file(bad)


def test_every_section_has_quick_and_full_settings():
    for n, (key, _) in SECTIONS.items():
        mod = load_section(n)
        assert mod.KEY == key and mod.CLAIM and mod.TITLE
        quick, full = mod.default_config(True), mod.default_config(False)
        assert type(quick) is mod.Config and quick != full
    cfgs = resolve_section_configs(ReportConfig(quick=True), {"batch_size": {"epochs": 2}})
    assert cfgs[4].epochs == 2 and set(cfgs) == set(SECTIONS)


def test_rerun_command():
    cfg = ReportConfig(data="mnist:/d", out="runs/r", quick=True, seed=3)
    assert rerun_command(cfg) == "trainlab report --data mnist:/d --seed 3 --quick --out runs/r"
    assert rerun_command(cfg, 4, "runs/r/config.json") == (
        "trainlab report --sections 4 --data mnist:/d --seed 3 --quick --config runs/r/config.json "
        "--out runs/r-section4"
    )
