"""Host locks through the database: one run per host at a time, across processes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from terry.errors import StateError
from terry.store import Store
from terry.store.locks import host_locks
from terry.store.models import HostLockRow, utcnow

pytestmark = pytest.mark.unit
TTL = timedelta(minutes=5)


def test_a_held_host_refuses_a_second_holder_and_frees_on_exit(store: Store) -> None:
    with host_locks(store, ("web-01", "web-02"), proposal_id=1, ttl=TTL):
        with (
            pytest.raises(StateError, match="host web-02 is busy: proposal 1"),
            host_locks(store, ("web-02",), proposal_id=2, ttl=TTL),
        ):
            pass
        with host_locks(store, ("db-01",), proposal_id=3, ttl=TTL):  # other hosts are free
            pass
    with host_locks(store, ("web-02",), proposal_id=2, ttl=TTL):  # released
        pass


def test_a_lock_whose_holder_died_expires(store: Store) -> None:
    with host_locks(store, ("web-01",), proposal_id=1, ttl=TTL):
        with store.session() as session:  # as if the holder died long ago
            session.execute(update(HostLockRow).values(expires_at=utcnow() - TTL))
        with host_locks(store, ("web-01",), proposal_id=2, ttl=TTL), store.session() as session:
            assert session.get(HostLockRow, "web-01").proposal_id == 2
