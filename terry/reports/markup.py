"""What Terry's reports share (``terry drift report``, ``terry report weekly``): JSON with its
schema first, untrusted text made safe in Markdown, one self-contained HTML page from a
packaged Jinja2 template (autoescape on), and the geometry of the inline SVG charts those
pages draw (``templates/charts.html.j2`` holds the macros that draw them,
``templates/page.html.j2`` the page and its style).

Geometry is computed here, in Python, so templates only place numbers: a template never does
arithmetic on untrusted values, and a chart's numbers can be tested without a browser.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from terry.inert import inert
from terry.jsonable import to_jsonable

__all__ = [
    "BarChart",
    "BarRow",
    "Column",
    "ColumnChart",
    "Segment",
    "Series",
    "bar_chart",
    "column_chart",
    "html_page",
    "md_table",
    "md_text",
    "schema_json",
    "write_atomically",
]


def schema_json(report: Any) -> str:
    """A report dataclass as indented JSON, its ``schema`` key first."""
    data = to_jsonable(report)
    ordered = {"schema": data.pop("schema"), **data}
    return json.dumps(ordered, indent=2) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the new, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


_CONTROLS = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
# Backslash-escaped, so they show as themselves: | would end a table cell, < > open HTML,
# [ ] make links and images (an image is fetched by whoever views the page), ` opens code,
# & an entity, * ~ emphasis. (An underscore inside a word is not emphasis: host_01 stays.)
_MARKDOWN = re.compile(r"([\\`|<>\[\]*~&])")


def md_text(text: object, limit: int = 200) -> str:
    """Untrusted text for a Markdown table cell or list item: one line, at most ``limit``
    characters of it, every character that Markdown would read as syntax escaped."""
    flat = inert(_CONTROLS.sub(" ", str(text)).strip())  # C1, bidi, zero-width: shown
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return _MARKDOWN.sub(r"\\\1", flat)


def md_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """The lines of a Markdown table. Cells are written as given: pass untrusted text
    through ``md_text`` first."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _template(name: str) -> str | None:
    found = resources.files("terry").joinpath(name)
    return found.read_text("utf-8") if found.is_file() else None


def _inert(value: Any) -> Any:
    """Every string a page prints, inert (``terry.inert``), then autoescaped; markup the
    templates make (``Markup``) as it is."""
    if isinstance(value, str) and not hasattr(value, "__html__"):
        return inert(value, multiline=True)
    return value


_PAGES = jinja2.Environment(
    loader=jinja2.FunctionLoader(_template),
    autoescape=True,
    finalize=_inert,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def html_page(template: str, **context: Any) -> str:
    """Render ``template`` (a path under the ``terry`` package, e.g.
    ``drift/report.html.j2``) with autoescape: every value is text unless marked safe."""
    return _PAGES.get_template(template).render(**context)


# -- chart geometry ------------------------------------------------------------------------
@dataclass(frozen=True)
class Series:
    """One kind of bar: its name in the legend and its colour."""

    label: str
    color: str


@dataclass(frozen=True)
class Segment:
    series: Series
    value: float
    y: float
    h: float


@dataclass(frozen=True)
class Column:
    label: str  # under the column
    title: str  # the tooltip's subject ("2026-11-24", "scan 12")
    x: float
    w: float
    cx: float
    total: float
    total_y: float  # where the total is written, above the column
    segments: tuple[Segment, ...]  # bottom first; only those with a value
    marker_y: float | None = None  # a dot (drift: drifted hosts) at this height
    marker: float | None = None


@dataclass(frozen=True)
class ColumnChart:
    width: int
    height: int
    pad: int
    left: int
    top: float  # the value at the top of the scale
    columns: tuple[Column, ...]
    series: tuple[Series, ...]
    marker: Series | None = None
    axis: str = ""  # under the labels


def column_chart(
    labels: Sequence[tuple[str, str]],
    stacks: Sequence[Sequence[float]],
    series: Sequence[Series],
    *,
    markers: Sequence[float] | None = None,
    marker: Series | None = None,
    axis: str = "",
    width: int = 720,
    height: int = 240,
) -> ColumnChart:
    """Stacked columns, one per ``labels`` entry (short label, tooltip subject), each stack
    holding one value per ``series`` (bottom first), with an optional dot per column."""
    pad, left = 32, 36
    count = max(len(labels), 1)
    top = max([sum(s) for s in stacks] + list(markers or ()) + [1])
    step = (width - left - pad) / count
    usable = height - 2 * pad
    columns = []
    for n, ((label, title), stack) in enumerate(zip(labels, stacks, strict=True)):
        x, y = left + n * step, float(height - pad)
        segments = []
        for kind, value in zip(series, stack, strict=True):
            h = usable * value / top
            y -= h
            if value:
                segments.append(Segment(kind, value, round(y, 1), round(h, 1)))
        total = sum(stack)
        marked = markers[n] if markers is not None else None
        columns.append(
            Column(
                label=label,
                title=title,
                x=round(x + step * 0.15, 1),
                w=round(step * 0.7, 1),
                cx=round(x + step / 2, 1),
                total=total,
                total_y=round(height - pad - usable * total / top - 4, 1),
                segments=tuple(segments),
                marker_y=None if marked is None else round(height - pad - usable * marked / top, 1),
                marker=marked,
            )
        )
    return ColumnChart(width, height, pad, left, top, tuple(columns), tuple(series), marker, axis)


@dataclass(frozen=True)
class Bar:
    series: Series
    value: float
    text: str  # written after the bar
    w: float
    y: float


@dataclass(frozen=True)
class BarRow:
    label: str
    y: float  # the label's baseline
    bars: tuple[Bar, ...]


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    label_width: int
    rows: tuple[BarRow, ...]
    series: tuple[Series, ...]


def bar_chart(
    rows: Sequence[tuple[str, Sequence[float], Sequence[str]]],
    series: Sequence[Series],
    *,
    per_row: bool = False,
    width: int = 720,
    label_width: int = 190,
) -> BarChart:
    """Horizontal bars, a group per row (label, one value and its text per series). One
    scale for the chart, or with ``per_row`` one per row (to compare this window with the
    last where rows have different units)."""
    bar_h, gap, pad = 12, 4, 12
    row_h = len(series) * (bar_h + gap) + 10
    usable = width - label_width - 80
    overall = max([v for _, values, _ in rows for v in values] + [1])
    out = []
    for n, (label, values, texts) in enumerate(rows):
        top = max([*values, 1]) if per_row else overall
        y0 = pad + n * row_h
        bars = tuple(
            Bar(kind, value, text, round(usable * max(value, 0) / top, 1), y0 + k * (bar_h + gap))
            for k, (kind, value, text) in enumerate(zip(series, values, texts, strict=True))
        )
        out.append(BarRow(label, round(y0 + (row_h - 10) / 2 + 4, 1), bars))
    height = pad * 2 + row_h * max(len(rows), 1)
    return BarChart(width, height, label_width, tuple(out), tuple(series))
