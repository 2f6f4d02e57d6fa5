"""The report: doctor.json's layout, the summary, the notebook's HTML representation."""

from __future__ import annotations

import json

import pytest

from trainlab.doctor import CAUSES, THRESHOLDS, examine
from trainlab.doctor.rules import PRIORITY, RULES
from trainlab.doctor.testbed import run_case


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return examine(run_case("dead_units", tmp_path_factory.mktemp("d") / "run", tensorboard=False))


def test_json_is_plain_data_with_findings_first(report):
    data = json.loads(json.dumps(report.to_dict()))
    assert list(data)[0] == "findings"
    for f in data["findings"]:
        assert f["cause"] in CAUSES and f["severity"] in ("problem", "warning", "info")
        assert isinstance(f["evidence"], list) and f["remedy"]
    assert data["thresholds"] == THRESHOLDS
    assert data["run"]["status"] == "finished" and data["signals"]["dead_end"] >= 0.5
    severities = [f["severity"] for f in data["findings"]]
    assert severities == sorted(severities, key=["problem", "warning", "info"].index)


def test_evidence_cites_steps(report):
    dead = report.findings[0]
    assert dead.cause == "dead_units"
    assert any("step" in e for e in dead.evidence)


def test_notebook_repr_shows_findings_and_plots(report, matplotlib_untouched):
    page = report._repr_html_()
    assert "dead_units" in page and "What to try" in page
    assert "data:image/png;base64," in page
    assert str(report).startswith("trainlab doctor:")


def test_every_cause_has_a_rule_and_a_place_in_the_order():
    assert set(PRIORITY) == set(CAUSES)
    assert {r.__name__ for r in RULES} | {"healthy"} == set(CAUSES)
    for rule in RULES:  # each rule documents itself
        assert rule.__doc__ and "Rule" in rule.__doc__


@pytest.fixture
def matplotlib_untouched(monkeypatch):
    import sys

    import matplotlib

    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    before = matplotlib.rcParams.copy()
    yield
    assert matplotlib.rcParams.copy() == before
