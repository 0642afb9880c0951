"""What Terry did about a fault, read back from its own record: the incident opened for the
target after the fault went in, when its alert arrived, the proposal, its decision, when it
was applied and verified. MTTR runs from injection to verification, split into detect
(injected → alert received), decide (→ the gate's or a reviewer's decision), apply
(→ applied) and verify (→ verified)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select

from terry.store import Store
from terry.store.models import AlertRow, AuditRow, IncidentRow, ProposalHostRow, ProposalRow

__all__ = ["PHASES", "Timeline", "phases", "read_timeline"]

PHASES = ("detect", "decide", "apply", "verify")
_DECIDED = ("merged", "awaiting_review", "denied")
# An incident opened this long before the injection is not the fault's (clocks of one store).
_SLACK = timedelta(seconds=2)


@dataclass(frozen=True)
class Timeline:
    incident_id: int | None = None
    alert_at: datetime | None = None
    proposal_id: int | None = None
    decision: str | None = None
    decided_at: datetime | None = None
    applied_at: datetime | None = None
    verified_at: datetime | None = None
    resolved_at: datetime | None = None  # the incident resolved (alert gone)
    proposal_state: str | None = None


def phases(
    injected: datetime | None,
    alert: datetime | None,
    decided: datetime | None,
    applied: datetime | None,
    verified: datetime | None,
) -> dict[str, float | None]:
    """Seconds per phase and ``mttr`` (None where a mark is missing: a phase that did not
    happen is not zero)."""
    marks = [injected, alert, decided, applied, verified]
    out: dict[str, float | None] = {}
    for name, start, end in zip(PHASES, marks, marks[1:], strict=False):
        out[name] = (
            max(0.0, (end - start).total_seconds())
            if start is not None and end is not None
            else None
        )
    out["mttr"] = (
        max(0.0, (verified - injected).total_seconds())
        if injected is not None and verified is not None
        else None
    )
    return out


def read_timeline(store: Store, host: str, since: datetime) -> Timeline:
    """Terry's record about ``host`` from ``since`` (the injection) on: the first incident on
    it opened since, or whose alert Terry received since (an alert's ``startsAt``, which
    ``opened_at`` is, is the sender's clock, and may be older than the injection: a skewed
    clock, an alert fed by hand)."""
    with store.session() as session:
        received = select(AlertRow.incident_id).where(AlertRow.received_at >= since - _SLACK)
        incident = session.scalars(
            select(IncidentRow)
            .where(IncidentRow.host == host)
            .where(or_(IncidentRow.opened_at >= since - _SLACK, IncidentRow.id.in_(received)))
            .order_by(IncidentRow.id)
            .limit(1)
        ).first()
        if incident is None:
            return Timeline()
        alert_at = session.scalar(
            select(func.min(AlertRow.received_at)).where(AlertRow.incident_id == incident.id)
        )
        by_host = select(ProposalHostRow.proposal_id).where(
            ProposalHostRow.incident_id == incident.id
        )
        proposal = session.scalars(
            select(ProposalRow)
            .where(or_(ProposalRow.incident_id == incident.id, ProposalRow.id.in_(by_host)))
            .order_by(ProposalRow.id)
            .limit(1)
        ).first()
        base = Timeline(
            incident_id=incident.id,
            alert_at=alert_at or incident.opened_at,
            resolved_at=incident.resolved_at,
        )
        if proposal is None:
            return base
        rows = session.scalars(
            select(AuditRow)
            .where(AuditRow.entity == "proposal", AuditRow.entity_id == proposal.id)
            .order_by(AuditRow.id)
        ).all()

    def first(*states: str) -> datetime | None:
        return next((r.at for r in rows if r.to_state in states), None)

    decided = first("approved") or first(*_DECIDED)
    return Timeline(
        incident_id=base.incident_id,
        alert_at=base.alert_at,
        resolved_at=base.resolved_at,
        proposal_id=proposal.id,
        decision=proposal.decision,
        decided_at=decided,
        applied_at=first("applied"),
        verified_at=first("verified"),
        proposal_state=proposal.state,
    )
