"""Host locks: one run per host at a time, across processes, through the database.

A lock is a row keyed by host; taking it is an INSERT (or an UPDATE of an expired row), so the
database decides who wins. A holder that dies leaves a row that expires.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from terry.errors import StateError
from terry.store import Store
from terry.store.models import HostLockRow, utcnow

__all__ = ["holder_id", "host_locks", "named_lock"]


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _take(store: Store, host: str, holder: str, proposal_id: int | None, ttl: timedelta) -> bool:
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
    store: Store,
    hosts: tuple[str, ...],
    *,
    proposal_id: int,
    ttl: timedelta,
    wait: float = 0.0,
) -> Iterator[None]:
    """Hold every host in ``hosts``, waiting up to ``wait`` seconds for busy ones, or raise
    StateError naming the busy host. Hosts are taken in sorted order, so two holders never
    wait on each other."""
    holder = f"{holder_id()}:{proposal_id}"
    taken: list[str] = []
    deadline = time.monotonic() + wait
    try:
        for host in sorted(hosts):
            while not _take(store, host, holder, proposal_id, ttl):
                if time.monotonic() >= deadline:
                    with store.session() as session:
                        busy = session.get(HostLockRow, host)
                        other = busy.proposal_id if busy else "?"
                    raise StateError(f"host {host} is busy: proposal {other} is running there")
                time.sleep(0.5)
            taken.append(host)
        yield
    finally:
        if taken:
            _release(store, taken, holder)


@contextmanager
def named_lock(store: Store, name: str, *, ttl: timedelta) -> Iterator[bool]:
    """Try once to hold the lock ``name`` (e.g. ``schedule:nightly``) across processes;
    yields whether it was taken. A holder that died frees it after ``ttl``."""
    holder = f"{holder_id()}:{threading.get_ident()}"
    taken = _take(store, name, holder, None, ttl)
    try:
        yield taken
    finally:
        if taken:
            _release(store, [name], holder)
