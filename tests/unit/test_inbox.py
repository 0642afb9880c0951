"""The inbox: bodies durable before the answer, committed in groups, folded exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from terry.sources.inbox import Inbox, fold_pending
from terry.store import Store
from terry.store.models import AlertRow, InboxRow, IncidentRow
from tests.conftest import alert, count_rows, payload

pytestmark = pytest.mark.unit


def test_concurrent_puts_are_all_durable_when_they_return(store: Store) -> None:
    inbox = Inbox(store)

    async def burst() -> None:
        await asyncio.gather(
            *(
                inbox.put(payload([alert("X", fingerprint=f"in-{n}", host="web-01")]))
                for n in range(300)
            )
        )

    try:
        asyncio.run(burst())
        assert count_rows(store, InboxRow) == 300
    finally:
        inbox.close()
    first = fold_pending(store, limit=500)
    assert first.rows == 300 and len(first.opened) == 300
    assert fold_pending(store).rows == 0  # folded once
    assert count_rows(store, AlertRow) == 300 and count_rows(store, IncidentRow) == 300


def test_a_body_that_no_longer_parses_is_kept_with_the_reason(store: Store) -> None:
    from terry.store.models import utcnow

    with store.session() as session:
        session.add(InboxRow(received_at=utcnow(), body='{"version": "3"}'))
    folded = fold_pending(store)
    assert (folded.rows, folded.refused, folded.opened) == (1, 1, ())
    with store.session() as session:
        row = session.scalars(select(InboxRow)).one()
        assert row.folded_at is not None and "version" in (row.error or "")
    assert count_rows(store, AlertRow) == 0


def test_a_dead_store_fails_every_put_of_the_batch() -> None:
    from terry.errors import StoreError

    inbox = Inbox(Store("postgresql+psycopg://terry@127.0.0.1:9/terry"))
    try:
        with pytest.raises(StoreError):
            asyncio.run(inbox.put("{}"))
    finally:
        inbox.close()


def _story() -> list[str]:
    """Deliveries that exercise every effect: duplicates within and across deliveries, a
    resolve and a re-fire of one fingerprint, a resolve with nothing open, truncation."""
    fire = alert("DiskUsageHigh", fingerprint="fa", host="web-01")
    later = alert("DiskUsageHigh", fingerprint="fa", host="web-01", starts="2026-11-24T10:01:00Z")
    done = alert(
        "DiskUsageHigh",
        fingerprint="fa",
        host="web-01",
        status="resolved",
        ends="2026-11-24T10:05:00Z",
    )
    refire = alert("DiskUsageHigh", fingerprint="fa", host="web-01", starts="2026-11-24T11:00:00Z")
    other = alert("ServiceDown", fingerprint="fb", host="web-02")
    stray = alert("ServiceDown", fingerprint="fc", status="resolved", ends="2026-11-24T10:02:00Z")
    return [
        payload([fire, fire]),
        payload([fire, later, other], truncated=2),
        payload([done], status="resolved"),
        payload([done, stray], status="resolved"),
        payload([refire]),
        payload([other, refire]),
    ]


def _record(store: Store) -> tuple[list[tuple[object, ...]], ...]:
    from terry.store.models import AuditRow

    with store.session() as session:
        incidents = [
            (i.fingerprint, i.state, i.recurrence, i.truncated, i.resolved_at)
            for i in session.scalars(select(IncidentRow).order_by(IncidentRow.id))
        ]
        alerts = [
            (a.fingerprint, a.status, a.effect, a.incident_id)
            for a in session.scalars(select(AlertRow).order_by(AlertRow.id))
        ]
        audits = [
            (a.entity_id, a.from_state, a.to_state, a.reason)
            for a in session.scalars(select(AuditRow).order_by(AuditRow.id))
        ]
    return incidents, alerts, audits


def test_folding_a_batch_records_what_folding_one_by_one_records(
    store: Store, tmp_path: Path
) -> None:
    from terry.incidents.lifecycle import ingest
    from terry.sources.alertmanager import parse_payload
    from terry.store.models import utcnow

    one_by_one = Store(f"sqlite:///{tmp_path / 'one.db'}")
    one_by_one.migrate()
    effects = [[e.effect for e in ingest(one_by_one, parse_payload(b)).effects] for b in _story()]
    with store.session() as session:
        session.add_all(InboxRow(received_at=utcnow(), body=b) for b in _story())
    folded = fold_pending(store)  # the whole story in one transaction
    assert folded.rows == 6 and folded.refused == 0
    assert _record(store) == _record(one_by_one)
    assert effects == [
        ["opened", "duplicate"],
        ["duplicate", "joined", "opened"],
        ["resolved"],
        ["duplicate", "ignored"],
        ["opened"],
        ["duplicate", "duplicate"],
    ]
    incidents, _alerts, _audits = _record(store)
    assert [
        (fp, state, recurrence, truncated) for fp, state, recurrence, truncated, _ in incidents
    ] == [
        ("fa", "resolved", 0, True),
        ("fb", "open", 0, True),
        ("fa", "open", 1, False),
    ]
    one_by_one.dispose()
