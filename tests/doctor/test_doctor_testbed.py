"""The test bed: the doctor names each broken training's cause first, across seeds, widths and data.

The quick suite runs every case twice (the defaults and one variation); the slow suite adds more
variations of seed, width, rows, input dimension, task (classification or regression) and
optimizer. The thresholds were not tuned to any one of these runs.
"""

from __future__ import annotations

import pytest

from trainlab.doctor import CAUSES, examine
from trainlab.doctor.testbed import CASES, run_case

QUICK = [
    {},
    {"seed": 1, "width": 32, "task": "regression"},
]
SLOW = [
    {"seed": 2, "width": 128},
    {"seed": 3, "n": 512, "dim": 8},
    {"seed": 4, "n": 2048, "dim": 32, "task": "regression"},
    {"seed": 5, "width": 48, "dim": 24, "optimizer": "adam"},
    {"seed": 6, "width": 96, "n": 768, "optimizer": "sgd", "task": "regression"},
]


def _check(name, kw, tmp_path):
    report = examine(run_case(name, tmp_path / name, tensorboard=False, **kw))
    causes = [(f.cause, f.severity) for f in report.findings]
    expected = CASES[name].expected
    assert report.cause == expected, (name, kw, causes)
    assert all(f.cause in CAUSES for f in report.findings)
    if expected == "healthy":
        assert not any(f.severity == "problem" for f in report.findings), causes
    else:
        assert report.findings[0].severity == "problem", causes
        assert report.findings[0].evidence and report.findings[0].remedy


@pytest.mark.parametrize("kw", QUICK, ids=["default", "seed1-w32-regression"])
@pytest.mark.parametrize("name", list(CASES))
def test_testbed_names_the_cause_first(name, kw, tmp_path):
    _check(name, kw, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("kw", SLOW, ids=[f"v{i}" for i in range(len(SLOW))])
@pytest.mark.parametrize("name", list(CASES))
def test_testbed_names_the_cause_first_across_variations(name, kw, tmp_path):
    _check(name, kw, tmp_path)


def test_unknown_case_and_task_are_refused(tmp_path):
    with pytest.raises(KeyError, match="unknown test-bed case"):
        run_case("nope", tmp_path)
    with pytest.raises(ValueError, match="classification or regression"):
        run_case("healthy", tmp_path, task="ranking")
