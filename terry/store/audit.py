"""Audit rows: every state change records who, from what, to what, and why."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from terry.store.models import AuditRow, utcnow

__all__ = ["audit", "newest_audits"]


def audit(
    session: Session,
    *,
    entity: str,
    entity_id: int,
    actor: str,
    from_state: str | None,
    to_state: str,
    reason: str = "",
    at: datetime | None = None,
) -> None:
    session.add(
        AuditRow(
            at=at or utcnow(),
            actor=actor,
            entity=entity,
            entity_id=entity_id,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
        )
    )


def newest_audits(session: Session, *, entity: str, limit: int = 1000) -> list[tuple[str, str]]:
    """(to_state, reason) of this entity's newest audit rows (any entity id), newest first."""
    rows = session.execute(
        select(AuditRow.to_state, AuditRow.reason)
        .where(AuditRow.entity == entity)
        .order_by(AuditRow.id.desc())
        .limit(limit)
    )
    return [(to_state, reason) for to_state, reason in rows]
