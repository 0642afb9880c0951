"""The outbox: notifications owed, kept in the store until delivered (or dead).

``collect`` reads the audit log past the cursor (and a trailing window before it: a
transaction that took an audit id earlier but committed later is still seen) and inserts
one row per (route, event) it matches. The row's ``dedupe_key`` is unique and the insert
ignores one already there, so re-reading is harmless and two processes collecting at once
owe each message once.

``claim`` takes the due rows for one delivery round, as a lease: each gets the round's
token and a ``next_attempt_at`` in the future, in one compare-and-set, so two processes
never send the same row at once, and the rows of a round that died are due again when the
lease ends (at least once). ``settle`` records how the send went: delivered; or pending
again after an exponential backoff with jitter (no sooner than a service's ``Retry-After``);
or ``dead`` after ``max_attempts``.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from terry.config import NotificationsConfig
from terry.errors import NotFound, StateError
from terry.notify.events import Event, load_events
from terry.notify.routes import matches
from terry.notify.tenancy import UNBOUND, Tenancy
from terry.store import Store
from terry.store.models import AuditRow, NotificationCursorRow, NotificationRow, utcnow

__all__ = [
    "DEAD",
    "DELIVERED",
    "PENDING",
    "Claimed",
    "backoff",
    "claim",
    "collect",
    "counts",
    "retry",
    "settle",
]

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
CURSOR = "audit"
# Audit rows before the cursor read again each time (late commits of concurrent writers).
TRAIL = 200
BATCH = 1000
ROUND_LIMIT = 1000  # rows one delivery round takes at most
# Events older than this are not news: a route added later does not announce the past.
STALE = timedelta(days=1)


def _insert(session: Session) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(NotificationRow.__table__)


def _cursor(session: Session) -> NotificationCursorRow:
    row = session.get(NotificationCursorRow, CURSOR)
    if row is None:  # the migration makes it; a store made otherwise starts from now
        newest = session.scalar(select(func.max(AuditRow.id))) or 0
        row = NotificationCursorRow(name=CURSOR, audit_id=int(newest), updated_at=utcnow())
        session.add(row)
        session.flush()
    return row


def collect(
    store: Store,
    config: NotificationsConfig,
    *,
    now: datetime | None = None,
    tenancy: Tenancy = UNBOUND,
) -> int:
    """Owe a notification for each new audit row some route wants; how many were new.
    ``tenancy``: which tenants each event's hosts are in and which routes are theirs (the
    default knows none: a route naming tenants then gets nothing)."""
    added = 0
    while True:
        now = now or utcnow()
        with store.session() as session:
            cursor = _cursor(session)
            seen = cursor.audit_id
            rows = list(
                session.scalars(
                    select(AuditRow)
                    .where(AuditRow.id > max(0, seen - TRAIL))
                    .order_by(AuditRow.id)
                    .limit(BATCH)
                )
            )
            if config.routes and rows:
                added += _owe(session, config, load_events(session, rows), now, tenancy)
            newest = max((r.id for r in rows), default=seen)
            if newest > seen:
                session.execute(
                    update(NotificationCursorRow)
                    .where(
                        NotificationCursorRow.name == CURSOR,
                        NotificationCursorRow.audit_id < newest,
                    )
                    .values(audit_id=newest, updated_at=now)
                )
        if len(rows) < BATCH or newest <= seen:
            return added


def _owe(
    session: Session,
    config: NotificationsConfig,
    events: list[Event],
    now: datetime,
    tenancy: Tenancy,
) -> int:
    due = now + timedelta(seconds=config.group_window)
    events = [
        dataclasses.replace(e, tenants=tenancy.tenants_of(e.hosts))
        for e in events
        if e.at >= now - STALE
    ]
    bound = {route.name: tenancy.bound(route) for route in config.routes}
    values = [
        {
            "dedupe_key": event.dedupe_key(route.name),
            "route": route.name,
            "event": event.kind.value,
            "audit_id": event.audit_id,
            "incident_id": event.incident_id,
            "proposal_id": event.proposal_id,
            "payload": tenancy.told(event, bound[route.name]).to_payload(),
            "state": PENDING,
            "attempts": 0,
            "next_attempt_at": due,
            "created_at": now,
            "delivered_at": None,
            "last_error": None,
            "claimed_by": None,
        }
        for event in events
        for route in config.routes
        if matches(route, event, bound[route.name])
    ]
    if not values:
        return 0
    keys = [v["dedupe_key"] for v in values]
    known = set(
        session.scalars(
            select(NotificationRow.dedupe_key).where(NotificationRow.dedupe_key.in_(keys))
        )
    )
    fresh = [v for v in values if v["dedupe_key"] not in known]
    if fresh:
        session.execute(
            _insert(session).on_conflict_do_nothing(index_elements=["dedupe_key"]), fresh
        )
    return len(fresh)


@dataclass(frozen=True)
class Claimed:
    """A row this round holds: its id, route, attempts so far and event."""

    id: int
    route: str
    attempts: int
    event: Event


def claim(
    store: Store, routes: Sequence[str], *, lease: float, now: datetime | None = None
) -> list[Claimed]:
    """The rows due now for ``routes``, held for ``lease`` seconds. A route with a row due
    also takes its first-attempt rows still in their group window (they join the message
    instead of waiting for one of their own)."""
    now = now or utcnow()
    token = f"round-{uuid.uuid4().hex}"
    pending = and_(NotificationRow.state == PENDING, NotificationRow.route.in_(list(routes)))
    with store.session() as session:
        due_routes = set(
            session.scalars(
                select(NotificationRow.route)
                .where(pending, NotificationRow.next_attempt_at <= now)
                .distinct()
            )
        )
        if not due_routes:
            return []
        takeable = and_(
            NotificationRow.state == PENDING,
            NotificationRow.route.in_(sorted(due_routes)),
            or_(
                NotificationRow.next_attempt_at <= now,
                and_(NotificationRow.attempts == 0, NotificationRow.claimed_by.is_(None)),
            ),
        )
        ids = list(
            session.scalars(
                select(NotificationRow.id)
                .where(takeable)
                .order_by(NotificationRow.id)
                .limit(ROUND_LIMIT)
            )
        )
        session.execute(
            update(NotificationRow)
            .where(NotificationRow.id.in_(ids), takeable)
            .values(claimed_by=token, next_attempt_at=now + timedelta(seconds=lease))
            .execution_options(synchronize_session=False)
        )
        rows = session.scalars(
            select(NotificationRow)
            .where(NotificationRow.claimed_by == token)
            .order_by(NotificationRow.id)
        ).all()
        return [Claimed(r.id, r.route, r.attempts, Event.from_payload(r.payload)) for r in rows]


def backoff(attempts: int, *, first: float, most: float) -> float:
    """Seconds before attempt ``attempts + 1``: doubling from ``first``, at most ``most``,
    with up to a quarter more or less at random (retries of many rows spread out)."""
    wait = min(most, first * 2 ** max(0, attempts - 1))
    return wait * random.uniform(0.75, 1.25)


def settle(
    store: Store,
    claimed: Sequence[Claimed],
    config: NotificationsConfig,
    *,
    error: str | None,
    now: datetime | None = None,
    retry_after: float | None = None,
) -> int:
    """Record one send of ``claimed``: delivered (``error`` None), or failed with ``error``
    (tried again after the backoff, or after ``retry_after`` seconds when the service asked
    for longer: a 429's ``Retry-After``). Returns how many rows went dead."""
    now = now or utcnow()
    dead = 0
    with store.session() as session:
        for item in claimed:
            attempts = item.attempts + 1
            values: dict[str, Any] = {"attempts": attempts, "claimed_by": None}
            if error is None:
                values |= {"state": DELIVERED, "delivered_at": now, "last_error": None}
            elif attempts >= config.max_attempts:
                values |= {"state": DEAD, "last_error": error}
                dead += 1
            else:
                wait = backoff(attempts, first=config.retry_seconds, most=config.max_retry_seconds)
                wait = max(wait, retry_after or 0.0)
                values |= {"last_error": error, "next_attempt_at": now + timedelta(seconds=wait)}
            session.execute(
                update(NotificationRow)
                .where(NotificationRow.id == item.id, NotificationRow.state == PENDING)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
    return dead


def retry(store: Store, *, ids: Sequence[int] = (), dead: bool = False) -> list[int]:
    """Make rows due again now (dead ones get their attempts back): ``ids``, or every dead
    row. Returns the ids made due."""
    now = utcnow()
    with store.session() as session:
        if dead:
            ids = list(
                session.scalars(select(NotificationRow.id).where(NotificationRow.state == DEAD))
            )
        for nid in ids:
            row = session.get(NotificationRow, nid)
            if row is None:
                raise NotFound(f"notification {nid} does not exist")
            if row.state == DELIVERED:
                raise StateError(f"cannot retry notification {nid}: it was delivered")
        if ids:
            session.execute(
                update(NotificationRow)
                .where(NotificationRow.id.in_(list(ids)), NotificationRow.state != DELIVERED)
                .values(state=PENDING, attempts=0, next_attempt_at=now, claimed_by=None)
                .execution_options(synchronize_session=False)
            )
    return list(ids)


def counts(store: Store) -> dict[tuple[str, str], int]:
    """Rows by (route, state): what /metrics reports."""
    with store.session() as session:
        rows = session.execute(
            select(
                NotificationRow.route, NotificationRow.state, func.count(NotificationRow.id)
            ).group_by(NotificationRow.route, NotificationRow.state)
        ).all()
    return {(route, state): int(n) for route, state, n in rows}
