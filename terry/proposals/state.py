"""Proposals: one concrete fix, and the one state machine every fix moves through.

``proposed → checked → (merged | awaiting_review → approved → merged) → applying → applied →
verified``, with exits ``denied``, ``rejected``, ``failed → rolled_back``, ``escalated``
(verification could not tell) and ``interrupted`` (the process died mid-run).

Every transition is a compare-and-set on the row (``UPDATE ... WHERE state = from``) plus an
audit row, in one transaction: two processes cannot both move the same proposal.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from terry.errors import NotFound, StateError
from terry.proposals.hosts import HostState
from terry.redact import process_redactor
from terry.store import Store
from terry.store.audit import audit
from terry.store.models import ProposalHostRow, ProposalRow, utcnow

__all__ = [
    "ENDED",
    "MERGED_STATES",
    "TRANSITIONS",
    "UNDER_WAY",
    "WENT_WRONG",
    "ProposalState",
    "get",
    "transition",
]


class ProposalState(StrEnum):
    PROPOSED = "proposed"
    CHECKED = "checked"
    AWAITING_REVIEW = "awaiting_review"
    APPROVED = "approved"
    MERGED = "merged"
    APPLYING = "applying"
    APPLIED = "applied"
    VERIFIED = "verified"
    DENIED = "denied"
    REJECTED = "rejected"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    ESCALATED = "escalated"
    INTERRUPTED = "interrupted"


# States of a proposal that was merged: the ones from which it may be (re-)applied.
MERGED_STATES = frozenset(
    {
        ProposalState.MERGED,
        ProposalState.APPLIED,
        ProposalState.VERIFIED,
        ProposalState.FAILED,
        ProposalState.ROLLED_BACK,
        ProposalState.ESCALATED,
        ProposalState.INTERRUPTED,
    }
)

# States of a proposal still under way: it moves on by itself or with a person's decision.
UNDER_WAY = frozenset(
    {
        ProposalState.PROPOSED,
        ProposalState.CHECKED,
        ProposalState.AWAITING_REVIEW,
        ProposalState.APPROVED,
        ProposalState.MERGED,
        ProposalState.APPLYING,
        ProposalState.APPLIED,
    }
)

# States a proposal ends in (until a person applies or rolls it back again).
ENDED = frozenset(ProposalState) - UNDER_WAY

# States of a change that did not go through: a command that carried it exits 1.
WENT_WRONG = frozenset(
    {
        ProposalState.FAILED,
        ProposalState.DENIED,
        ProposalState.ROLLED_BACK,
        ProposalState.ESCALATED,
    }
)

TRANSITIONS: dict[ProposalState, frozenset[ProposalState]] = {
    ProposalState.PROPOSED: frozenset({ProposalState.CHECKED, ProposalState.FAILED}),
    # proposed again: hosts of a storm joined it before its decision (terry.proposals.storm);
    # its commit now covers them too, and it is dry-run again over every host.
    # rejected from checked or approved: its merge conflicts with main as main now is
    # (terry.steps.record, not_merged); from approved also a person giving up on a merge
    # GitHub refused (terry.steps.review, reject)
    ProposalState.CHECKED: frozenset(
        {
            ProposalState.MERGED,
            ProposalState.AWAITING_REVIEW,
            ProposalState.DENIED,
            ProposalState.PROPOSED,
            ProposalState.REJECTED,
        }
    ),
    ProposalState.AWAITING_REVIEW: frozenset({ProposalState.APPROVED, ProposalState.REJECTED}),
    ProposalState.APPROVED: frozenset({ProposalState.MERGED, ProposalState.REJECTED}),
    # rejected: withdrawn before apply, the problem gone by itself (terry.steps.precheck)
    ProposalState.MERGED: frozenset({ProposalState.APPLYING, ProposalState.REJECTED}),
    ProposalState.APPLYING: frozenset(
        {ProposalState.APPLIED, ProposalState.FAILED, ProposalState.INTERRUPTED}
    ),
    ProposalState.APPLIED: frozenset(
        {
            ProposalState.VERIFIED,
            ProposalState.FAILED,
            ProposalState.ESCALATED,
            ProposalState.ROLLED_BACK,
        }
    ),
    ProposalState.VERIFIED: frozenset({ProposalState.APPLYING, ProposalState.ROLLED_BACK}),
    ProposalState.FAILED: frozenset({ProposalState.APPLYING, ProposalState.ROLLED_BACK}),
    ProposalState.ROLLED_BACK: frozenset({ProposalState.APPLYING}),
    ProposalState.ESCALATED: frozenset(
        {
            ProposalState.APPLYING,
            ProposalState.ROLLED_BACK,
            ProposalState.VERIFIED,
            ProposalState.FAILED,
        }
    ),
    ProposalState.INTERRUPTED: frozenset(
        {ProposalState.APPLYING, ProposalState.FAILED, ProposalState.ROLLED_BACK}
    ),
    ProposalState.DENIED: frozenset(),
    ProposalState.REJECTED: frozenset(),
}

# Plain words for refusals, keyed by the state the proposal is in.
# A proposal that moves here will never apply: its pending hosts become not_applied.
_ENDS_UNAPPLIED = frozenset({ProposalState.DENIED, ProposalState.REJECTED})

_WHY_NOT = {
    ProposalState.DENIED: "it was denied by policy",
    ProposalState.REJECTED: "it was rejected",
    ProposalState.AWAITING_REVIEW: "it is awaiting review (approve or reject it first)",
    ProposalState.APPLYING: "it is being applied right now",
}


def get(session: Session, proposal_id: int) -> ProposalRow:
    row = session.get(ProposalRow, proposal_id)
    if row is None:
        raise NotFound(f"proposal {proposal_id} does not exist")
    return row


def transition(
    store: Store,
    proposal_id: int,
    to: ProposalState,
    *,
    actor: str,
    reason: str,
    allowed_from: Iterable[ProposalState] | None = None,
    verb: str | None = None,
    changes: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> ProposalState:
    """Move a proposal to ``to`` (and set ``changes``) or raise StateError; returns the old state.

    ``verb`` words the refusal ("approve", "apply"...) for the person who asked.
    """
    reason, changes = process_redactor().scrub((reason, changes))  # quotes (terry.redact)
    with store.session() as session:
        row = get(session, proposal_id)
        current = ProposalState(row.state)
        sources = frozenset(allowed_from) if allowed_from is not None else None
        legal = to in TRANSITIONS[current] and (sources is None or current in sources)
        if not legal:
            action = verb or f"move to {to.value}"
            why = _WHY_NOT.get(current, f"it is {current.value}")
            raise StateError(f"cannot {action} proposal {proposal_id}: {why}")
        values: dict[str, Any] = {"state": to.value, "updated_at": at or utcnow()}
        values.update(changes or {})
        result = session.execute(
            update(ProposalRow)
            .where(ProposalRow.id == proposal_id, ProposalRow.state == current.value)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise StateError(
                f"cannot {verb or 'change'} proposal {proposal_id}: another process changed it"
            )
        audit(
            session,
            entity="proposal",
            entity_id=proposal_id,
            actor=actor,
            from_state=current.value,
            to_state=to.value,
            reason=reason,
            at=at,
        )
        if to in _ENDS_UNAPPLIED:  # its hosts waiting for it will not get it: say why
            session.execute(
                update(ProposalHostRow)
                .where(
                    ProposalHostRow.proposal_id == proposal_id,
                    ProposalHostRow.state == HostState.PENDING.value,
                )
                .values(
                    state=HostState.NOT_APPLIED.value, detail=reason[:2000], updated_at=utcnow()
                )
                .execution_options(synchronize_session=False)
            )
    return current


def for_incident(session: Session, incident_id: int) -> list[ProposalRow]:
    return list(
        session.scalars(
            select(ProposalRow)
            .where(ProposalRow.incident_id == incident_id)
            .order_by(ProposalRow.id)
        )
    )
