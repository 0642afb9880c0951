"""Incidents: alerts that share a fingerprint become one incident; a resolved alert closes it.

Ingest stores every alert of a payload in one transaction before anything else looks at it,
so a bad payload stores nothing and a good one is never half-stored.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from terry.incidents.refs import allocate_refs
from terry.redact import redact
from terry.sources.alertmanager import Alert, AlertStatus, Payload
from terry.store import Store
from terry.store.audit import audit
from terry.store.models import AlertRow, AuditRow, IncidentRow, utcnow

__all__ = [
    "Effect",
    "IncidentState",
    "IngestEffect",
    "IngestResult",
    "claim",
    "ingest",
    "ingest_in",
    "ingest_many",
    "let_go",
    "mark_diagnosed",
    "pending",
    "set_attention",
    "sources",
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


@dataclass
class _Incident:
    """An incident as this batch sees it: loaded open, or opened by the batch (id None)."""

    fingerprint: str
    id: int | None = None
    new_row: dict[str, Any] | None = None  # the row to insert, for one opened by the batch
    resolved_at: datetime | None = None
    truncated: bool = False

    def ref(self) -> int:
        assert self.id is not None
        return self.id


@dataclass
class _Planned:
    """One alert's part in the batch: its row (None for a duplicate) and effect."""

    alert: Alert
    effect: Effect
    incident: _Incident | None
    row: dict[str, Any] | None
    stored_as: int | None = None
    earlier: _Planned | None = None  # an alert of the same batch this one duplicates
    detail: str = ""


_CHUNK = 400  # IN (...) lists stay far below every database's parameter limit


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


def ingest_many(
    session: Session, batch: Sequence[tuple[Payload, datetime]], *, actor: str = "alertmanager"
) -> list[IngestResult]:
    """Store and fold many payloads in the caller's transaction, in order, with a handful of
    statements for the whole batch (the inbox folds thousands of alerts a second this way).

    The result is what folding the payloads one by one would give: an alert already stored
    (same fingerprint, start and status) is a duplicate; a firing alert joins its
    fingerprint's open incident or opens one; a resolved alert closes it.
    """
    fingerprints = sorted({a.fingerprint for payload, _ in batch for a in payload.alerts})
    stored: dict[tuple[str, datetime, str], int] = {}
    open_by_fp: dict[str, _Incident] = {}
    recurrence: dict[str, int] = {}
    for chunk in _chunks(fingerprints):
        for alert_id, fp, starts, status in session.execute(
            select(AlertRow.id, AlertRow.fingerprint, AlertRow.starts_at, AlertRow.status).where(
                AlertRow.fingerprint.in_(chunk)
            )
        ):
            stored[(fp, starts, status)] = alert_id
        for incident_id, fp, state in session.execute(
            select(IncidentRow.id, IncidentRow.fingerprint, IncidentRow.state)
            .where(IncidentRow.fingerprint.in_(chunk))
            .order_by(IncidentRow.id)
        ):
            recurrence[fp] = recurrence.get(fp, 0) + 1
            if state == IncidentState.OPEN:
                open_by_fp[fp] = _Incident(fp, id=incident_id)

    planned: list[list[_Planned]] = []
    in_batch: dict[tuple[str, datetime, str], _Planned] = {}
    audits: list[tuple[_Incident, str | None, str, str, datetime]] = []
    for payload, received in batch:
        plans: list[_Planned] = []
        for alert in payload.alerts:
            key = (alert.fingerprint, alert.starts_at, str(alert.status))
            if key in stored:
                plans.append(_Planned(alert, Effect.DUPLICATE, None, None, stored[key]))
                continue
            if key in in_batch:
                plans.append(_Planned(alert, Effect.DUPLICATE, None, None, earlier=in_batch[key]))
                continue
            row = {
                "fingerprint": alert.fingerprint,
                "status": str(alert.status),
                "alertname": alert.alertname,
                "starts_at": alert.starts_at,
                "ends_at": alert.ends_at,
                "labels": alert.labels,
                "annotations": alert.annotations,
                "generator_url": alert.generator_url,
                "group_key": payload.group_key,
                "truncated_alerts": payload.truncated_alerts,
                "received_at": received,
            }
            plan = _plan_one(payload, alert, row, received, open_by_fp, recurrence, actor, audits)
            in_batch[key] = plan
            plans.append(plan)
        planned.append(plans)

    _write(session, planned, audits, actor)
    return [
        IngestResult(
            tuple(
                IngestEffect(
                    p.alert.fingerprint,
                    p.alert.alertname,
                    p.alert.status,
                    p.effect,
                    p.incident.id if p.incident else None,
                    _detail(p),
                )
                for p in plans
            )
        )
        for plans in planned
    ]


def _plan_one(
    payload: Payload,
    alert: Alert,
    row: dict[str, Any],
    received: datetime,
    open_by_fp: dict[str, _Incident],
    recurrence: dict[str, int],
    actor: str,
    audits: list[tuple[_Incident, str | None, str, str, datetime]],
) -> _Planned:
    incident = open_by_fp.get(alert.fingerprint)
    if alert.status is AlertStatus.RESOLVED:
        if incident is None:
            row["effect"] = "ignored: no open incident with this fingerprint"
            return _Planned(
                alert, Effect.IGNORED, None, row, detail="no open incident with this fingerprint"
            )
        del open_by_fp[alert.fingerprint]
        incident.resolved_at = alert.ends_at or received
        audits.append(
            (
                incident,
                IncidentState.OPEN,
                IncidentState.RESOLVED,
                f"alert {alert.alertname} resolved",
                received,
            )
        )
        row["effect"] = str(Effect.RESOLVED)
        return _Planned(alert, Effect.RESOLVED, incident, row)
    if incident is not None:
        if payload.truncated_alerts:
            incident.truncated = True
        row["effect"] = str(Effect.JOINED)
        return _Planned(alert, Effect.JOINED, incident, row)
    incident = _Incident(
        alert.fingerprint,
        new_row={
            "fingerprint": alert.fingerprint,
            "source": "alert",
            "title": alert.alertname,
            "host": None,
            "labels": alert.labels,
            "annotations": alert.annotations,
            "state": str(IncidentState.OPEN),
            "opened_at": alert.starts_at,
            "resolved_at": None,
            "truncated": payload.truncated_alerts > 0,
            "recurrence": recurrence.get(alert.fingerprint, 0),
        },
    )
    recurrence[alert.fingerprint] = recurrence.get(alert.fingerprint, 0) + 1
    open_by_fp[alert.fingerprint] = incident
    truncated = (
        f"; payload truncated {payload.truncated_alerts} alerts" if payload.truncated_alerts else ""
    )
    audits.append(
        (incident, None, IncidentState.OPEN, f"alert {alert.alertname} firing{truncated}", received)
    )
    row["effect"] = str(Effect.OPENED)
    return _Planned(alert, Effect.OPENED, incident, row)


def _write(
    session: Session,
    planned: list[list[_Planned]],
    audits: list[tuple[_Incident, str | None, str, str, datetime]],
    actor: str,
) -> None:
    """Insert the batch's incidents, alerts and audit rows; update the incidents it changed."""
    plans = [p for group in planned for p in group]
    incidents = list({id(p.incident): p.incident for p in plans if p.incident}.values())
    new = [i for i in incidents if i.new_row is not None]
    if new:
        for incident in new:
            assert incident.new_row is not None
            if incident.resolved_at is not None:
                incident.new_row["state"] = str(IncidentState.RESOLVED)
                incident.new_row["resolved_at"] = incident.resolved_at
            incident.new_row["truncated"] = incident.new_row["truncated"] or incident.truncated
        refs = allocate_refs(session, utcnow().date(), len(new))
        for incident, ref in zip(new, refs, strict=True):
            assert incident.new_row is not None
            incident.new_row["ref"] = ref
        table = IncidentRow.__table__
        ids = session.scalars(
            insert(table).returning(table.c.id, sort_by_parameter_order=True),
            [i.new_row for i in new],
        ).all()
        for incident, incident_id in zip(new, ids, strict=True):
            incident.id = incident_id
    resolved = [i for i in incidents if i.new_row is None and i.resolved_at is not None]
    if resolved:
        session.execute(
            update(IncidentRow.__table__)
            .where(IncidentRow.__table__.c.id == bindparam("b_id"))
            .values(state=str(IncidentState.RESOLVED), resolved_at=bindparam("b_at")),
            [{"b_id": i.ref(), "b_at": i.resolved_at} for i in resolved],
        )
    truncated = [i for i in incidents if i.new_row is None and i.truncated]
    if truncated:
        session.execute(
            update(IncidentRow)
            .where(IncidentRow.id.in_([i.ref() for i in truncated]))
            .values(truncated=True)
            .execution_options(synchronize_session=False)
        )
    rows = [p for p in plans if p.row is not None]
    if rows:
        for p in rows:
            assert p.row is not None
            p.row["incident_id"] = p.incident.id if p.incident else None
        table = AlertRow.__table__
        ids = session.scalars(
            insert(table).returning(table.c.id, sort_by_parameter_order=True),
            [p.row for p in rows if p.row is not None],
        ).all()
        for p, alert_id in zip(rows, ids, strict=True):
            p.stored_as = alert_id  # the row that holds this alert
    if audits:
        session.execute(
            insert(AuditRow.__table__),
            [
                {
                    "at": at,
                    "actor": actor,
                    "entity": "incident",
                    "entity_id": incident.ref(),
                    "from_state": None if from_state is None else str(from_state),
                    "to_state": str(to_state),
                    "reason": reason,
                }
                for incident, from_state, to_state, reason, at in audits
            ],
        )


def _detail(p: _Planned) -> str:
    if p.effect is not Effect.DUPLICATE:
        return p.detail
    alert_id = p.stored_as if p.earlier is None else p.earlier.stored_as
    return f"already stored as alert {alert_id}"


def ingest(
    store: Store, payload: Payload, *, actor: str = "alertmanager", now: datetime | None = None
) -> IngestResult:
    """Store every alert of ``payload`` and fold it into incidents, in one transaction."""
    with store.session() as session:
        return ingest_in(session, payload, actor=actor, now=now)


def ingest_in(
    session: Session, payload: Payload, *, actor: str = "alertmanager", now: datetime | None = None
) -> IngestResult:
    """``ingest`` inside a transaction the caller owns."""
    return ingest_many(session, [(payload, now or utcnow())], actor=actor)[0]


def set_attention(store: Store, incident_id: int, reason: str, *, actor: str = "terry") -> None:
    """Keep the incident for a human, saying why."""
    reason = redact(reason)  # it may quote another system's error (terry.redact)
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


# Incidents a thread of this process is handling (incident id → thread). The store's claim
# names the process (``holder``), and is re-entrant for it so that a source opening an
# incident already claimed (drift, forecasts) can carry it on; two threads of one process
# (the worker's, the server's) must still not both take the same incident.
_IN_HAND: dict[int, int] = {}
_IN_HAND_LOCK = threading.Lock()


def claim(store: Store, incident_id: int, holder: str, *, lease: timedelta) -> bool:
    """Take the diagnosis of an incident; False if it is done, another live holder has it,
    or another thread of this process is handling it. ``let_go`` ends the thread's part.

    A claim is a lease: one older than ``lease`` can be taken over (its holder died).
    """
    me = threading.get_ident()
    with _IN_HAND_LOCK:
        if _IN_HAND.setdefault(incident_id, me) != me:
            return False
    try:
        taken = _claim_row(store, incident_id, holder, lease=lease)
    except BaseException:
        let_go([incident_id])
        raise
    if not taken:
        let_go([incident_id])
    return taken


def let_go(incident_ids: Iterable[int]) -> None:
    """This thread is done handling these incidents (diagnosed, proposed, or given up): the
    store's claim and ``diagnosed_at`` keep others away from then on."""
    me = threading.get_ident()
    with _IN_HAND_LOCK:
        for incident_id in incident_ids:
            if _IN_HAND.get(incident_id) == me:
                del _IN_HAND[incident_id]


def _claim_row(store: Store, incident_id: int, holder: str, *, lease: timedelta) -> bool:
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


def mark_diagnosed(
    store: Store, incident_id: int, *, host: str | None = None, folded_into: int | None = None
) -> None:
    """Diagnosis ran. ``folded_into``: the proposal that carries this incident's fix on
    ``host`` for an earlier incident there (a storm); it is marked fixed with that host."""
    with store.session() as session:
        incident = session.get(IncidentRow, incident_id)
        if incident is not None:
            incident.diagnosed_at = utcnow()
            if host:
                incident.host = host
            if folded_into is not None:
                incident.folded_into = folded_into


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


def sources(store: Store, incident_ids: Iterable[int]) -> dict[int, str]:
    """Each incident's source (``alert``, ``drift``, ``forecast``...), by id."""
    ids = list(incident_ids)
    if not ids:
        return {}
    with store.session() as session:
        rows = session.execute(
            select(IncidentRow.id, IncidentRow.source).where(IncidentRow.id.in_(ids))
        )
        return {int(i): str(s) for i, s in rows}


def open_incident(
    store: Store,
    *,
    source: str,
    fingerprint: str,
    title: str,
    host: str | None,
    labels: dict[str, str],
    annotations: dict[str, str],
    holder: str,
    actor: str = "terry",
) -> int:
    """Open an incident that did not come from an alert (drift, forecast), already claimed
    by ``holder``: the worker's queue never diagnoses it as an alert."""
    now = utcnow()
    with store.session() as session:
        earlier = session.scalar(
            select(func.count())
            .select_from(IncidentRow)
            .where(IncidentRow.fingerprint == fingerprint, IncidentRow.source == source)
        )
        row = IncidentRow(
            ref=allocate_refs(session, now.date(), 1)[0],
            fingerprint=fingerprint,
            source=source,
            title=title[:200],
            host=host,
            labels=labels,
            annotations=annotations,
            state=str(IncidentState.OPEN),
            opened_at=now,
            resolved_at=None,
            fixed_at=None,
            attention=None,
            truncated=False,
            recurrence=int(earlier or 0),
            claimed_by=holder,
            claimed_at=now,
            diagnosed_at=None,
        )
        session.add(row)
        session.flush()
        audit(
            session,
            entity="incident",
            entity_id=row.id,
            actor=actor,
            from_state=None,
            to_state=str(IncidentState.OPEN),
            reason=title[:500],
        )
        return row.id


def resolve(store: Store, incident_id: int, reason: str, *, actor: str = "terry") -> None:
    """Close an open incident (a drift incident once a scan finds its hosts clean)."""
    with store.session() as session:
        incident = session.get(IncidentRow, incident_id)
        if incident is None or incident.state != str(IncidentState.OPEN):
            return
        incident.state, incident.resolved_at = str(IncidentState.RESOLVED), utcnow()
        audit(
            session,
            entity="incident",
            entity_id=incident_id,
            actor=actor,
            from_state=str(IncidentState.OPEN),
            to_state=str(IncidentState.RESOLVED),
            reason=reason,
        )
