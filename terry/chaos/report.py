"""The resilience report: what chaos runs proved about Terry.

Per fault type: runs, MTTR over time (a chart: text bars in Markdown, an inline SVG in
HTML), median MTTR; over all runs: the auto-resolution rate (resolved / judged runs),
false fixes (Terry said verified, the host disagreed: listed first, they are the worst),
undetected faults, and the slowest phase on average. Runs still going, dry runs and runs
that never injected are left out of the rates.
"""

from __future__ import annotations

import html
import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime

from terry.chaos.journal import ChaosRunRow, Outcome
from terry.chaos.record import PHASES, phases

__all__ = ["Point", "Report", "build_report", "to_html", "to_json", "to_markdown"]

SCHEMA = "terry.chaos-report/v1"
_JUDGED = {
    o.value for o in (Outcome.RESOLVED, Outcome.FALSE_FIX, Outcome.UNRESOLVED, Outcome.UNDETECTED)
}


@dataclass(frozen=True)
class Point:
    run_id: int
    at: datetime
    target: str
    outcome: str
    mttr: float | None
    phases: dict[str, float | None]


@dataclass(frozen=True)
class FaultSummary:
    fault: str
    runs: int
    resolved: int
    median_mttr: float | None
    points: tuple[Point, ...]


@dataclass(frozen=True)
class Report:
    runs: int
    judged: int
    resolved: int
    auto_resolution_rate: float | None
    false_fixes: tuple[Point, ...]
    undetected: tuple[Point, ...]
    unresolved: tuple[Point, ...]
    phase_means: dict[str, float | None]
    slowest_phase: str | None
    threshold: float
    over_threshold: tuple[Point, ...]
    faults: tuple[FaultSummary, ...] = field(default_factory=tuple)


def _point(row: ChaosRunRow) -> Point:
    split = phases(row.injected_at, row.alert_at, row.decided_at, row.applied_at, row.verified_at)
    return Point(row.id, row.started_at, row.target, row.outcome or "", split.pop("mttr"), split)


def build_report(rows: Sequence[ChaosRunRow], *, threshold: float) -> Report:
    points = [_point(r) for r in rows if r.outcome in _JUDGED]
    resolved = [p for p in points if p.outcome == Outcome.RESOLVED.value]
    means: dict[str, float | None] = {}
    for name in PHASES:
        values = [p.phases[name] for p in resolved if p.phases.get(name) is not None]
        means[name] = statistics.fmean(values) if values else None  # type: ignore[arg-type]
    known = {k: v for k, v in means.items() if v is not None}
    faults = []
    for fault in sorted({r.fault for r in rows if r.outcome in _JUDGED}):
        mine = [_point(r) for r in rows if r.fault == fault and r.outcome in _JUDGED]
        times = [p.mttr for p in mine if p.mttr is not None and p.outcome == Outcome.RESOLVED.value]
        faults.append(
            FaultSummary(
                fault=fault,
                runs=len(mine),
                resolved=sum(p.outcome == Outcome.RESOLVED.value for p in mine),
                median_mttr=statistics.median(times) if times else None,
                points=tuple(mine),
            )
        )
    return Report(
        runs=len(rows),
        judged=len(points),
        resolved=len(resolved),
        auto_resolution_rate=len(resolved) / len(points) if points else None,
        false_fixes=tuple(p for p in points if p.outcome == Outcome.FALSE_FIX.value),
        undetected=tuple(p for p in points if p.outcome == Outcome.UNDETECTED.value),
        unresolved=tuple(p for p in points if p.outcome == Outcome.UNRESOLVED.value),
        phase_means=means,
        slowest_phase=max(known, key=lambda k: known[k]) if known else None,
        threshold=threshold,
        over_threshold=tuple(p for p in resolved if p.mttr is not None and p.mttr > threshold),
        faults=tuple(faults),
    )


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}s"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _bars(points: Sequence[Point], width: int = 40) -> list[str]:
    """One text bar per run, scaled to the slowest; a run with no verified fix is marked."""
    top = max((p.mttr for p in points if p.mttr is not None), default=0.0) or 1.0
    lines = []
    for p in points:
        day = p.at.strftime("%Y-%m-%d %H:%M")
        if p.mttr is None:
            lines.append(f"{day}  {'':<{width}}  {p.outcome}")
        else:
            bar = "#" * max(1, round(width * p.mttr / top))
            lines.append(f"{day}  {bar:<{width}}  {p.mttr:.0f}s")
    return lines


def to_markdown(report: Report) -> str:
    out = ["# Resilience report", ""]
    out.append(
        f"{report.judged} judged run(s) of {report.runs}: auto-resolution rate "
        f"{_pct(report.auto_resolution_rate)}, {len(report.false_fixes)} false fix(es), "
        f"{len(report.undetected)} undetected, {len(report.unresolved)} unresolved; slowest "
        f"phase: {report.slowest_phase or '-'}."
    )
    out.append("")
    if report.false_fixes:
        out += ["## False fixes (Terry said verified; the host still had the fault)", ""]
        out += [
            f"- run {p.run_id} on {p.target} ({p.at:%Y-%m-%d %H:%M})" for p in report.false_fixes
        ]
        out.append("")
    if report.undetected:
        out += ["## Undetected faults", ""]
        out += [
            f"- run {p.run_id} on {p.target} ({p.at:%Y-%m-%d %H:%M})" for p in report.undetected
        ]
        out.append("")
    if report.over_threshold:
        out += [f"## Over the MTTR threshold ({report.threshold:.0f}s)", ""]
        out += [f"- run {p.run_id} on {p.target}: {_s(p.mttr)}" for p in report.over_threshold]
        out.append("")
    out += ["## Phases (mean over resolved runs)", "", "| phase | mean |", "| --- | --- |"]
    out += [f"| {name} | {_s(report.phase_means[name])} |" for name in PHASES]
    out.append("")
    for fault in report.faults:
        out += [
            f"## {fault.fault}: {fault.resolved}/{fault.runs} resolved, median MTTR "
            f"{_s(fault.median_mttr)}",
            "",
            "```",
            *_bars(fault.points),
            "```",
            "",
        ]
    return "\n".join(out)


def _svg(points: Sequence[Point], width: int = 560, height: int = 160) -> str:
    """MTTR per run over time as an inline SVG: a dot per run where it ran (red: no
    verified fix), the first and last day under the axis."""
    pad = 30
    top = max((p.mttr for p in points if p.mttr is not None), default=0.0) or 1.0
    first = min((p.at for p in points), default=None)
    last = max((p.at for p in points), default=None)
    span = (last - first).total_seconds() if first and last else 0.0
    n = max(1, len(points) - 1)

    def x_of(i: int, at: datetime) -> float:
        share = (at - first).total_seconds() / span if first and span else i / n
        return pad + (width - pad - 10) * share

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="MTTR per run">',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - 5}" y2="{height - pad}" '
        'stroke="#888"/>',
        f'<text x="2" y="{pad - 8}" font-size="10">{top:.0f}s</text>',
    ]
    if first and last:
        parts += [
            f'<text x="{pad}" y="{height - 8}" font-size="10">{first:%Y-%m-%d}</text>',
            f'<text x="{width - 5}" y="{height - 8}" font-size="10" text-anchor="end">'
            f"{last:%Y-%m-%d}</text>",
        ]
    line = []
    for i, p in enumerate(sorted(points, key=lambda q: q.at)):
        x = x_of(i, p.at)
        if p.mttr is None:
            parts.append(
                f'<circle cx="{x:.1f}" cy="{pad:.1f}" r="4" fill="#c00"><title>run '
                f"{p.run_id}: {html.escape(p.outcome)}</title></circle>"
            )
            continue
        y = height - pad - (height - 2 * pad) * p.mttr / top
        line.append(f"{x:.1f},{y:.1f}")
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#06c"><title>run {p.run_id}: '
            f"{p.mttr:.0f}s</title></circle>"
        )
    if len(line) > 1:
        parts.insert(3, f'<polyline fill="none" stroke="#06c" points="{" ".join(line)}"/>')
    parts.append("</svg>")
    return "".join(parts)


def to_html(report: Report) -> str:
    e = html.escape
    body = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Resilience report</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em}</style>",
        "</head><body><h1>Resilience report</h1>",
        f"<p>{report.judged} judged run(s) of {report.runs}: auto-resolution rate "
        f"{_pct(report.auto_resolution_rate)}, {len(report.false_fixes)} false fix(es), "
        f"{len(report.undetected)} undetected, {len(report.unresolved)} unresolved; slowest "
        f"phase: {e(report.slowest_phase or '-')}.</p>",
    ]
    if report.false_fixes:
        body.append("<h2>False fixes</h2><ul>")
        body += [f"<li>run {p.run_id} on {e(p.target)}</li>" for p in report.false_fixes]
        body.append("</ul>")
    if report.undetected:
        body.append("<h2>Undetected faults</h2><ul>")
        body += [f"<li>run {p.run_id} on {e(p.target)}</li>" for p in report.undetected]
        body.append("</ul>")
    body.append("<h2>Phases</h2><table><tr><th>phase</th><th>mean</th></tr>")
    body += [f"<tr><td>{n}</td><td>{_s(report.phase_means[n])}</td></tr>" for n in PHASES]
    body.append("</table>")
    for fault in report.faults:
        body.append(
            f"<h2>{e(fault.fault)}: {fault.resolved}/{fault.runs} resolved, median MTTR "
            f"{_s(fault.median_mttr)}</h2>{_svg(fault.points)}"
        )
    body.append("</body></html>\n")
    return "\n".join(body)


def to_json(report: Report) -> str:
    def plain(value: object) -> object:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return json.dumps({"schema": SCHEMA, **plain(asdict(report))}, indent=2) + "\n"  # type: ignore[dict-item]
