"""Audit rows: every state change records who, from what, to what, and why."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from terry.store.models import AuditRow, utcnow

__all__ = ["audit", "last_reason"]


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


def last_reason(session: Session, *, entity: str, entity_id: int) -> str | None:
    """The reason of the newest audit row of this entity (``None``: it has none)."""
    return session.scalar(
        select(AuditRow.reason)
        .where(AuditRow.entity == entity, AuditRow.entity_id == entity_id)
        .order_by(AuditRow.id.desc())
        .limit(1)
    )
