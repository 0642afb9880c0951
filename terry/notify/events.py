"""What the notifier tells people about, read from the audit log.

Every state change Terry makes writes an audit row in the change's own transaction
(``terry.store.audit``), so the audit log is the outbox's source: a change that committed
has its row, one that rolled back has none. ``classify`` says which audit rows are events
people may be told about; ``load_events`` adds what a message needs (the incident's
reference, title, host, environment, the proposal's decision and pull request).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from terry.slo.services import BUDGET_ENTITY, EXHAUSTED, told_services
from terry.store.models import AuditRow, IncidentRow, ProposalRow

__all__ = ["NEEDS_A_HUMAN", "Event", "EventKind", "classify", "load_events"]

# How terry.incidents.lifecycle.set_attention words the audit row of an incident kept for
# a person.
NEEDS_A_HUMAN = "needs a human: "
# The audit entity of chaos runs (terry.chaos.run.CHAOS_ENTITY).
CHAOS_ENTITY = "chaos"


class EventKind(StrEnum):
    INCIDENT_OPENED = "incident-opened"
    DRIFT_FOUND = "drift-found"
    FORECAST_WARNING = "forecast-warning"
    NEEDS_REVIEW = "needs-review"
    APPLIED = "applied"
    VERIFIED = "verified"
    FAILED = "failed"
    ROLLED_BACK = "rolled-back"
    KEPT_FOR_HUMAN = "kept-for-human"
    RESOLVED = "resolved"
    # A proposal met an exhausted error budget (terry.steps.gate, docs/slo.md).
    BUDGET_EXHAUSTED = "budget-exhausted"
    # A chaos run took longer than chaos.mttr_threshold, or Terry did not fix its fault
    # (terry.chaos.run, docs/chaos.md).
    CHAOS_SLOW = "chaos-slow"


_PROPOSAL_EVENTS = {
    "awaiting_review": EventKind.NEEDS_REVIEW,
    "applied": EventKind.APPLIED,
    "verified": EventKind.VERIFIED,
    "failed": EventKind.FAILED,
    "rolled_back": EventKind.ROLLED_BACK,
}
_OPENED_BY_SOURCE = {
    "drift": EventKind.DRIFT_FOUND,
    "forecast": EventKind.FORECAST_WARNING,
    "anomaly": EventKind.FORECAST_WARNING,
}


def classify(row: AuditRow, incident_source: str | None = None) -> EventKind | None:
    """The event an audit row is, or None when it is none people are told about."""
    if row.entity == "proposal":
        return _PROPOSAL_EVENTS.get(row.to_state)
    if row.entity == BUDGET_ENTITY:  # its entity_id is the incident's
        return EventKind.BUDGET_EXHAUSTED if row.to_state == EXHAUSTED else None
    if row.entity == CHAOS_ENTITY:  # its entity_id is the chaos run's
        return EventKind.CHAOS_SLOW if row.to_state == "slow" else None
    if row.entity != "incident":
        return None
    if row.from_state is None and row.to_state == "open":
        return _OPENED_BY_SOURCE.get(incident_source or "", EventKind.INCIDENT_OPENED)
    if row.reason.startswith(NEEDS_A_HUMAN):
        return EventKind.KEPT_FOR_HUMAN
    if row.from_state == "open" and row.to_state == "resolved":
        return EventKind.RESOLVED
    return None


@dataclass(frozen=True)
class Event:
    """One event with what a message about it says. Text from alerts and other systems
    (title, host, reason, reasons) is untrusted: ``terry.notify.message`` renders it inert."""

    kind: EventKind
    audit_id: int
    at: datetime
    actor: str
    reason: str
    incident_id: int | None = None
    ref: str = ""
    title: str = ""
    host: str = ""
    source: str = ""
    environment: str = ""
    severity: str = ""
    tenant: str = ""
    proposal_id: int | None = None
    remedy: str = ""
    decision: str = ""
    reasons: tuple[str, ...] = field(default_factory=tuple)
    pr_url: str = ""
    # Every host the event is about (``host`` shows the first few), and their tenants as
    # main's inventory places them (``terry.notify.tenancy``): what tenant-bound routes match.
    # ``tenant`` above is the alert's own label, shown, never trusted for routing.
    hosts: tuple[str, ...] = field(default_factory=tuple)
    tenants: tuple[str, ...] = field(default_factory=tuple)
    # The services the event is about: those out of error budget, for ``budget-exhausted``
    # (what a route's ``services`` filter matches: the owners of a service).
    services: tuple[str, ...] = field(default_factory=tuple)

    def dedupe_key(self, route: str) -> str:
        """One message per route per audit row: inserting it twice is a no-op."""
        entity = (
            f"proposal-{self.proposal_id}" if self.proposal_id else f"incident-{self.incident_id}"
        )
        return f"{route}:{entity}:{self.kind.value}:{self.audit_id}"[:255]

    def to_payload(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        data["at"] = self.at.isoformat()
        data["reasons"] = list(self.reasons)
        data["hosts"] = list(self.hosts)
        data["tenants"] = list(self.tenants)
        data["services"] = list(self.services)
        return data

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Event:
        values = dict(data)
        values["kind"] = EventKind(values["kind"])
        values["at"] = datetime.fromisoformat(values["at"])
        for name in ("reasons", "hosts", "tenants", "services"):
            values[name] = tuple(str(r) for r in values.get(name) or ())
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in values.items() if k in known})


def _label(labels: dict[str, Any], *names: str) -> str:
    for name in names:
        value = labels.get(name)
        if isinstance(value, str) and value:
            return value[:100]
    return ""


def load_events(session: Session, rows: Sequence[AuditRow]) -> list[Event]:
    """The events among ``rows``, with their incidents' and proposals' details (read in
    a few queries, whatever the number of rows)."""
    proposal_ids = {r.entity_id for r in rows if r.entity == "proposal"}
    proposals = {
        p.id: p
        for p in (
            session.scalars(select(ProposalRow).where(ProposalRow.id.in_(proposal_ids)))
            if proposal_ids
            else ()
        )
    }
    # a budget row names the incident whose proposal the gate judged: that proposal (its
    # latest) gives the event its environment (the inventory's, as a proposal's events
    # have, not an alert's label), hosts and decision, for routes to match on
    budgeted = {r.entity_id for r in rows if r.entity == BUDGET_ENTITY}
    judged = {
        p.incident_id: p
        for p in (
            session.scalars(
                select(ProposalRow)
                .where(ProposalRow.incident_id.in_(budgeted))
                .order_by(ProposalRow.id)
            )
            if budgeted
            else ()
        )
    }
    incident_ids = {r.entity_id for r in rows if r.entity in ("incident", BUDGET_ENTITY)}
    incident_ids |= {p.incident_id for p in proposals.values()}
    incidents = {
        i.id: i
        for i in (
            session.scalars(select(IncidentRow).where(IncidentRow.id.in_(incident_ids)))
            if incident_ids
            else ()
        )
    }
    events = []
    for row in rows:
        proposal = (
            proposals.get(row.entity_id)
            if row.entity == "proposal"
            else judged.get(row.entity_id)
            if row.entity == BUDGET_ENTITY
            else None
        )
        incident_id = proposal.incident_id if proposal is not None else row.entity_id
        incident = incidents.get(incident_id) if row.entity != CHAOS_ENTITY else None
        kind = classify(row, incident.source if incident is not None else None)
        if kind is None:
            continue
        events.append(_event(kind, row, incident, proposal))
    return events


def _event(
    kind: EventKind, row: AuditRow, incident: IncidentRow | None, proposal: ProposalRow | None
) -> Event:
    labels = dict(incident.labels or {}) if incident is not None else {}
    reason = (
        row.reason.removeprefix(NEEDS_A_HUMAN) if kind is EventKind.KEPT_FOR_HUMAN else row.reason
    )
    environment = (proposal.environment if proposal is not None else None) or _label(
        labels, "environment", "env"
    )
    hosts: tuple[str, ...] = ()
    if proposal is not None and proposal.hosts:
        hosts = tuple(str(h)[:255] for h in proposal.hosts[:100])
    elif incident is not None and incident.host:
        hosts = (incident.host,)
    else:  # not diagnosed yet: the alert's own word (terry.yml's default host_labels)
        hosts = tuple(h for h in (_label(labels, "host", "instance", "nodename"),) if h)
    host = ", ".join(hosts[:5])
    return Event(
        kind=kind,
        audit_id=row.id,
        at=row.at,
        actor=row.actor[:200],
        reason=reason[:1000],
        incident_id=incident.id if incident is not None else None,
        ref=(incident.ref or "") if incident is not None else "",
        title=incident.title if incident is not None else "",
        host=host[:300],
        source=incident.source if incident is not None else "",
        environment=environment or "",
        severity=_label(labels, "severity"),
        tenant=_label(labels, "tenant"),
        proposal_id=proposal.id if proposal is not None else None,
        remedy=proposal.remedy if proposal is not None else "",
        decision=(proposal.decision or "") if proposal is not None else "",
        reasons=tuple(str(r)[:300] for r in (proposal.reasons or [])[:5])
        if proposal is not None
        else (),
        pr_url=(proposal.pr_url or "") if proposal is not None else "",
        hosts=hosts,
        services=told_services(row.reason) if row.entity == BUDGET_ENTITY else (),
    )
