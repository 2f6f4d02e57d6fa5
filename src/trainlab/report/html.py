"""Render the report as one self-contained HTML page (no external CSS, JS or fonts).

The page opens offline from disk: styles are inline, figures are PNG files beside ``index.html``
referenced by relative paths. Layout: a header with the run's facts, a table of contents with each
section's verdict mark, then one section per claim - claim, experiment, verdict (highlighted),
tables, figures, and the exact settings and command to rerun it.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from typing import Any

from trainlab.report.result import SectionResult, Table, agree_word

__all__ = ["format_value", "render_html"]

MARKS = {True: ("&#10003;", "yes"), False: ("&#10007;", "no"), None: ("&#8776;", "mixed")}

CSS = """
:root { --fg:#1d2430; --muted:#5b6575; --line:#dde2ea; --bg:#ffffff; --panel:#f6f8fb;
  --accent:#0b5cad; --ok:#1a7f37; --okbg:#e9f6ec; --bad:#b42318; --badbg:#fdecea;
  --mix:#8a6100; --mixbg:#fff6db; }
* { box-sizing: border-box; }
html { scroll-behavior: smooth; }
body { margin:0; color:var(--fg); background:var(--bg);
  font: 16px/1.6 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans",
  "Liberation Sans", sans-serif; }
.layout { display:flex; max-width:1320px; margin:0 auto; }
nav.toc { position:sticky; top:0; align-self:flex-start; width:270px; flex:none; height:100vh;
  overflow-y:auto; padding:28px 18px 28px 24px; border-right:1px solid var(--line);
  background:var(--panel); font-size:14px; }
nav.toc h2 { font-size:13px; text-transform:uppercase; letter-spacing:.06em; color:var(--muted);
  margin:0 0 10px; }
nav.toc ol { list-style:none; margin:0; padding:0; }
nav.toc li { margin:0 0 8px; display:flex; gap:8px; align-items:baseline; }
nav.toc a { color:var(--fg); text-decoration:none; }
nav.toc a:hover { color:var(--accent); text-decoration:underline; }
main { flex:1; min-width:0; padding:28px 44px 80px; max-width:1050px; }
header h1 { font-size:30px; line-height:1.25; margin:0 0 6px; }
header p.lede { color:var(--muted); margin:0 0 18px; font-size:17px; }
dl.facts { display:grid; grid-template-columns:max-content 1fr; gap:4px 18px; margin:0 0 26px;
  font-size:14px; background:var(--panel); border:1px solid var(--line); border-radius:8px;
  padding:12px 16px; }
dl.facts dt { color:var(--muted); } dl.facts dd { margin:0; }
section.sec { border-top:2px solid var(--line); padding-top:8px; margin-top:40px; }
section.sec h2 { font-size:24px; margin:10px 0 12px; }
section.sec h2 .num { color:var(--accent); margin-right:6px; }
h3 { font-size:15px; text-transform:uppercase; letter-spacing:.05em; color:var(--muted);
  margin:22px 0 6px; }
.claim { border-left:4px solid var(--accent); background:var(--panel); margin:0 0 10px;
  padding:10px 16px; border-radius:0 6px 6px 0; }
.claim p, .experiment p { margin:.3em 0; }
.verdict { margin:18px 0; padding:14px 18px; border-radius:8px; font-size:17px; font-weight:600;
  border:1px solid; display:flex; gap:12px; align-items:flex-start; }
.verdict .tag { flex:none; font-size:12px; font-weight:700; text-transform:uppercase;
  letter-spacing:.05em; padding:2px 8px; border-radius:20px; margin-top:3px; color:#fff; }
.v-yes { background:var(--okbg); border-color:#a8dcb5; } .v-yes .tag { background:var(--ok); }
.v-no { background:var(--badbg); border-color:#f3b8b2; } .v-no .tag { background:var(--bad); }
.v-mixed { background:var(--mixbg); border-color:#ecd493; } .v-mixed .tag { background:var(--mix); }
.v-none { background:var(--panel); border-color:var(--line); } .v-none .tag { background:var(--muted); }
.mark { font-weight:700; } .mark.yes { color:var(--ok); } .mark.no { color:var(--bad); }
.mark.mixed { color:var(--mix); } .mark.none { color:var(--muted); }
table.data { border-collapse:collapse; margin:8px 0 4px; font-size:13.5px; width:auto;
  max-width:100%; display:block; overflow-x:auto; }
table.data caption { caption-side:top; text-align:left; color:var(--muted); font-size:13.5px;
  padding:0 0 6px; }
table.data th, table.data td { padding:6px 10px; border-bottom:1px solid var(--line);
  text-align:right; }
table.data td { white-space:nowrap; }
table.data th { vertical-align:bottom; }
table.data td.mark-cell, table.data th.mark-cell { text-align:center; }
table.data th { background:var(--panel); font-weight:600; border-bottom:2px solid #c7ced9;
  position:sticky; top:0; }
table.data td.text, table.data th.text { text-align:left; white-space:normal; min-width:120px; }
table.data tbody tr:nth-child(even) { background:#fafbfd; }
table.data tbody tr:hover { background:#eef4fb; }
figure { margin:18px 0; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); border-radius:6px; }
figcaption { color:var(--muted); font-size:14px; margin-top:4px; }
details { margin:14px 0; background:var(--panel); border:1px solid var(--line); border-radius:8px;
  padding:8px 14px; }
details summary { cursor:pointer; font-weight:600; }
pre, code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "Liberation Mono",
  monospace; font-size:13px; }
pre { white-space:pre-wrap; word-break:break-word; background:#fff; border:1px solid var(--line);
  padding:10px 12px; border-radius:6px; }
.status { padding:12px 16px; border-radius:8px; background:var(--mixbg); border:1px solid #ecd493; }
.notes { color:var(--muted); font-size:14px; }
.summary td.text { max-width:560px; }
footer { margin-top:60px; color:var(--muted); font-size:13px; }
@media (max-width: 900px) { .layout { display:block; } nav.toc { position:static; width:auto;
  height:auto; border-right:none; border-bottom:1px solid var(--line); } main { padding:20px; } }
@media print { nav.toc { display:none; } }
"""


def format_value(value: Any, spec: str | None = None) -> str:
    """A cell's text: numbers with ``spec`` (default: 4 significant digits), ``None`` as a dash."""
    if value is None:
        return "&ndash;"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            return "diverged" if math.isnan(value) else ("&infin;" if value > 0 else "-&infin;")
        if spec:
            return html.escape(format(value, spec))
        if isinstance(value, int):
            return f"{value:,}"
        if value == 0:
            return "0"
        mag = abs(value)
        if mag >= 1e5 or mag < 1e-3:
            return html.escape(f"{value:.3g}")
        return html.escape(f"{value:.4g}")
    return html.escape(str(value))


def _mark(agrees: bool | None, text: str | None = None) -> str:
    sym, cls = MARKS[agrees]
    title = text or agree_word(agrees)
    return f'<span class="mark {cls}" title="{html.escape(title)}">{sym}</span>'


def _paragraphs(text: str) -> str:
    return "".join(f"<p>{html.escape(p.strip())}</p>" for p in text.split("\n\n") if p.strip())


def _is_text_column(rows: Sequence[Sequence[Any]], j: int) -> bool:
    """Mostly strings: left-aligned; a number column with a few words ("diverged") stays right."""
    values = [r[j] for r in rows if j < len(r) and r[j] is not None]
    return 2 * sum(isinstance(v, str) for v in values) > len(values)


def render_table(table: Table) -> str:
    """One ``<table>``: numbers right-aligned, text left-aligned, booleans as marks."""
    text_cols = [_is_text_column(table.rows, j) for j in range(len(table.columns))]

    def head_class(c: str, t: bool) -> str:
        return "mark-cell" if c in table.mark_columns else ("text" if t else "num")

    head = "".join(
        f'<th class="{head_class(c, t)}" scope="col">{html.escape(c)}</th>'
        for c, t in zip(table.columns, text_cols)
    )
    body = []
    for row in table.rows:
        cells = []
        for j, value in enumerate(row):
            col = table.columns[j]
            if col in table.mark_columns:
                shown = (
                    _mark(value)
                    if (value is None or isinstance(value, bool))
                    else format_value(value)
                )
                cells.append(f'<td class="mark-cell">{shown}</td>')
            else:
                cls = "text" if text_cols[j] else "num"
                cells.append(
                    f'<td class="{cls}">{format_value(value, table.formats.get(col))}</td>'
                )
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<table class="data"><caption>{html.escape(table.caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def _verdict_block(result: SectionResult) -> str:
    v = result.verdict
    if v is None:
        return ""
    cls = {True: "v-yes", False: "v-no", None: "v-mixed"}[v.agrees]
    tag = {True: "agrees", False: "disagrees", None: "mixed"}[v.agrees]
    return (
        f'<div class="verdict {cls}" role="note"><span class="tag">{tag}</span>'
        f"<span>{html.escape(v.text)}</span></div>"
    )


def _section(result: SectionResult) -> str:
    anchor = f"s{result.number}"
    parts = [
        f'<section class="sec" id="{anchor}"><h2><span class="num">{result.number}.</span>'
        f"{html.escape(result.title)}</h2>"
    ]
    if result.claim:
        parts.append(
            f'<h3>What the chapter claims</h3><div class="claim">{_paragraphs(result.claim)}</div>'
        )
    if result.status != "ok":
        what = {
            "unavailable": "Not available in this build",
            "failed": "This section failed",
            "pending": "Not run yet",
        }.get(result.status, result.status)
        parts.append(
            f'<div class="status"><strong>{what}.</strong> {html.escape(result.error)}</div>'
        )
    if result.experiment:
        parts.append(
            f'<h3>The experiment</h3><div class="experiment">{_paragraphs(result.experiment)}</div>'
        )
    if result.verdict is not None:
        parts.append("<h3>Verdict</h3>" + _verdict_block(result))
    if result.tables:
        parts.append("<h3>Measured</h3>")
        parts.extend(render_table(t) for t in result.tables)
    for fig in result.figures:
        parts.append(
            f'<figure><img src="{html.escape(fig.file)}" width="{fig.width}" '
            f'alt="{html.escape(fig.caption)}" loading="lazy">'
            f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>"
        )
    if result.notes:
        parts.append(
            '<div class="notes">'
            + "".join(f"<p>{html.escape(n)}</p>" for n in result.notes)
            + "</div>"
        )
    if result.status == "ok" and (result.config or result.rerun):
        parts.append(
            "<details><summary>Rerun this section exactly</summary>"
            f"<p>Command (with the settings below in <code>config.json</code>):</p>"
            f"<pre>{html.escape(result.rerun)}</pre>"
            f"<p>Settings of this section ({result.time_s:.1f} s here):</p>"
            f"<pre>{html.escape(json.dumps(result.config, indent=2))}</pre></details>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def _summary(results: Sequence[SectionResult]) -> str:
    rows = []
    for r in results:
        if r.status == "ok" and r.verdict is not None:
            mark, text = _mark(r.verdict.agrees), html.escape(r.verdict.text)
        else:
            mark = '<span class="mark none">&ndash;</span>'
            text = html.escape(r.status)
        rows.append(
            f'<tr><td class="num">{r.number}</td><td class="text"><a href="#s{r.number}">'
            f'{html.escape(r.title)}</a></td><td class="mark-cell">{mark}</td><td class="text">{text}</td>'
            f'<td class="num">{r.time_s:.1f}</td></tr>'
        )
    return (
        '<table class="data summary"><caption>Each claim, the verdict from this run\'s '
        "measurements (&#10003; agrees with the chapter, &#10007; disagrees, &#8776; mixed)</caption>"
        '<thead><tr><th class="num">#</th><th class="text">Section</th><th class="mark-cell">Agrees</th>'
        '<th class="text">Verdict</th><th class="num">Time (s)</th></tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table>"
    )


def render_html(results: Sequence[SectionResult], meta: dict[str, Any]) -> str:
    """The whole page.

    Args:
        results: the sections, in order (finished, failed, unavailable or pending).
        meta: facts for the header: ``data`` (summary dict), ``seed``, ``quick``, ``device``,
            ``torch``, ``trainlab``, ``created``, ``total_time_s``, ``command``.

    Returns:
        The HTML text.
    """
    toc = []
    for r in results:
        mark = (
            _mark(r.verdict.agrees)
            if (r.status == "ok" and r.verdict)
            else '<span class="mark none">&ndash;</span>'
        )
        toc.append(f'<li>{mark}<a href="#s{r.number}">{r.number}. {html.escape(r.title)}</a></li>')
    data = meta.get("data", {})
    sizes = (
        f" &mdash; {data['n_train']:,} train / {data['n_val']:,} validation (stratified, split "
        f"seed {data.get('split_seed', 0)})"
        if "n_train" in data and "n_val" in data
        else ""
    )
    facts = {
        "Data": html.escape(str(data.get("description", ""))) + sizes,
        "Mode": "quick (small experiments)" if meta.get("quick") else "full",
        "Seed": str(meta.get("seed")),
        "Device": html.escape(str(meta.get("device", ""))),
        "Software": f"trainlab {html.escape(str(meta.get('trainlab', '')))}, PyTorch "
        f"{html.escape(str(meta.get('torch', '')))}, {html.escape(str(meta.get('cpu', '')))}",
        "Run": f"{html.escape(str(meta.get('created', '')))}, {meta.get('total_time_s', 0):.0f} s in all",
        "Command": f"<code>{html.escape(str(meta.get('command', '')))}</code>",
    }
    facts_html = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts.items())
    body = "\n".join(_section(r) for r in results)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>trainlab report: the chapter's claims, measured</title>
<style>{CSS}</style></head>
<body><div class="layout">
<nav class="toc" aria-label="Contents"><h2>Contents</h2><ol>
<li><span class="mark none">&bull;</span><a href="#summary">Summary</a></li>
{"".join(toc)}</ol></nav>
<main>
<header><h1>When training stops improving: the chapter's claims, measured</h1>
<p class="lede">Each section states a claim from the lecture chapter on training techniques,
measures it on real handwritten digits on this machine, and gives a one-sentence verdict computed
from the numbers. Every number shown is also in <code>results.json</code>; the settings are in
<code>config.json</code>.</p>
<dl class="facts">{facts_html}</dl></header>
<section id="summary"><h2>Summary</h2>{_summary(results)}</section>
{body}
<footer>Generated by <code>trainlab report</code>. Timings depend on the machine and its load;
all other numbers are reproducible with the same seed, data and versions.</footer>
</main></div></body></html>
"""
