"""Read models for people and scripts: incident stories and proposal details.

Plain frozen dataclasses built from the store; the CLI and the server render them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from terry.errors import NotFound
from terry.store import Store
from terry.store.models import AlertRow, AuditRow, IncidentRow, ProposalRow, RunEventRow, RunRow

__all__ = [
    "IncidentStory",
    "IncidentSummary",
    "ProposalDetail",
    "ProposalSummary",
    "TimelineEntry",
    "incident_story",
    "list_incidents",
    "list_proposals",
    "proposal_detail",
]


@dataclass(frozen=True)
class IncidentSummary:
    id: int
    title: str
    source: str  # alert, drift, inventory, forecast, anomaly
    host: str | None
    state: str
    opened_at: datetime
    resolved_at: datetime | None
    fixed_at: datetime | None
    seconds_to_fix: float | None
    attention: str | None
    proposals: tuple[int, ...]
    truncated: bool
    recurrence: int


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    what: str
    actor: str
    detail: str


@dataclass(frozen=True)
class IncidentStory:
    incident: IncidentSummary
    labels: dict[str, Any]
    annotations: dict[str, Any]
    timeline: tuple[TimelineEntry, ...]


@dataclass(frozen=True)
class ProposalSummary:
    id: int
    incident_id: int
    remedy: str
    hosts: tuple[str, ...]
    risk: str
    state: str
    decision: str | None
    branch: str | None
    updated_at: datetime


@dataclass(frozen=True)
class RunSummary:
    id: int
    kind: str
    status: str
    rc: int | None
    started_at: datetime
    finished_at: datetime | None
    commit: str | None
    stats: dict[str, Any]
    artifact_dir: str | None
    events: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class ProposalDetail:
    summary: ProposalSummary
    params: dict[str, Any]
    reasons: tuple[str, ...]
    policy_commit: str | None
    commit: str | None
    merge_commit: str | None
    approved_by: str | None
    outcome: str | None
    modules: tuple[str, ...]
    playbook_path: str | None
    playbook: str | None
    vars_path: str | None
    check_summary: dict[str, Any]
    check_diff: str | None
    runs: tuple[RunSummary, ...]
    history: tuple[TimelineEntry, ...]
    pull_request: dict[str, Any] | None = None  # number, url, state, error on the forge
    applier: str = "ansible"  # or argocd (playbook_path is then the manifest it changes)
    target: str | None = None  # the Argo CD application
    # Written by Claude: {"model", "confidence", "diagnosis"}; None when Terry's own.
    ai: dict[str, Any] | None = None


def _summary(row: IncidentRow, proposals: tuple[int, ...]) -> IncidentSummary:
    seconds = (row.fixed_at - row.opened_at).total_seconds() if row.fixed_at else None
    return IncidentSummary(
        id=row.id,
        title=row.title,
        source=row.source,
        host=row.host,
        state=row.state,
        opened_at=row.opened_at,
        resolved_at=row.resolved_at,
        fixed_at=row.fixed_at,
        seconds_to_fix=round(seconds, 1) if seconds is not None else None,
        attention=row.attention,
        proposals=proposals,
        truncated=row.truncated,
        recurrence=row.recurrence,
    )


def _proposal_summary(row: ProposalRow) -> ProposalSummary:
    return ProposalSummary(
        id=row.id,
        incident_id=row.incident_id,
        remedy=row.remedy,
        hosts=tuple(row.hosts),
        risk=row.risk,
        state=row.state,
        decision=row.decision,
        branch=row.branch,
        updated_at=row.updated_at,
    )


def list_incidents(
    store: Store, *, state: str | None = None, limit: int = 50
) -> list[IncidentSummary]:
    with store.session() as session:
        query = select(IncidentRow).order_by(IncidentRow.id.desc()).limit(limit)
        if state:
            query = query.where(IncidentRow.state == state)
        rows = list(session.scalars(query))
        ids = [r.id for r in rows]
        pairs = session.execute(
            select(ProposalRow.incident_id, ProposalRow.id).where(ProposalRow.incident_id.in_(ids))
        ).all()
    by_incident: dict[int, list[int]] = {}
    for incident_id, proposal_id in pairs:
        by_incident.setdefault(incident_id, []).append(proposal_id)
    return [_summary(r, tuple(sorted(by_incident.get(r.id, [])))) for r in rows]


def incident_story(store: Store, incident_id: int) -> IncidentStory:
    with store.session() as session:
        row = session.get(IncidentRow, incident_id)
        if row is None:
            raise NotFound(f"incident {incident_id} does not exist")
        proposals = list(
            session.scalars(select(ProposalRow).where(ProposalRow.incident_id == incident_id))
        )
        proposal_ids = [p.id for p in proposals]
        alerts = list(
            session.scalars(
                select(AlertRow).where(AlertRow.incident_id == incident_id).order_by(AlertRow.id)
            )
        )
        audits = list(
            session.scalars(
                select(AuditRow)
                .where(
                    or_(
                        (AuditRow.entity == "incident") & (AuditRow.entity_id == incident_id),
                        (AuditRow.entity == "proposal") & AuditRow.entity_id.in_(proposal_ids),
                    )
                )
                .order_by(AuditRow.at, AuditRow.id)
            )
        )
        runs = list(
            session.scalars(
                select(RunRow).where(RunRow.proposal_id.in_(proposal_ids)).order_by(RunRow.id)
            )
        )
    timeline: list[TimelineEntry] = []
    for alert in alerts:
        timeline.append(
            TimelineEntry(
                alert.starts_at
                if alert.status == "firing"
                else (alert.ends_at or alert.received_at),
                f"alert {alert.status}",
                "alertmanager",
                f"{alert.alertname} ({alert.effect})",
            )
        )
    for entry in audits:
        subject = "incident" if entry.entity == "incident" else f"proposal {entry.entity_id}"
        change = (
            f"{entry.from_state} → {entry.to_state}"
            if entry.from_state != entry.to_state
            else entry.to_state
        )
        timeline.append(TimelineEntry(entry.at, f"{subject}: {change}", entry.actor, entry.reason))
    for run in runs:
        timeline.append(
            TimelineEntry(
                run.started_at,
                f"proposal {run.proposal_id}: {run.kind} run {run.id}",
                "ansible",
                f"{run.status} (rc {run.rc})"
                + (f" in {run.ansible_seconds:.1f}s" if run.ansible_seconds else ""),
            )
        )
    timeline.sort(key=lambda e: e.at)
    return IncidentStory(
        _summary(row, tuple(proposal_ids)), row.labels, row.annotations, tuple(timeline)
    )


def list_proposals(
    store: Store, *, state: str | None = None, limit: int = 50
) -> list[ProposalSummary]:
    with store.session() as session:
        query = select(ProposalRow).order_by(ProposalRow.id.desc()).limit(limit)
        if state:
            query = query.where(ProposalRow.state == state)
        return [_proposal_summary(r) for r in session.scalars(query)]


def proposal_detail(store: Store, proposal_id: int, *, events: bool = False) -> ProposalDetail:
    with store.session() as session:
        row = session.get(ProposalRow, proposal_id)
        if row is None:
            raise NotFound(f"proposal {proposal_id} does not exist")
        runs = list(
            session.scalars(
                select(RunRow).where(RunRow.proposal_id == proposal_id).order_by(RunRow.id)
            )
        )
        run_events: dict[int, list[RunEventRow]] = {}
        if events and runs:
            for event in session.scalars(
                select(RunEventRow)
                .where(RunEventRow.run_id.in_([r.id for r in runs]))
                .order_by(RunEventRow.run_id, RunEventRow.seq)
            ):
                run_events.setdefault(event.run_id, []).append(event)
        audits = list(
            session.scalars(
                select(AuditRow)
                .where(AuditRow.entity == "proposal", AuditRow.entity_id == proposal_id)
                .order_by(AuditRow.at, AuditRow.id)
            )
        )
    return ProposalDetail(
        summary=_proposal_summary(row),
        params=row.params,
        reasons=tuple(row.reasons),
        policy_commit=row.policy_commit,
        commit=row.commit_sha,
        merge_commit=row.merge_sha,
        approved_by=row.approved_by,
        outcome=row.outcome,
        modules=tuple(row.modules),
        playbook_path=row.playbook_path,
        playbook=row.playbook,
        vars_path=row.vars_path,
        check_summary=row.check_summary,
        check_diff=row.check_diff,
        applier=row.applier,
        target=row.target,
        ai=(
            {"model": row.ai_model, "confidence": row.confidence, "diagnosis": row.ai_diagnosis}
            if row.ai_authored
            else None
        ),
        pull_request=(
            {
                "number": row.pr_number,
                "url": row.pr_url,
                "state": row.forge_state,
                "error": row.forge_error,
            }
            if row.forge_state
            else None
        ),
        runs=tuple(
            RunSummary(
                id=r.id,
                kind=r.kind,
                status=r.status,
                rc=r.rc,
                started_at=r.started_at,
                finished_at=r.finished_at,
                commit=r.commit_sha,
                stats=r.stats,
                artifact_dir=r.artifact_dir,
                events=tuple(
                    {
                        "seq": e.seq,
                        "event": e.event,
                        "host": e.host,
                        "task": e.task,
                        "action": e.action,
                        "status": e.status,
                    }
                    for e in run_events.get(r.id, [])
                ),
            )
            for r in runs
        ),
        history=tuple(
            TimelineEntry(a.at, f"{a.from_state or ''} → {a.to_state}".strip(), a.actor, a.reason)
            for a in audits
        ),
    )
