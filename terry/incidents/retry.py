"""Asking Terry to try an incident again: ``terry incidents retry``.

An alert's incident is diagnosed once. When its proposal ends without fixing it (denied by
policy, rejected, failed, rolled back, escalated, interrupted) and the alert keeps firing,
Alertmanager's repeats join the same open incident and nothing new happens until the alert
resolves. A person who changed what stood in the way (the policy, the catalogue, the host,
an AWX that was busy) asks for a retry: the incident becomes work to do again (its
diagnosis, claim and attention cleared, the request in its audit), and the worker or the
command that asked carries it through diagnosis, a new proposal, the gate, as any alert.

Refused, with what to do instead: an incident that is not open, one that did not come from
an alert (drift and forecasts make new incidents of their own: run their command again),
and one with a proposal still under way (proposed, checked, awaiting review, approved,
merged, applying, applied): decide or wait for that one first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update

from terry.errors import NotFound, StateError
from terry.incidents.lifecycle import IncidentState
from terry.incidents.refs import resolve_incident
from terry.proposals.state import UNDER_WAY
from terry.redact import redact
from terry.store import Store
from terry.store.audit import audit
from terry.store.models import IncidentRow, ProposalHostRow, ProposalRow

__all__ = ["RetryAsked", "ask_retry"]

# What to do, by the source of an incident that is not re-diagnosed.
_ELSEWHERE = {
    "drift": "a drift incident is one scan's: run `terry drift fix` (a new scan, a new incident)",
    "forecast": "a forecast's incident is one run's: run `terry forecast` again",
    "inventory": "an inventory edit is a person's change: make it again with `terry inventory`",
}


def next_try(source: str, incident_id: int) -> str:
    """How a person has an incident of ``source`` tried again: a retry for an alert's, the
    command that raised it for the others."""
    if source == "alert":
        return f"retry it: `terry incidents retry {incident_id}`"
    return _ELSEWHERE.get(source, "run the command that raised it again")


@dataclass(frozen=True)
class RetryAsked:
    incident_id: int
    ref: str | None
    previous: tuple[tuple[int, str], ...]  # its proposals so far: (id, state)

    def as_json(self) -> dict[str, Any]:
        """What the API and ``--output json`` say of it."""
        return {
            "incident": self.incident_id,
            "ref": self.ref,
            "previous": [{"proposal": p, "state": s} for p, s in self.previous],
        }


def ask_retry(store: Store, key: int | str, *, actor: str, reason: str) -> RetryAsked:
    """Make incident ``key`` (its id or INC reference) work to do again, or raise
    ``NotFound`` / ``StateError`` saying why not. The caller then carries it (or the
    worker's queue finds it: an open incident not diagnosed)."""
    with store.session() as session:
        incident_id = resolve_incident(session, key)
        row = session.get(IncidentRow, incident_id, with_for_update=True)
        if row is None:
            raise NotFound(f"incident {key} does not exist")
        name = row.ref or f"incident {incident_id}"
        if row.state != IncidentState.OPEN:
            raise StateError(f"cannot retry {name}: it is {row.state} (nothing left to fix)")
        if row.source != "alert":
            raise StateError(f"cannot retry {name}: {next_try(row.source, incident_id)}")
        if row.diagnosed_at is None:
            raise StateError(f"cannot retry {name}: it is waiting for its diagnosis already")
        carried = select(ProposalHostRow.proposal_id).where(
            ProposalHostRow.incident_id == incident_id
        )
        proposals = list(
            session.execute(
                select(ProposalRow.id, ProposalRow.state)
                .where(
                    or_(
                        ProposalRow.incident_id == incident_id,
                        ProposalRow.id.in_(carried),
                        ProposalRow.id == row.folded_into,
                    )
                )
                .order_by(ProposalRow.id)
            )
        )
        busy = [(pid, state) for pid, state in proposals if state in UNDER_WAY]
        if busy:
            pid, state = busy[-1]
            raise StateError(
                f"cannot retry {name}: proposal {pid} is {state.replace('_', ' ')}; "
                "decide it (approve, reject) or let it finish first"
            )
        session.execute(
            update(IncidentRow)
            .where(IncidentRow.id == incident_id)
            .values(
                diagnosed_at=None,
                claimed_by=None,
                claimed_at=None,
                attention=None,
                folded_into=None,
            )
        )
        audit(
            session,
            entity="incident",
            entity_id=incident_id,
            actor=actor,
            from_state=row.state,
            to_state=row.state,
            reason=redact(f"retry asked: {reason}")[:500],
        )
        return RetryAsked(
            incident_id, row.ref, tuple((pid, str(state)) for pid, state in proposals)
        )
