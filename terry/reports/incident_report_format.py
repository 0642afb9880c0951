"""An incident's report in words: Markdown (what Terry commits to the GitOps repository as
``reports/incidents/INC-....md``), one self-contained HTML page (Jinja2 with autoescape,
``terry/reports/incident_report.html.j2``) and JSON (``schema: terry.incident/v1``, keys
only ever added).

Untrusted text (alert names, labels and annotations, hosts, reasons, Claude's diagnosis)
stays text: one-line values go through ``md_text`` (inert, Markdown syntax escaped), text
of several lines goes in a fence longer than any run of backticks it holds, and HTML
escapes every value (``html_page``). The Markdown holds no time of its own making, so the
same incident gives the same file whenever it is rendered.
"""

from __future__ import annotations

import re
from datetime import datetime

from terry.inert import inert
from terry.reports.incident_report import IncidentReport, ProposalReport
from terry.reports.incident_report_traces import TraceSpan, TracesSection
from terry.reports.markup import html_page, md_table, md_text, schema_json
from terry.reports.weekly_format import span

__all__ = ["md_fence", "pr_link", "to_html", "to_json", "to_markdown"]

# A pull request address shown as a link: a plain https URL and nothing else.
_URL = re.compile(r"https?://[A-Za-z0-9._~:/?#@!$&'*+,;=%-]+")
_SHA = re.compile(r"[0-9a-f]{7,64}")


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else "-"


def _sha(sha: str | None) -> str:
    """A commit id as code (ids come from git; anything else is escaped text)."""
    if not sha:
        return "-"
    return f"`{sha[:12]}`" if _SHA.fullmatch(sha) else md_text(sha)


def md_fence(text: str) -> list[str]:
    """Untrusted text of several lines as a fenced block: inert, and fenced with more
    backticks than any run inside it, so nothing in it is read as Markdown or HTML."""
    body = inert(text, multiline=True).rstrip("\n")
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + "text", *body.split("\n"), fence]


def pr_link(url: str | None) -> str | None:
    """A pull request's address when it is a plain http(s) URL (else None: shown as text)."""
    return url if url and _URL.fullmatch(url) else None


def _pr(p: ProposalReport) -> str:
    if p.pull_request_number is None and not p.pull_request_url:
        return "-"
    name = f"#{p.pull_request_number}" if p.pull_request_number is not None else "pull request"
    url = pr_link(p.pull_request_url)
    if url:
        return f"[{name}](<{url}>)"
    return f"{name} {md_text(p.pull_request_url or '')}".strip()


def _hosts(p: ProposalReport) -> str:
    if not p.applied:
        return "not applied"
    return "; ".join(
        f"{md_text(h.host)}: {h.result} ({h.changed} changed, {h.failures} failed, "
        f"{h.unreachable} unreachable)"
        for h in p.applied
    )


def _rollback(p: ProposalReport) -> str:
    if p.rollback == "manual":
        return "by a person: " + md_text(p.rollback_note or "-", 400)
    return "by its applier"


def _diagnosis_lines(report: IncidentReport) -> list[str]:
    d = report.diagnosis
    if d.ai_authored:
        confidence = "-" if d.confidence is None else f"{d.confidence}%"
        lines = [
            f"Written by Claude ({md_text(d.model or 'unknown model')}), AI-authored, "
            f"confidence {confidence}; remedy {md_text(d.remedy or '-')}. "
            "Its words, as it gave them:",
            "",
        ]
        return lines + md_fence(d.text or "(empty)")
    if d.by == "nobody":
        return [f"No remedy was proposed: {md_text(d.text, 600)}"]
    return [f"By {d.by}: {md_text(d.text, 600)}"]


def _span_line(kind: str, s: TraceSpan) -> str:
    said = f": {md_text(s.message, 300)}" if s.message else ""
    return (
        f"- {kind}: {md_text(s.service, 128)} {md_text(s.operation, 200)}, "
        f"{s.duration_ms:g} ms ({s.self_ms:g} ms in itself){said}"
    )


def _traces_lines(t: TracesSection) -> list[str]:
    """The Traces section: every name in it came from a service's spans (inert text)."""
    lines = ["", "## Traces", ""]
    if t.own_trace_id:
        lines.append(f"Terry's trace of its work on the incident: {md_text(t.own_trace_id, 64)}")
    if t.backend is None:
        return lines
    lines.append(f"Asked {md_text(t.backend, 32)}: {md_text(t.asked, 300)}")
    if t.unavailable:
        return [*lines, f"- trace unavailable: {md_text(t.unavailable, 300)}"]
    lines.append("")
    if t.trace_ids:
        lines.append("- traces: " + ", ".join(md_text(i, 64) for i in t.trace_ids))
    lines += [_span_line("failing", s) for s in t.failing]
    lines += [_span_line("slowest", s) for s in t.slowest]
    lines.append(f"- guilty service: {md_text(t.guilty or '-', 128)}")
    suspects = ", ".join(md_text(s, 128) for s in t.suspects) or "-"
    lines.append(f"- upstream suspects: {suspects}")
    if t.routed_to:
        lines.append(f"- routed to host {md_text(t.routed_to, 128)} (label service=guilty)")
    return lines


def to_markdown(report: IncidentReport) -> str:
    r = report
    on = f" on {md_text(r.host)}" if r.host else ""
    lines = [f"# {md_text(r.ref or f'incident {r.id}')}: {md_text(r.title)}{on}", ""]
    lines += [md_text(r.summary, 600), ""]
    lines += md_table(
        ["", ""],
        [
            ("incident", f"{r.id} ({md_text(r.ref)})"),
            ("source", md_text(r.source)),
            ("host", md_text(r.host or "-")),
            ("state", r.state),
            ("opened (UTC)", _when(r.opened_at)),
            ("resolved (UTC)", _when(r.resolved_at)),
            ("time to fix", span(r.seconds_to_fix)),
        ],
    )
    lines += ["", "## Timeline", ""]
    lines += md_table(
        ["time (UTC)", "step", "by", "detail"],
        (
            (
                _when(s.at),
                md_text(s.step),
                md_text(s.actor, 80),
                md_text(s.detail, 400) if s.detail else "",
            )
            for s in r.timeline
        ),
    )
    lines += ["", "## Diagnosis", ""]
    lines += _diagnosis_lines(r)
    if r.traces is not None:
        lines += _traces_lines(r.traces)
    lines += ["", "## What changed", ""]
    if not r.proposals:
        lines.append("Nothing: no proposal was made.")
    for p in r.proposals:
        lines += [
            f"- proposal {p.id}: {md_text(p.remedy)} on {md_text(', '.join(p.hosts))} "
            f"({p.applier}{', ' + md_text(p.target) if p.target else ''}), risk "
            f"{md_text(p.risk)}, {p.state.replace('_', ' ')}",
            f"  - commit {_sha(p.commit)} on branch {md_text(p.branch or '-')}; merged into "
            f"main as {_sha(p.merge_commit)}; pull request {_pr(p)}",
            f"  - dry run: {md_text(p.dry_run, 600)}",
            f"  - decision: {md_text(p.decision or '-')}"
            + (f" ({md_text('; '.join(p.reasons), 600)})" if p.reasons else ""),
            f"  - approved by: {md_text(p.approved_by or '-')}",
            f"  - applied: {_hosts(p)}",
            f"  - verified: {md_text(p.verified or '-', 600)}",
            f"  - rollback: {_rollback(p)}",
        ]
    lines += ["", "## Time to fix", ""]
    lines += md_table(
        ["from the alert's start to", "time"],
        [
            ("received by Terry", _gap(r.opened_at, r.received_at)),
            ("diagnosed", _gap(r.opened_at, r.diagnosed_at)),
            ("fix verified", span(r.seconds_to_fix)),
            ("resolved", span(r.seconds_open)),
        ],
    )
    lines += ["", "## Recurrence", ""]
    if not r.recurrence:
        lines.append(
            "None: no earlier proposal of this remedy on this host."
            if r.proposals
            else "None: no remedy was proposed."
        )
    else:
        lines.append(
            f"{r.recurrence_total} earlier proposal(s) of the same remedy on the same host:"
        )
        lines.append("")
        lines += md_table(
            ["proposal", "incident", "proposed (UTC)", "state", "outcome"],
            (
                (
                    e.proposal_id,
                    f"{e.incident_id} ({md_text(e.incident_ref)})",
                    _when(e.at),
                    e.state.replace("_", " "),
                    md_text(e.outcome or "-", 300),
                )
                for e in r.recurrence
            ),
        )
    lines += ["", "## What a person should still look at", ""]
    lines += [f"- {md_text(a, 800)}" for a in r.attention] or ["Nothing."]
    lines += ["", "## The alert", ""]
    lines += md_table(
        ["", "name", "value"],
        [
            *(("label", md_text(k, 100), md_text(v, 300)) for k, v in r.labels.items()),
            *(("annotation", md_text(k, 100), md_text(v, 300)) for k, v in r.annotations.items()),
        ],
    )
    if r.truncated:
        lines += ["", "Alertmanager truncated the payload: the picture may be incomplete."]
    lines += ["", f"Schema of the JSON form: {r.schema}."]
    return "\n".join(lines) + "\n"


def _gap(start: datetime, end: datetime | None) -> str:
    return span((end - start).total_seconds()) if end else "-"


def to_json(report: IncidentReport) -> str:
    return schema_json(report)


def to_html(report: IncidentReport) -> str:
    r = report
    return html_page(
        "reports/incident_report.html.j2",
        r=r,
        when=_when,
        span=span,
        gap=_gap,
        pr_link=pr_link,
        title=f"{r.ref or f'incident {r.id}'}: {r.title}",
    )
