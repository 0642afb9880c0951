"""The inbox: bodies durable before the answer, committed in groups, folded exactly once."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from terry.inbox import Inbox, fold_pending
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
    first = fold_pending(store)
    assert first.rows == 300 and len(first.opened) == 300
    assert fold_pending(store).rows == 0  # folded once
    assert count_rows(store, AlertRow) == 300 and count_rows(store, IncidentRow) == 300


def test_a_body_that_no_longer_parses_is_kept_with_the_reason(store: Store) -> None:
    from terry.store.models import utcnow

    with store.session() as session:
        session.add(InboxRow(received_at=utcnow(), body='{"version": "3"}'))
    assert fold_pending(store).rows == 0
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
