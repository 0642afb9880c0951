"""Read models for people and scripts: incident stories (and, from ``terry.proposals.view``,
the one read model of a proposal).

Plain frozen dataclasses built from the store; the CLI and the server render them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from terry.errors import NotFound
from terry.incidents.refs import resolve_incident
from terry.proposals.view import (
    TimelineEntry,
)
from terry.reports.history import carrying
from terry.store import Store
from terry.store.models import (
    AlertRow,
    AuditRow,
    IncidentRow,
    ProposalRow,
    RunRow,
)

__all__ = [
    "IncidentStory",
    "IncidentSummary",
    "TimelineEntry",
    "incident_story",
    "list_incidents",
]


@dataclass(frozen=True)
class IncidentSummary:
    id: int
    ref: str  # INC-2026-12-04-007 (terry.incidents.refs)
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
    trace_id: str | None = None  # the incident's own trace (terry.traces), when traced
    diagnosed: bool = True  # False while it waits for a diagnosis (new, or a retry asked)


@dataclass(frozen=True)
class IncidentStory:
    incident: IncidentSummary
    labels: dict[str, Any]
    annotations: dict[str, Any]
    timeline: tuple[TimelineEntry, ...]
    # What the services' traces said (terry.traces.evidence, as JSON), when they were read.
    traces: dict[str, Any] | None = None


def _summary(row: IncidentRow, proposals: tuple[int, ...]) -> IncidentSummary:
    seconds = (row.fixed_at - row.opened_at).total_seconds() if row.fixed_at else None
    return IncidentSummary(
        id=row.id,
        ref=row.ref or "",
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
        diagnosed=row.diagnosed_at is not None,
        trace_id=row.trace_id,
    )


def list_incidents(
    store: Store, *, state: str | None = None, limit: int = 50, before_id: int | None = None
) -> list[IncidentSummary]:
    """Newest first; ``before_id``: only ids below it (the next page after that id)."""
    with store.session() as session:
        query = select(IncidentRow).order_by(IncidentRow.id.desc()).limit(limit)
        if state:
            query = query.where(IncidentRow.state == state)
        if before_id is not None:
            query = query.where(IncidentRow.id < before_id)
        rows = list(session.scalars(query))
        by_incident = _proposals_of(session, rows)
    return [_summary(r, tuple(sorted(by_incident.get(r.id, ())))) for r in rows]


def _proposals_of(session: Session, incidents: list[IncidentRow]) -> dict[int, set[int]]:
    """The proposals that carry each incident's fix (``history.carrying``)."""
    folded = {r.id: r.folded_into for r in incidents if r.folded_into is not None}
    return carrying(session, [r.id for r in incidents], folded)


def incident_story(store: Store, key: int | str) -> IncidentStory:
    """The incident ``key`` (its id or its INC reference) with everything that happened."""
    with store.session() as session:
        incident_id = resolve_incident(session, key)
        row = session.get(IncidentRow, incident_id)
        if row is None:
            raise NotFound(f"incident {key} does not exist")
        carrying = _proposals_of(session, [row]).get(incident_id, set())
        proposals = list(
            session.scalars(
                select(ProposalRow).where(ProposalRow.id.in_(carrying)).order_by(ProposalRow.id)
            )
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
        _summary(row, tuple(proposal_ids)),
        row.labels,
        row.annotations,
        tuple(timeline),
        traces=row.trace_evidence,
    )
