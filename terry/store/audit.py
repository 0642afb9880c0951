"""Audit rows: every state change records who, from what, to what, and why."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from terry.store.models import AuditRow, utcnow

__all__ = ["audit"]


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
