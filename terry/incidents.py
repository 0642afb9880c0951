"""Incidents: alerts that share a fingerprint become one incident; a resolved alert closes it.

Ingest stores every alert of a payload in one transaction before anything else looks at it,
so a bad payload stores nothing and a good one is never half-stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from terry.sources.alertmanager import Alert, AlertStatus, Payload
from terry.store import Store
from terry.store.audit import audit
from terry.store.models import AlertRow, IncidentRow, utcnow

__all__ = [
    "Effect",
    "IncidentState",
    "IngestEffect",
    "IngestResult",
    "claim",
    "ingest",
    "ingest_in",
    "mark_diagnosed",
    "pending",
    "set_attention",
]


class IncidentState(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class Effect(StrEnum):
    OPENED = "opened"
    JOINED = "joined"
    RESOLVED = "resolved"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


@dataclass(frozen=True)
class IngestEffect:
    fingerprint: str
    alertname: str
    status: AlertStatus
    effect: Effect
    incident_id: int | None
    detail: str = ""


@dataclass(frozen=True)
class IngestResult:
    effects: tuple[IngestEffect, ...]

    @property
    def opened(self) -> tuple[int, ...]:
        """Incidents this payload opened: the ones the pipeline should diagnose."""
        return tuple(
            e.incident_id for e in self.effects if e.effect is Effect.OPENED and e.incident_id
        )


def _open_incident(session: Session, fingerprint: str) -> IncidentRow | None:
    return session.scalars(
        select(IncidentRow)
        .where(IncidentRow.fingerprint == fingerprint, IncidentRow.state == IncidentState.OPEN)
        .order_by(IncidentRow.id.desc())
        .limit(1)
    ).first()


def _ingest_one(
    session: Session, payload: Payload, alert: Alert, actor: str, now: datetime
) -> IngestEffect:
    def effect(kind: Effect, incident_id: int | None, detail: str = "") -> IngestEffect:
        return IngestEffect(
            alert.fingerprint, alert.alertname, alert.status, kind, incident_id, detail
        )

    duplicate = session.scalars(
        select(AlertRow.id).where(
            AlertRow.fingerprint == alert.fingerprint,
            AlertRow.starts_at == alert.starts_at,
            AlertRow.status == alert.status,
        )
    ).first()
    if duplicate is not None:
        return effect(Effect.DUPLICATE, None, f"already stored as alert {duplicate}")

    row = AlertRow(
        fingerprint=alert.fingerprint,
        status=alert.status,
        alertname=alert.alertname,
        starts_at=alert.starts_at,
        ends_at=alert.ends_at,
        labels=alert.labels,
        annotations=alert.annotations,
        generator_url=alert.generator_url,
        group_key=payload.group_key,
        truncated_alerts=payload.truncated_alerts,
        received_at=now,
    )
    session.add(row)
    session.flush()  # the alert is stored before anything else happens to it

    incident = _open_incident(session, alert.fingerprint)
    if alert.status is AlertStatus.RESOLVED:
        if incident is None:
            row.effect = "ignored: no open incident with this fingerprint"
            return effect(Effect.IGNORED, None, row.effect.removeprefix("ignored: "))
        incident.state = IncidentState.RESOLVED
        incident.resolved_at = alert.ends_at or now
        row.incident_id = incident.id
        row.effect = Effect.RESOLVED
        audit(
            session,
            entity="incident",
            entity_id=incident.id,
            actor=actor,
            from_state=IncidentState.OPEN,
            to_state=IncidentState.RESOLVED,
            reason=f"alert {alert.alertname} resolved",
        )
        return effect(Effect.RESOLVED, incident.id)

    if incident is not None:
        row.incident_id = incident.id
        row.effect = Effect.JOINED
        if payload.truncated_alerts:
            incident.truncated = True
        return effect(Effect.JOINED, incident.id)

    recurrence = session.scalar(
        select(func.count(IncidentRow.id)).where(IncidentRow.fingerprint == alert.fingerprint)
    )
    incident = IncidentRow(
        fingerprint=alert.fingerprint,
        source="alert",
        title=alert.alertname,
        host=None,
        labels=alert.labels,
        annotations=alert.annotations,
        state=IncidentState.OPEN,
        opened_at=alert.starts_at,
        truncated=payload.truncated_alerts > 0,
        recurrence=int(recurrence or 0),
    )
    session.add(incident)
    session.flush()
    row.incident_id = incident.id
    row.effect = Effect.OPENED
    audit(
        session,
        entity="incident",
        entity_id=incident.id,
        actor=actor,
        from_state=None,
        to_state=IncidentState.OPEN,
        reason=f"alert {alert.alertname} firing"
        + (
            f"; payload truncated {payload.truncated_alerts} alerts"
            if payload.truncated_alerts
            else ""
        ),
    )
    return effect(Effect.OPENED, incident.id)


def ingest(
    store: Store, payload: Payload, *, actor: str = "alertmanager", now: datetime | None = None
) -> IngestResult:
    """Store every alert of ``payload`` and fold it into incidents, in one transaction."""
    with store.session() as session:
        return ingest_in(session, payload, actor=actor, now=now)


def ingest_in(
    session: Session, payload: Payload, *, actor: str = "alertmanager", now: datetime | None = None
) -> IngestResult:
    """``ingest`` inside a transaction the caller owns (the inbox folds with it)."""
    received = now or utcnow()
    return IngestResult(
        tuple(_ingest_one(session, payload, alert, actor, received) for alert in payload.alerts)
    )


def set_attention(store: Store, incident_id: int, reason: str, *, actor: str = "terry") -> None:
    """Keep the incident for a human, saying why."""
    with store.session() as session:
        incident = session.get(IncidentRow, incident_id)
        if incident is None:
            return
        incident.attention = reason
        audit(
            session,
            entity="incident",
            entity_id=incident_id,
            actor=actor,
            from_state=incident.state,
            to_state=incident.state,
            reason=f"needs a human: {reason}",
        )


def claim(store: Store, incident_id: int, holder: str, *, lease: timedelta) -> bool:
    """Take the diagnosis of an incident; False if it is done or another live holder has it.

    A claim is a lease: one older than ``lease`` can be taken over (its holder died).
    """
    now = utcnow()
    with store.session() as session:
        result = session.execute(
            update(IncidentRow)
            .where(
                IncidentRow.id == incident_id,
                IncidentRow.diagnosed_at.is_(None),
                or_(
                    IncidentRow.claimed_by.is_(None),
                    IncidentRow.claimed_by == holder,
                    IncidentRow.claimed_at < now - lease,
                ),
            )
            .values(claimed_by=holder, claimed_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_diagnosed(store: Store, incident_id: int, *, host: str | None = None) -> None:
    with store.session() as session:
        incident = session.get(IncidentRow, incident_id)
        if incident is not None:
            incident.diagnosed_at = utcnow()
            if host:
                incident.host = host


def release_claims(store: Store, holders: list[str]) -> int:
    """Free claims of holders known to be dead (undiagnosed incidents become pending again)."""
    if not holders:
        return 0
    with store.session() as session:
        result = session.execute(
            update(IncidentRow)
            .where(IncidentRow.claimed_by.in_(holders), IncidentRow.diagnosed_at.is_(None))
            .values(claimed_by=None, claimed_at=None)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


def pending(store: Store, *, lease: timedelta, limit: int = 100) -> list[int]:
    """Open incidents still waiting for diagnosis whose claim is free or expired."""
    now = utcnow()
    with store.session() as session:
        return list(
            session.scalars(
                select(IncidentRow.id)
                .where(
                    IncidentRow.state == IncidentState.OPEN,
                    IncidentRow.diagnosed_at.is_(None),
                    or_(IncidentRow.claimed_by.is_(None), IncidentRow.claimed_at < now - lease),
                )
                .order_by(IncidentRow.id)
                .limit(limit)
            )
        )
