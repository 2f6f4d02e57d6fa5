"""The HTML renderer: self-contained, escaped, with contents, verdict marks and styled tables."""

from __future__ import annotations

import math
import re
from html.parser import HTMLParser

from trainlab.report.html import format_value, render_html, render_table
from trainlab.report.result import Figure, SectionResult, Table, Verdict


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.ids: set[str] = set()
        self.anchors: list[str] = []
        self.stack: list[str] = []
        self.unclosed = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if key in a:
                (self.anchors if a[key].startswith("#") else self.refs).append(a[key])
        if "id" in a:
            self.ids.add(a["id"])
        if tag not in ("meta", "img", "br", "link", "input"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if self.stack and self.stack[-1] == tag:
            self.stack.pop()
        else:
            self.unclosed += 1


def _results() -> list[SectionResult]:
    ok = SectionResult(
        number=1,
        key="overfitting",
        title="Over <fitting>",
        claim="A & B.\n\nSecond paragraph.",
        experiment="Trained.",
        verdict=Verdict("It <overfits> & stops.", True),
        figures=[Figure("1-overfitting-curves.png", "Curves")],
        tables=[
            Table(
                "t",
                ["run", "loss", "agrees"],
                [["a", 0.12345, True], ["b", math.nan, False]],
                formats={"loss": ".3f"},
                mark_columns=["agrees"],
            )
        ],
        config={"epochs": 3},
        rerun="trainlab report --sections 1",
        time_s=1.5,
    )
    mixed = SectionResult(
        number=4, key="batch_size", title="Batch size", verdict=Verdict("Mixed.", None)
    )
    failed = SectionResult(
        number=3,
        key="critical",
        title="Critical",
        status="unavailable",
        error="trainlab.diagnose is not available",
    )
    return [ok, failed, mixed]


def test_page_is_self_contained_and_well_formed():
    page = render_html(
        _results(),
        {
            "data": {"description": "digits", "n_train": 10, "n_val": 5},
            "seed": 0,
            "total_time_s": 3.0,
        },
    )
    c = _Collector()
    c.feed(page)
    assert c.unclosed == 0
    # nothing is fetched from elsewhere: only relative files and in-page anchors
    assert c.refs == ["1-overfitting-curves.png"]
    assert not re.search(r"(https?:)?//[a-z]", page.split("<body>")[1])
    assert "<style>" in page and "<script" not in page
    # the contents link to every section, and every anchor exists
    assert {"#s1", "#s3", "#s4", "#summary"} <= set(c.anchors)
    assert all(a[1:] in c.ids for a in c.anchors)


def test_text_is_escaped_and_verdicts_are_marked():
    page = render_html(_results(), {})
    assert "Over &lt;fitting&gt;" in page and "It &lt;overfits&gt; &amp; stops." in page
    assert "<p>A &amp; B.</p><p>Second paragraph.</p>" in page
    assert 'class="verdict v-yes"' in page and 'class="verdict v-mixed"' in page
    assert "Not available in this build" in page and "trainlab.diagnose is not available" in page
    assert "Rerun this section exactly" in page and "&quot;epochs&quot;: 3" in page


def test_table_cells():
    html = render_table(_results()[0].tables[0])
    assert "0.123" in html and "diverged" in html
    assert 'class="mark yes"' in html and 'class="mark no"' in html
    assert format_value(None) == "&ndash;"
    assert format_value(12345) == "12,345"
    assert format_value(0.000012) == "1.2e-05"
    assert format_value(0.5, ".1%") == "50.0%"
    assert format_value(math.inf) == "&infin;"
    assert format_value("<b>") == "&lt;b&gt;"
