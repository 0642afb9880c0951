"""One incident's report: what a person reads in a minute when it is over (or asks how it is
going). A typed ``IncidentReport`` built from the read models (``terry.reports.views``
``incident_story``, ``terry.proposals.view`` ``proposal_detail``) plus the few incident
facts they do not carry (when each alert was received, when diagnosis ran, the incident's
own audit rows) and the remedy's record on the same host (recurrence).

Sections: a summary line; the timeline (alert fired = the alert's ``startsAt``, received,
diagnosed, proposed, dry run, decision with reasons, approved by, applied per host, verified
with the evidence, resolved); the diagnosis (Terry's rules, or Claude's with its
confidence); the traces (the incident's trace id, slowest and failing spans, the guilty
service, upstream suspects: ``incident_report_traces``); what changed (commit, branch,
merge, pull request); time to fix; recurrence (earlier proposals of the same remedy on the
same host, with their outcome); and what a person should still look at.

Nothing here renders: ``terry.reports.incident_report_format`` writes Markdown, HTML and JSON
(``schema: terry.incident/v1``). Every string from an alert, a host, a reason or Claude is
untrusted and stays as it came; the renderers make it inert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from terry.incidents.refs import resolve_incident
from terry.proposals.plan import MANUAL, Plan
from terry.proposals.view import ProposalDetail, RunSummary, proposal_detail
from terry.reports.incident_report_traces import TracesSection, traces_section
from terry.reports.views import IncidentStory, incident_story
from terry.store import Store
from terry.store.models import AlertRow, AuditRow, IncidentRow, ProposalRow

__all__ = [
    "SCHEMA",
    "Diagnosis",
    "Earlier",
    "HostResult",
    "IncidentReport",
    "ProposalReport",
    "Step",
    "incident_report",
]

SCHEMA = "terry.incident/v1"
_RECURRENCE_LIMIT = 20  # earlier proposals listed (the count covers them all)
_GATE_STATES = frozenset({"merged", "awaiting_review", "denied"})
# What each proposal state is called on the timeline.
_STEP = {
    "proposed": "proposed",
    "checked": "dry run passed",
    "approved": "approved",
    "merged": "merged",
    "applying": "apply started",
    "applied": "applied",
    "verified": "verified",
    "escalated": "verification unknown",
    "failed": "failed",
    "rolled_back": "rolled back",
    "rejected": "rejected",
    "interrupted": "interrupted",
}


@dataclass(frozen=True)
class Step:
    """One line of the timeline."""

    at: datetime
    step: str  # Terry's words: "alert fired", "received", "decision: merge", ...
    actor: str  # who did it (alertmanager, terry, policy, a person, ansible)
    detail: str  # untrusted: may quote a label, a reason, a host
    proposal_id: int | None = None


@dataclass(frozen=True)
class Diagnosis:
    by: str  # "Terry's rules", "Claude", or "nobody" (no proposal was made)
    ai_authored: bool
    model: str | None  # Claude's model when ai_authored
    confidence: int | None  # 0-100, Claude's own estimate
    text: str  # untrusted when Claude wrote it
    remedy: str | None


@dataclass(frozen=True)
class HostResult:
    """What one run did on one host (ansible's play recap)."""

    host: str
    result: str  # changed, ok, failed, unreachable
    ok: int
    changed: int
    failures: int
    unreachable: int


@dataclass(frozen=True)
class ProposalReport:
    id: int
    remedy: str
    hosts: tuple[str, ...]
    risk: str
    state: str
    applier: str
    target: str | None
    decision: str | None
    reasons: tuple[str, ...]
    approved_by: str | None
    branch: str | None
    commit: str | None
    merge_commit: str | None
    pull_request_number: int | None
    pull_request_url: str | None
    dry_run: str  # passed/failed, changes, and the remedy's own estimates
    applied: tuple[HostResult, ...]  # the last apply run, per host
    verified: str | None  # the verification's verdict and evidence
    verify_hosts: tuple[HostResult, ...]
    outcome: str | None
    rollback: str  # "applier" or "manual"
    rollback_note: str
    ai_authored: bool
    ai_confidence: int | None


@dataclass(frozen=True)
class Earlier:
    """An earlier proposal of the same remedy on the same host."""

    proposal_id: int
    incident_id: int
    incident_ref: str
    at: datetime
    state: str
    outcome: str | None


@dataclass(frozen=True)
class IncidentReport:
    id: int
    ref: str
    title: str  # the alert's name (untrusted)
    source: str
    host: str | None
    state: str
    summary: str  # the incident in one line
    opened_at: datetime  # the alert's start for alerts
    received_at: datetime | None  # when Terry recorded it
    diagnosed_at: datetime | None
    fixed_at: datetime | None
    resolved_at: datetime | None
    seconds_to_fix: float | None  # opened_at -> fixed_at
    seconds_open: float | None  # opened_at -> resolved_at
    labels: dict[str, Any]
    annotations: dict[str, Any]
    truncated: bool
    diagnosis: Diagnosis
    proposals: tuple[ProposalReport, ...]
    timeline: tuple[Step, ...]
    recurrence: tuple[Earlier, ...]  # newest first, at most 20
    recurrence_total: int
    attention: tuple[str, ...]  # what a person should still look at
    schema: str = SCHEMA
    # What the services' traces said, and Terry's own trace (incident_report_traces).
    traces: TracesSection | None = None


# -- facts the read models do not carry ------------------------------------------------------
@dataclass(frozen=True)
class _Facts:
    diagnosed_at: datetime | None
    audits: tuple[AuditRow, ...]  # the incident's own
    alerts: tuple[AlertRow, ...]
    earlier: tuple[tuple[ProposalRow, str], ...]  # (proposal, its incident's ref)


def _facts(store: Store, incident_id: int, proposals: list[ProposalDetail]) -> _Facts:
    with store.session() as session:
        diagnosed_at = session.scalar(
            select(IncidentRow.diagnosed_at).where(IncidentRow.id == incident_id)
        )
        audits = tuple(
            session.scalars(
                select(AuditRow)
                .where(AuditRow.entity == "incident", AuditRow.entity_id == incident_id)
                .order_by(AuditRow.at, AuditRow.id)
            )
        )
        alerts = tuple(
            session.scalars(
                select(AlertRow).where(AlertRow.incident_id == incident_id).order_by(AlertRow.id)
            )
        )
        earlier: list[tuple[ProposalRow, str]] = []
        remedies = {p.summary.remedy for p in proposals}
        hosts = {h for p in proposals for h in p.summary.hosts}
        if remedies and hosts:
            first = min(p.summary.id for p in proposals)
            rows = session.execute(
                select(ProposalRow, IncidentRow.ref)
                .join(IncidentRow, IncidentRow.id == ProposalRow.incident_id)
                .where(
                    ProposalRow.remedy.in_(sorted(remedies)),
                    ProposalRow.id < first,
                    ProposalRow.incident_id != incident_id,
                )
                .order_by(ProposalRow.id.desc())
                .limit(2000)
            ).all()
            earlier = [(row, ref or "") for row, ref in rows if hosts & set(row.hosts)]
    return _Facts(diagnosed_at, audits, alerts, tuple(earlier))


# -- building --------------------------------------------------------------------------------
def _hosts(run: RunSummary | None) -> tuple[HostResult, ...]:
    if run is None:
        return ()
    out = []
    for host, stats in sorted(run.stats.items()):
        numbers = {k: int(stats.get(k) or 0) for k in ("ok", "changed", "failures", "unreachable")}
        result = (
            "unreachable"
            if numbers["unreachable"]
            else "failed"
            if numbers["failures"]
            else "changed"
            if numbers["changed"]
            else "ok"
        )
        out.append(HostResult(str(host), result, **numbers))
    return tuple(out)


def _last(detail: ProposalDetail, kind: str) -> RunSummary | None:
    runs = [r for r in detail.runs if r.kind == kind]
    return runs[-1] if runs else None


def _reason_to(detail: ProposalDetail, *states: str) -> str | None:
    """The reason of the newest transition into one of ``states``."""
    for entry in reversed(detail.history):
        if entry.what.rsplit("→", 1)[-1].strip() in states:
            return entry.detail
    return None


def _dry_run(detail: ProposalDetail) -> str:
    summary = detail.check_summary or {}
    if not summary:
        return "not run"
    words = "passed" if summary.get("ok") else "failed"
    text = f"{words}: {summary.get('changed', 0)} change(s)"
    bad = [*summary.get("failed_hosts", []), *summary.get("unreachable_hosts", [])]
    if bad:
        text += f", failed on {', '.join(map(str, bad))}"
    estimates = [str(e.get("summary")) for e in summary.get("estimates", []) if e.get("summary")]
    if estimates:
        text += "; estimate: " + "; ".join(estimates)
    return text


def _proposal(detail: ProposalDetail, plan: Plan) -> ProposalReport:
    s = detail.summary
    pr = detail.pull_request or {}
    verified = _reason_to(detail, "verified", "escalated", "failed")
    return ProposalReport(
        id=s.id,
        remedy=s.remedy,
        hosts=s.hosts,
        risk=s.risk,
        state=s.state,
        applier=detail.applier,
        target=detail.target,
        decision=s.decision,
        reasons=detail.reasons,
        approved_by=detail.approved_by,
        branch=s.branch,
        commit=detail.commit,
        merge_commit=detail.merge_commit,
        pull_request_number=pr.get("number"),
        pull_request_url=pr.get("url"),
        dry_run=_dry_run(detail),
        applied=_hosts(_last(detail, "apply")),
        verified=verified,
        verify_hosts=_hosts(_last(detail, "verify")),
        outcome=detail.outcome,
        rollback=plan.rollback,
        rollback_note=plan.rollback_note,
        ai_authored=detail.ai is not None,
        ai_confidence=(detail.ai or {}).get("confidence"),
    )


def _proposal_steps(detail: ProposalDetail) -> list[Step]:
    pid = detail.summary.id
    steps: list[Step] = []
    for entry in detail.history:
        before, _, after = entry.what.rpartition("→")
        before, after = before.strip(), after.strip()
        if after in _GATE_STATES and before in ("checked", "proposed"):
            name = {"merged": "merge", "awaiting_review": "review", "denied": "deny"}[after]
            reasons = "; ".join(detail.reasons) or entry.detail
            steps.append(Step(entry.at, f"decision: {name}", entry.actor, reasons, pid))
            if after == "merged":
                steps.append(Step(entry.at, "merged", entry.actor, entry.detail, pid))
            continue
        if after == "approved":
            steps.append(
                Step(entry.at, f"approved by {entry.actor}", entry.actor, entry.detail, pid)
            )
            continue
        if after == "applied":
            continue  # said per host below, from the apply run
        steps.append(Step(entry.at, _STEP.get(after, after), entry.actor, entry.detail, pid))
    for run in detail.runs:
        at = run.finished_at or run.started_at
        if run.kind == "check":
            steps.append(
                Step(run.started_at, "dry run", "ansible", f"{run.status} (rc {run.rc})", pid)
            )
        elif run.kind in ("apply", "rollback"):
            word = "applied" if run.kind == "apply" else "rolled back"
            for host in _hosts(run) or (HostResult("(no host recap)", run.status, 0, 0, 0, 0),):
                steps.append(
                    Step(
                        at,
                        f"{word} on {host.host}",
                        "ansible",
                        f"{host.result}: {host.changed} changed, {host.failures} failed, "
                        f"{host.unreachable} unreachable (run {run.id}, {run.status})",
                        pid,
                    )
                )
    return steps


def _incident_steps(facts: _Facts, story: IncidentStory, diagnosis: Diagnosis) -> list[Step]:
    steps: list[Step] = []
    for alert in facts.alerts:
        if alert.status == "firing":
            steps.append(Step(alert.starts_at, "alert fired", "alertmanager", alert.alertname))
        else:
            at = alert.ends_at or alert.received_at
            steps.append(Step(at, "alert resolved", "alertmanager", alert.alertname))
    for row in facts.audits:
        if row.from_state is None:
            steps.append(Step(row.at, "received", row.actor, row.reason))
        elif row.to_state == "resolved" and row.from_state != "resolved":
            steps.append(Step(row.at, "resolved", row.actor, row.reason))
        elif row.from_state == "resolved" and row.to_state == "open":
            steps.append(Step(row.at, "reopened", row.actor, row.reason))
        else:
            steps.append(Step(row.at, "noted", row.actor, row.reason))
    if facts.diagnosed_at is not None:
        what = (
            f"{diagnosis.by}: remedy {diagnosis.remedy}"
            if diagnosis.remedy
            else f"{diagnosis.by}: no remedy"
        )
        steps.append(Step(facts.diagnosed_at, "diagnosed", "terry", what))
    if not facts.alerts and not any(s.step == "received" for s in steps):
        steps.append(Step(story.incident.opened_at, "received", story.incident.source, ""))
    return steps


def _diagnosis(details: list[ProposalDetail], attention: str | None) -> Diagnosis:
    if not details:
        return Diagnosis("nobody", False, None, None, attention or "no diagnosis recorded", None)
    first = details[0]
    if first.ai is not None:
        return Diagnosis(
            "Claude",
            True,
            first.ai.get("model"),
            first.ai.get("confidence"),
            str(first.ai.get("diagnosis") or ""),
            first.summary.remedy,
        )
    proposed = next((e.detail for e in first.history if e.what.endswith("proposed")), "")
    return Diagnosis("Terry's rules", False, None, None, proposed, first.summary.remedy)


def _attention(
    story: IncidentStory, proposals: list[ProposalReport], earlier: int, remedy_hosts: str
) -> tuple[str, ...]:
    i = story.incident
    out: list[str] = []
    if i.attention:
        out.append(f"kept for a person: {i.attention}")
    if i.truncated:
        out.append("Alertmanager truncated the payload: some alerts of the group are missing")
    for p in proposals:
        n = p.id
        if p.state == "escalated":
            out.append(
                f"proposal {n}: the verification could not tell ({p.verified or 'unknown'}); "
                f"check the host, then `terry proposals apply {n}` or "
                f"`terry proposals rollback {n}`"
            )
        elif p.state in ("failed", "interrupted"):
            out.append(f"proposal {n} {p.state}: {p.outcome or 'see its events'}")
        elif p.state == "rolled_back":
            out.append(f"proposal {n} was rolled back: {p.outcome or 'the fix did not hold'}")
        elif p.state == "awaiting_review":
            out.append(f"proposal {n} waits for review: `terry proposals show {n}`")
        elif p.state == "denied":
            out.append(f"proposal {n} was denied: {'; '.join(p.reasons) or p.outcome or ''}")
        if p.rollback == MANUAL and p.state in ("failed", "escalated", "interrupted"):
            out.append(f"proposal {n} is rolled back by a person: {p.rollback_note}")
        if p.ai_authored and p.state in ("verified", "applied", "escalated", "awaiting_review"):
            confidence = "" if p.ai_confidence is None else f" at {p.ai_confidence}% confidence"
            out.append(f"proposal {n} was written by Claude{confidence}: read its diagnosis")
        if p.verify_hosts and any(h.result in ("failed", "unreachable") for h in p.verify_hosts):
            bad = ", ".join(h.host for h in p.verify_hosts if h.result in ("failed", "unreachable"))
            out.append(f"proposal {n}: the last verification failed on {bad}")
    if earlier >= 2:
        out.append(
            f"{remedy_hosts} was needed {earlier} time(s) before: the cause may lie deeper "
            "than the fix"
        )
    return tuple(out)


def _summary(story: IncidentStory, proposals: list[ProposalReport]) -> str:
    i = story.incident
    on = f" on {i.host}" if i.host else ""
    head = f"{i.ref or f'incident {i.id}'}: {i.title}{on} ({i.source}), {i.state}"
    fixer = next((p for p in proposals if p.state == "verified"), None)
    if i.fixed_at is not None and fixer is not None:
        how = (
            f"after {fixer.approved_by} approved it"
            if fixer.approved_by
            else "merged by the gate on its own"
        )
        took = f" in {_span(i.seconds_to_fix)}" if i.seconds_to_fix is not None else ""
        text = f"{head}: fixed{took} by proposal {fixer.id} ({fixer.remedy}), {how}"
    elif i.state == "resolved":
        text = f"{head}: resolved without a fix of Terry's"
    elif proposals:
        last = proposals[-1]
        text = f"{head}: proposal {last.id} ({last.remedy}) is {last.state.replace('_', ' ')}"
    else:
        text = f"{head}: no proposal"
    if i.attention:
        text += "; kept for a person"
    return text + "."


def _span(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m {s}s" if s else f"{m}m"
    h, m = divmod(m, 60)
    return f"{h}h {m}m" if m else f"{h}h"


def incident_report(store: Store, key: int | str) -> IncidentReport:
    """The report of incident ``key`` (its id or its INC reference); ``NotFound`` (exit 4)
    when there is none."""
    with store.session() as session:
        incident_id = resolve_incident(session, key)
    story = incident_story(store, incident_id)
    details = [proposal_detail(store, pid) for pid in sorted(story.incident.proposals)]
    with store.session() as session:
        plans = {
            row.id: Plan.from_json(row.plan, applier=row.applier)
            for row in session.scalars(
                select(ProposalRow).where(ProposalRow.id.in_(story.incident.proposals))
            )
        }
    facts = _facts(store, incident_id, details)
    proposals = [_proposal(d, plans[d.summary.id]) for d in details]
    diagnosis = _diagnosis(details, story.incident.attention)
    steps = _incident_steps(facts, story, diagnosis)
    for detail in details:
        steps += _proposal_steps(detail)
    steps.sort(key=lambda s: s.at)
    i = story.incident
    earlier = [
        Earlier(row.id, row.incident_id, ref, row.created_at, row.state, row.outcome)
        for row, ref in facts.earlier
    ]
    remedy_hosts = (
        f"{'/'.join(sorted({p.remedy for p in proposals}))} on "
        f"{', '.join(sorted({h for p in proposals for h in p.hosts}))}"
    )
    received = next((a.received_at for a in facts.alerts), None) or next(
        (row.at for row in facts.audits if row.from_state is None), None
    )
    return IncidentReport(
        id=i.id,
        ref=i.ref,
        title=i.title,
        source=i.source,
        host=i.host,
        state=i.state,
        summary=_summary(story, proposals),
        opened_at=i.opened_at,
        received_at=received,
        diagnosed_at=facts.diagnosed_at,
        fixed_at=i.fixed_at,
        resolved_at=i.resolved_at,
        seconds_to_fix=i.seconds_to_fix,
        seconds_open=(
            round((i.resolved_at - i.opened_at).total_seconds(), 1) if i.resolved_at else None
        ),
        labels=story.labels,
        annotations=story.annotations,
        truncated=i.truncated,
        diagnosis=diagnosis,
        proposals=tuple(proposals),
        timeline=tuple(steps),
        recurrence=tuple(earlier[:_RECURRENCE_LIMIT]),
        recurrence_total=len(earlier),
        attention=_attention(story, proposals, len(earlier), remedy_hosts),
        traces=traces_section(store, incident_id),
    )
