"""Where the time to a fix goes, read back from Terry's store: fault → fired → received →
decided → applied → verified, per incident.

The milestones are what Terry recorded: the alert's ``startsAt`` (when Prometheus fired it)
and ``received_at`` (when Terry's webhook stored it), then the proposal's audit rows (the
gate's decision: ``merged``, ``awaiting_review`` or ``denied``; a person's ``approved``; the
applier's ``applied``; ``verified``). The fault's own moment is not in the store: the caller
that made the fault passes it. A fix that waited for a person keeps that wait as its own
phase (``decided → approved``), apart from the machine's time.

Used by ``terry demo`` on the lab (its timeline) and ``bench/mttr.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from terry.store import Store
from terry.store.models import AlertRow, AuditRow, ProposalRow, RunRow

__all__ = ["PHASES", "Phases", "incident_phases"]

_DECIDED = ("merged", "awaiting_review", "denied")
# Between consecutive milestones; "decided → approved" is a person's time, kept apart.
PHASES = (
    "fault → fired",
    "fired → received",
    "received → decided",
    "decided → approved",
    "approved|decided → applied",
    "applied → verified",
)


@dataclass(frozen=True)
class Phases:
    """One incident's milestones (UTC) and its fix's ansible runs."""

    incident_id: int
    proposal_id: int | None
    state: str | None
    fault: datetime | None
    fired: datetime | None
    received: datetime | None
    decided: datetime | None
    approved: datetime | None
    applied: datetime | None
    verified: datetime | None
    runs: tuple[tuple[str, float], ...]  # (kind, seconds) of the recorded runs, in order

    def seconds(self) -> dict[str, float | None]:
        """Seconds per phase (``PHASES``), None where a milestone is missing."""
        start_apply = self.approved or self.decided
        spans = (
            (self.fault, self.fired),
            (self.fired, self.received),
            (self.received, self.decided),
            (self.decided, self.approved),
            (start_apply, self.applied),
            (self.applied, self.verified),
        )
        return {name: _between(a, b) for name, (a, b) in zip(PHASES, spans, strict=True)}

    def to_verified(self) -> float | None:
        """From the fault (else the alert's start) to verified, less a person's wait."""
        start = self.fault or self.fired
        total = _between(start, self.verified)
        wait = _between(self.decided, self.approved)
        if total is None:
            return None
        return total - (wait or 0.0)

    def line(self) -> str:
        """One line for people: each phase that happened, in seconds."""
        parts = [
            f"{name} {value:.1f}s" for name, value in self.seconds().items() if value is not None
        ]
        total = self.to_verified()
        if total is not None:
            parts.append(f"total {total:.1f}s" + (" (less the approval)" if self.approved else ""))
        return ", ".join(parts) or "no milestones recorded"


def _between(a: datetime | None, b: datetime | None) -> float | None:
    return (b - a).total_seconds() if a is not None and b is not None else None


def incident_phases(store: Store, incident_id: int, *, fault: datetime | None = None) -> Phases:
    """The milestones of ``incident_id`` and of its latest proposal."""
    with store.session() as session:
        alerts = list(
            session.execute(
                select(AlertRow.starts_at, AlertRow.received_at)
                .where(AlertRow.incident_id == incident_id, AlertRow.status == "firing")
                .order_by(AlertRow.id)
            )
        )
        proposal = session.scalars(
            select(ProposalRow)
            .where(ProposalRow.incident_id == incident_id)
            .order_by(ProposalRow.id.desc())
            .limit(1)
        ).first()
        audits: list[tuple[str, datetime]] = []
        runs: list[tuple[str, float]] = []
        if proposal is not None:
            audits = [
                (str(to), at)
                for to, at in session.execute(
                    select(AuditRow.to_state, AuditRow.at)
                    .where(AuditRow.entity == "proposal", AuditRow.entity_id == proposal.id)
                    .order_by(AuditRow.id)
                )
            ]
            runs = [
                (str(kind), (end - start).total_seconds())
                for kind, start, end in session.execute(
                    select(RunRow.kind, RunRow.started_at, RunRow.finished_at)
                    .where(RunRow.proposal_id == proposal.id)
                    .order_by(RunRow.id)
                )
                if end is not None
            ]

    def first(*states: str) -> datetime | None:
        return next((at for to, at in audits if to in states), None)

    return Phases(
        incident_id=incident_id,
        proposal_id=proposal.id if proposal is not None else None,
        state=proposal.state if proposal is not None else None,
        fault=fault,
        fired=alerts[0][0] if alerts else None,
        received=alerts[0][1] if alerts else None,
        decided=first(*_DECIDED),
        approved=first("approved"),
        applied=first("applied"),
        verified=first("verified"),
        runs=tuple(runs),
    )
