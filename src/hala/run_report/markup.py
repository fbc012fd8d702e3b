"""HTML building blocks of the run report: escaped text, tables, charts, links and Arabic runs.

Every value is escaped; text holding Arabic letters is marked ``dir="rtl" lang="ar"`` so the browser
shapes it and sets it right to left. The page carries its own style and no script.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from typing import Any

from hala.evaluation.report import Table

ARABIC = re.compile("[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff]")
STATUS_CLASS = {
    "FINISHED": "ok",
    "FAILED": "failed",
    "KILLED": "failed",
    "RUNNING": "running",
    "SCHEDULED": "running",
    "NOT RUN": "notrun",
}

STYLE = """
body { font-family: "DejaVu Sans", system-ui, sans-serif; margin: 1.5em auto; max-width: 1280px;
       color: #1d2330; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #d7dce5; padding-top: 0.6em; }
h3 { margin-bottom: 0.3em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.88em; }
th, td { border: 1px solid #d7dce5; padding: 0.25em 0.55em; text-align: left; vertical-align: top; }
th { background: #eef1f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.published td { color: #59606e; font-style: italic; }
tr.block td { background: #f6f7fa; font-weight: bold; }
img.chart { max-width: 100%; border: 1px solid #e3e6ec; margin: 0.4em 0; display: block; }
.ok { color: #146c2e; } .failed { color: #b3261e; font-weight: bold; } .notrun { color: #7a7f8a; }
.running { color: #8a5a00; } .reused { color: #1f5fa8; }
.badge { display: inline-block; padding: 0.1em 0.6em; border-radius: 0.8em; background: #eef1f6;
         margin: 0 0.3em 0.3em 0; }
.note { color: #59606e; font-size: 0.9em; } nav a { margin-right: 0.9em; }
[lang="ar"] { font-size: 1.05em; unicode-bidi: isolate; }
"""


def esc(value: Any) -> str:
    """``value`` as escaped HTML text."""
    return html.escape(str(value), quote=True)


def text(value: Any) -> str:
    """Escaped text; Arabic text in an isolated right-to-left span."""
    s = str(value)
    if ARABIC.search(s):
        return f'<span dir="rtl" lang="ar">{esc(s)}</span>'
    return esc(s)


def number(value: float | int | None, digits: int = 1) -> str:
    """A figure with thousands separators (``-`` for None)."""
    if value is None:
        return "-"
    if isinstance(value, int) or digits == 0:
        return f"{round(value):,}"
    return f"{value:,.{digits}f}"


def figure(value: float) -> str:
    """A measured figure: whole numbers with thousands separators, others with three decimals."""
    return f"{round(value):,}" if float(value).is_integer() else f"{value:,.3f}"


def money(value: float | None) -> str:
    """US dollars, two decimals (``-`` for None)."""
    return "-" if value is None else f"${value:,.2f}"


def status(value: str) -> str:
    """An MLflow run status (or NOT RUN) styled by outcome."""
    label = {"FINISHED": "finished", "NOT RUN": "did not run"}.get(value, value.lower())
    return f'<span class="{STATUS_CLASS.get(value, "running")}">{esc(label)}</span>'


def link(href: str | None, label: str) -> str:
    """A link opening in a new tab, or the bare label without an address."""
    if not href:
        return esc(label)
    return f'<a href="{esc(href)}" target="_blank" rel="noopener">{esc(label)}</a>'


def url_or_text(value: str) -> str:
    """A value that is an http(s) address as a link to itself, else as text."""
    return link(value, value) if value.startswith(("http://", "https://")) else text(value)


def cell(value: Any, raw: bool = False) -> str:
    """One ``<td>``: numbers right-aligned, Arabic right to left; ``raw`` markup is inserted as is."""
    if raw:
        return f"<td>{value}</td>"
    if isinstance(value, int | float):
        return f'<td class="num">{esc(value)}</td>'
    s = str(value)
    if ARABIC.search(s):
        return f'<td dir="rtl" lang="ar">{esc(s)}</td>'
    return f"<td>{esc(s)}</td>"


def table(
    table_id: str,
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    row_classes: Sequence[str] | None = None,
    raw_columns: Iterable[int] = (),
) -> str:
    """A ``<table id=...>``; ``raw_columns`` hold markup built by this module (already escaped)."""
    raw = set(raw_columns)
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        css = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{css}>" + "".join(cell(v, raw=j in raw) for j, v in enumerate(row)) + "</tr>")
    return f'<table id="{esc(table_id)}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def report_table(table_id: str, data: Table) -> str:
    """A Table of :mod:`hala.evaluation.report` (1 or 2): the report's rows in grey, block titles bold."""
    classes = []
    for row in data.rows:
        first = str(row[0])
        if "(report)" in first:
            classes.append("published")
        elif first and all(str(v) == "" for v in row[1:]):
            classes.append("block")
        else:
            classes.append("")
    return table(table_id, data.header, data.rows, classes)


def chart(chart_id: str, uri: str, alt: str) -> str:
    """An embedded chart image."""
    return f'<img class="chart" id="{esc(chart_id)}" src="{uri}" alt="{esc(alt)}">'


def section(section_id: str, title: str, body: str) -> str:
    """A titled section of the page."""
    return f'<section id="{esc(section_id)}"><h2>{esc(title)}</h2>{body}</section>'


def note(message: str) -> str:
    """A grey explanatory paragraph."""
    return f'<p class="note">{text(message)}</p>'


def page(title: str, header: str, nav: Sequence[tuple[str, str]], sections: Sequence[str]) -> str:
    """The whole document: head with the inline style, a header, a table of contents, the sections."""
    links = "".join(f'<a href="#{esc(i)}">{esc(t)}</a>' for i, t in nav)
    return (
        '<!DOCTYPE html>\n<html lang="en" dir="ltr">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{esc(title)}</title>\n'
        f"<style>{STYLE}</style>\n</head>\n<body>\n<header>{header}</header>\n<nav>{links}</nav>\n"
        + "\n".join(sections)
        + "\n</body>\n</html>\n"
    )
