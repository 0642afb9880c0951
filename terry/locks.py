"""Host locks: one run per host at a time, across processes, through the database.

A lock is a row keyed by host; taking it is an INSERT (or an UPDATE of an expired row), so the
database decides who wins. A holder that dies leaves a row that expires.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from terry.errors import StateError
from terry.store import Store
from terry.store.models import HostLockRow, utcnow

__all__ = ["holder_id", "host_locks"]


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _take(store: Store, host: str, holder: str, proposal_id: int, ttl: timedelta) -> bool:
    now = utcnow()
    try:
        with store.session() as session:
            session.add(
                HostLockRow(
                    host=host,
                    holder=holder,
                    proposal_id=proposal_id,
                    acquired_at=now,
                    expires_at=now + ttl,
                )
            )
        return True
    except IntegrityError:
        pass
    with store.session() as session:
        stolen = session.execute(
            update(HostLockRow)
            .where(HostLockRow.host == host, HostLockRow.expires_at < now)
            .values(holder=holder, proposal_id=proposal_id, acquired_at=now, expires_at=now + ttl)
        )
        return bool(stolen.rowcount)  # type: ignore[attr-defined]


def _release(store: Store, hosts: list[str], holder: str) -> None:
    with store.session() as session:
        session.execute(
            delete(HostLockRow).where(HostLockRow.host.in_(hosts), HostLockRow.holder == holder)
        )


@contextmanager
def host_locks(
    store: Store, hosts: tuple[str, ...], *, proposal_id: int, ttl: timedelta
) -> Iterator[None]:
    """Hold every host in ``hosts`` or raise StateError naming the busy one."""
    holder = f"{holder_id()}:{proposal_id}"
    taken: list[str] = []
    try:
        for host in sorted(hosts):
            if not _take(store, host, holder, proposal_id, ttl):
                with store.session() as session:
                    busy = session.get(HostLockRow, host)
                    other = busy.proposal_id if busy else "?"
                raise StateError(f"host {host} is busy: proposal {other} is running there")
            taken.append(host)
        yield
    finally:
        if taken:
            _release(store, taken, holder)
