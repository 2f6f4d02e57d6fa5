"""Section 8: the doctor on two test-bed runs, its findings beside the chapter's claims."""

from __future__ import annotations

import json

import pytest

from trainlab.report.sections import doctor

SMALL = doctor.Config(n=512, width=32)


@pytest.fixture(scope="module")
def result(measured):
    return measured(doctor, SMALL)


def test_the_doctor_names_both_runs(result):
    _, m = result
    assert list(m.runs) == ["lr_too_high", "healthy"]
    assert m.runs["lr_too_high"]["cause"] == "lr_too_high"
    assert m.runs["lr_too_high"]["severity"] == "problem"
    assert m.runs["healthy"]["cause"] == "healthy"
    assert all(r["agrees"] for r in m.runs.values())
    numbers = json.loads(json.dumps(m.numbers()))
    assert numbers["all_named"] is True and set(numbers) == {"runs", "all_named"}
    assert doctor.verdict(m).agrees is True


def test_render(result, check_rendered):
    ctx, m = result
    rendered = check_rendered(doctor, ctx, SMALL, m)
    assert [f.file for f in rendered.figures] == ["8-doctor-runs.png"]
    (table,) = rendered.tables
    assert [row[0] for row in table.rows] == ["lr_too_high", "healthy"]
    assert "names every run's cause" in rendered.verdict.text
