"""What the store says about a span of incidents, and how each incident and proposal stood
at a given moment (the end of a report's window): its last audited state before it, who
approved it, whether it was rolled back, whether the incident was handed to a person.

A few queries read everything (incidents opened in the span, their proposals, the
proposals' audit rows, the incidents' "needs a human" rows); the rest is done in memory, so
one read serves a window and the window before it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from terry.store import Store
from terry.store.models import AuditRow, IncidentRow, ProposalHostRow, ProposalRow

__all__ = [
    "STATES",
    "History",
    "IncidentAtEnd",
    "Outcome",
    "ProposalAtEnd",
    "carrying",
    "incidents_at",
    "read_history",
]

# Proposal states as reports count them; the not-yet-finished ones are "in_progress".
STATES = (
    "verified",
    "rolled_back",
    "failed",
    "escalated",
    "denied",
    "rejected",
    "awaiting_review",
    "interrupted",
    "in_progress",
)
_IN_PROGRESS = frozenset({"proposed", "checked", "approved", "merged", "applying", "applied"})
# A proposal that stopped in one of these handed its incident to a person.
_FOR_A_PERSON = frozenset(
    {"awaiting_review", "denied", "rejected", "failed", "rolled_back", "escalated", "interrupted"}
)
_NEEDS_HUMAN = "needs a human: "  # how terry.incidents.lifecycle.set_attention words its audit rows


_WITHDRAWN = "withdrawn:"  # how a proposal withdrawn because its problem went away ends
# (terry.steps.precheck: healed before apply; terry.review.forge: resolved during review)


class Outcome(StrEnum):
    """What became of an incident by the end of the window."""

    AUTO = "auto"  # fixed by a proposal the gate merged on its own
    PERSON = "person"  # handed to a person (fixed after an approval included)
    OTHER = "other"  # still open or in progress, or resolved by itself (``healed``)


@dataclass(frozen=True)
class IncidentData:
    id: int
    source: str
    title: str
    host: str | None
    opened_at: datetime
    fixed_at: datetime | None
    resolved_at: datetime | None
    summary: str  # the alert's summary annotation (untrusted), "" when it has none


@dataclass(frozen=True)
class ProposalData:
    id: int
    incident_id: int
    remedy: str
    hosts: tuple[str, ...]
    decision: str | None
    reasons: tuple[str, ...]
    outcome: str | None
    ai_authored: bool
    created_at: datetime


@dataclass(frozen=True)
class AuditData:
    entity: str
    entity_id: int
    at: datetime
    actor: str
    to_state: str
    reason: str


@dataclass(frozen=True)
class History:
    incidents: tuple[IncidentData, ...]
    proposals: tuple[ProposalData, ...]
    audits: tuple[AuditData, ...]  # by time
    # incident -> the proposals carrying its fix (``carrying``): a storm's other incidents
    # are not its proposal's ``incident_id``
    carried: dict[int, frozenset[int]] = field(default_factory=dict)


def carrying(
    session: Session, ids: Iterable[int] | Select[Any], folded: dict[int, int]
) -> dict[int, set[int]]:
    """The proposals that carry the fix of each incident of ``ids`` (a list, or a query of
    them): its own, and a storm's it is a host of (``proposal_hosts``: its host joined, or
    came with, another incident's proposal) or was folded into (``folded``: incident id ->
    its ``folded_into``, when set: its host was already in that proposal). The other way
    round, a proposal's incidents: ``terry.proposals.hosts.carried``."""
    if not isinstance(ids, Select):
        ids = list(ids)
    found: dict[int, set[int]] = {}
    for incident_id, proposal_id in [
        *session.execute(
            select(ProposalRow.incident_id, ProposalRow.id).where(ProposalRow.incident_id.in_(ids))
        ),
        *session.execute(
            select(ProposalHostRow.incident_id, ProposalHostRow.proposal_id).where(
                ProposalHostRow.incident_id.in_(ids)
            )
        ),
        *folded.items(),
    ]:
        if incident_id is not None:
            found.setdefault(incident_id, set()).add(proposal_id)
    return found


def _summary(annotations: object) -> str:
    if not isinstance(annotations, dict):
        return ""
    value = annotations.get("summary") or annotations.get("description") or ""
    return str(value)[:500]


def read_history(store: Store, start: datetime, end: datetime) -> History:
    """Incidents opened in [start, end), their proposals, and the audit rows before ``end``
    of both (proposal transitions, and incidents' "needs a human" rows)."""
    opened = (IncidentRow.opened_at >= start) & (IncidentRow.opened_at < end)
    incident_ids = select(IncidentRow.id).where(opened)
    proposal_ids = select(ProposalRow.id).where(ProposalRow.incident_id.in_(incident_ids))
    with store.session() as session:
        incidents = tuple(
            IncidentData(
                r.id,
                r.source,
                r.title,
                r.host,
                r.opened_at,
                r.fixed_at,
                r.resolved_at,
                _summary(r.annotations),
            )
            for r in session.execute(
                select(
                    IncidentRow.id,
                    IncidentRow.source,
                    IncidentRow.title,
                    IncidentRow.host,
                    IncidentRow.opened_at,
                    IncidentRow.fixed_at,
                    IncidentRow.resolved_at,
                    IncidentRow.annotations,
                )
                .where(opened)
                .order_by(IncidentRow.opened_at, IncidentRow.id)
            )
        )
        folded = {
            incident: into
            for incident, into in session.execute(
                select(IncidentRow.id, IncidentRow.folded_into).where(
                    opened, IncidentRow.folded_into.is_not(None)
                )
            )
        }
        carried = {
            i: frozenset(found) for i, found in carrying(session, incident_ids, folded).items()
        }
        proposals = tuple(
            ProposalData(
                r.id,
                r.incident_id,
                r.remedy,
                tuple(r.hosts or ()),
                r.decision,
                tuple(str(x) for x in (r.reasons or ())),
                r.outcome,
                bool(r.ai_authored),
                r.created_at,
            )
            for r in session.execute(
                select(
                    ProposalRow.id,
                    ProposalRow.incident_id,
                    ProposalRow.remedy,
                    ProposalRow.hosts,
                    ProposalRow.decision,
                    ProposalRow.reasons,
                    ProposalRow.outcome,
                    ProposalRow.ai_authored,
                    ProposalRow.created_at,
                )
                .where(ProposalRow.incident_id.in_(incident_ids), ProposalRow.created_at < end)
                .order_by(ProposalRow.id)
            )
        )
        audits = tuple(
            AuditData(r.entity, r.entity_id, r.at, r.actor, r.to_state, r.reason)
            for r in session.execute(
                select(
                    AuditRow.entity,
                    AuditRow.entity_id,
                    AuditRow.at,
                    AuditRow.actor,
                    AuditRow.to_state,
                    AuditRow.reason,
                )
                .where(
                    AuditRow.at < end,
                    ((AuditRow.entity == "proposal") & AuditRow.entity_id.in_(proposal_ids))
                    | (
                        (AuditRow.entity == "incident")
                        & AuditRow.entity_id.in_(incident_ids)
                        & AuditRow.reason.startswith(_NEEDS_HUMAN, autoescape=True)
                    ),
                )
                .order_by(AuditRow.at, AuditRow.id)
            )
        )
    return History(incidents, proposals, audits, carried)


@dataclass(frozen=True)
class ProposalAtEnd:
    data: ProposalData
    state: str  # the report's state (STATES)
    raw_state: str
    approver: str | None  # the person who approved it before the end
    rolled_back: bool  # at least once before the end
    merged: bool
    applying_at: datetime | None = None  # its first apply began, before the end

    @property
    def auto_merged(self) -> bool:
        return self.merged and self.data.decision == "merge" and self.approver is None

    @property
    def withdrawn(self) -> bool:
        """Withdrawn because its problem went away by itself (not a person's rejection)."""
        return self.raw_state == "rejected" and (self.data.outcome or "").startswith(_WITHDRAWN)


@dataclass(frozen=True)
class IncidentAtEnd:
    data: IncidentData
    proposals: tuple[ProposalAtEnd, ...]
    fixed: bool
    resolved: bool
    outcome: Outcome
    fixer: ProposalAtEnd | None
    attention: str | None  # the last "needs a human" reason before the end
    # Resolved before the end without a fix of Terry's and without a person: its alert
    # resolved, a proposal of it was withdrawn because the problem had gone, or it resolved
    # before its fix was even applied (then that "fix" is no fix: ``fixed`` is False).
    healed: bool = False

    @property
    def seconds_to_fix(self) -> float | None:
        if not self.fixed or self.data.fixed_at is None:
            return None
        return max(0.0, (self.data.fixed_at - self.data.opened_at).total_seconds())

    @property
    def host(self) -> str:
        if self.data.host:
            return self.data.host
        for p in self.proposals:
            if p.data.hosts:
                return p.data.hosts[0]
        return "(unknown)"


def report_state(state: str) -> str:
    return "in_progress" if state in _IN_PROGRESS else state


def proposals_at(history: History, end: datetime) -> dict[int, ProposalAtEnd]:
    """Each proposal created before ``end`` in its last audited state before it."""
    states: dict[int, str] = {}
    approvers: dict[int, str] = {}
    rolled_back: set[int] = set()
    merged: set[int] = set()
    applying: dict[int, datetime] = {}
    for a in history.audits:
        if a.entity != "proposal" or a.at >= end:
            continue
        states[a.entity_id] = a.to_state
        if a.to_state == "approved" and a.actor != "terry":
            approvers[a.entity_id] = a.actor
        elif a.to_state == "rolled_back":
            rolled_back.add(a.entity_id)
        elif a.to_state == "merged":
            merged.add(a.entity_id)
        elif a.to_state == "applying":
            applying.setdefault(a.entity_id, a.at)
    out = {}
    for p in history.proposals:
        if p.created_at >= end:
            continue
        raw = states.get(p.id, "proposed")
        out[p.id] = ProposalAtEnd(
            data=p,
            state=report_state(raw),
            raw_state=raw,
            approver=approvers.get(p.id),
            rolled_back=p.id in rolled_back,
            merged=p.id in merged,
            applying_at=applying.get(p.id),
        )
    return out


def incidents_at(history: History, start: datetime, end: datetime) -> list[IncidentAtEnd]:
    """The incidents of ``history`` opened in [start, end), as they stood at ``end``."""
    proposals = proposals_at(history, end)
    by_incident: dict[int, set[int]] = {}
    for p in proposals.values():
        by_incident.setdefault(p.data.incident_id, set()).add(p.data.id)
    for incident_id, carriers in history.carried.items():  # a storm's other incidents
        by_incident.setdefault(incident_id, set()).update(c for c in carriers if c in proposals)
    attention: dict[int, tuple[datetime, str]] = {}
    for a in history.audits:
        if a.entity == "incident" and a.at < end:
            attention[a.entity_id] = (a.at, a.reason[len(_NEEDS_HUMAN) :])
    out = []
    for i in history.incidents:
        if not start <= i.opened_at < end:
            continue
        mine = tuple(proposals[p] for p in sorted(by_incident.get(i.id, ())))
        fixed = i.fixed_at is not None and i.fixed_at < end
        said = attention.get(i.id)
        if said is not None and fixed and i.fixed_at is not None and said[0] <= i.fixed_at:
            said = None  # what needed a person then was fixed after: not why it waits now
        needs = said[1] if said is not None else None
        resolved = i.resolved_at is not None and i.resolved_at < end
        fixer = None
        if fixed:
            verified = [p for p in mine if p.state == "verified"]
            fixer = verified[-1] if verified else (mine[-1] if mine else None)
        if fixed and _healed_first(i, fixer):  # a "fix" applied to what had already healed
            fixed, fixer = False, None
        acted = [p for p in mine if not p.withdrawn]
        handed = (
            needs is not None
            or any(p.state in _FOR_A_PERSON or p.approver for p in acted)
            or any(p.rolled_back for p in acted)
        )
        if fixed and fixer is not None and fixer.auto_merged:
            outcome = Outcome.AUTO
        elif (fixed and fixer is not None) or handed:
            outcome = Outcome.PERSON
        else:
            outcome = Outcome.OTHER
        healed = resolved and outcome is Outcome.OTHER
        out.append(IncidentAtEnd(i, mine, fixed, resolved, outcome, fixer, needs, healed))
    return out


def _healed_first(incident: IncidentData, fixer: ProposalAtEnd | None) -> bool:
    """The incident resolved before its fix began to be applied: the fix fixed nothing."""
    if fixer is None or incident.resolved_at is None or fixer.applying_at is None:
        return False
    return incident.resolved_at < fixer.applying_at
