"""Host locks: one run per host at a time, across processes, through the database.

A lock is a row of ``host_locks`` keyed by host (or by a name: ``schedule:nightly``); taking
it is an INSERT, so the database decides who wins. Its ``holder`` says which process holds it
and what for: ``<machine>:<pid>@<boot>.<start>:<what>`` (the process's identity: this boot
of the machine and the process's start time, read from ``/proc``, so a pid the kernel gave
to another process since is not mistaken for the holder). While it holds, the holder renews
``heartbeat_at`` from a thread.

A holder is dead when, on its own machine, its process is gone (or the pid names another
process now); seen from another machine, when its heartbeat stopped (``STALE``). A dead
holder's lock is released by recovery (``terry.store.runs.reap``, after stopping what the
dead holder's run left running) and taken over by the next taker when the holder left no
run behind; a lock past ``expires_at`` is free, as before, and is all that frees a lock whose
holder cannot be judged (a row without heartbeat, written by an older Terry elsewhere).

A proposal that does not get its hosts at once says so in a row ``queued:<proposal id>``,
held and renewed by the process waiting. When that process gives up (``wait`` ran out) or
dies, the row stays: the worker carries the proposal on once its hosts are free
(``queued`` lists them), so a proposal that waited for a lock is never left behind.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from terry.errors import StateError
from terry.store import Store
from terry.store.models import HostLockRow, RunRow, utcnow

__all__ = [
    "HEARTBEAT_SECONDS",
    "STALE",
    "HostBusy",
    "Queued",
    "claim_queued",
    "dead_locks",
    "holder_id",
    "host_locks",
    "hosts_free",
    "live_proposals",
    "lock_alive",
    "named_lock",
    "proc_fields",
    "process_alive",
    "process_of",
    "proposal_holder",
    "queued",
    "release",
    "unqueue",
]

log = logging.getLogger("terry.store.locks")

# A holder renews its heartbeat this often; one not renewed for STALE is dead.
HEARTBEAT_SECONDS = 10.0
STALE = timedelta(seconds=90)
_QUEUED = "queued:"
_POLL = 0.5  # seconds between tries while waiting for a busy host


# -- who holds --------------------------------------------------------------------------------
@functools.cache
def _boot() -> str:
    """This boot of this machine (8 hex digits of the kernel's boot id), or ''."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:8]
    except OSError:
        return ""


def proc_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (0: state, 1: parent pid,
    19: start time in clock ticks since boot), or None when there is no such process (or no
    ``/proc``)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": the command name may hold spaces and parentheses
    fields = text[text.rindex(")") + 2 :].split()
    return fields if len(fields) > 19 else None


def holder_id() -> str:
    """This process: ``<machine>:<pid>@<boot>.<start>`` (``<machine>:<pid>`` where there is
    no ``/proc``)."""
    pid = os.getpid()
    fields = proc_fields(pid)
    identity = f"@{_boot()}.{fields[19]}" if fields and _boot() else ""
    return f"{socket.gethostname()}:{pid}{identity}"


def process_of(holder: str) -> str:
    """The process part of a holder (``<machine>:<pid>[@<boot>.<start>]``), without what
    it holds the lock for."""
    return ":".join(holder.split(":")[:2])


def proposal_holder(proposal_id: int, process: str | None = None) -> str:
    """The holder a process (this one by default) takes a proposal's host locks as."""
    return f"{process or holder_id()}:{proposal_id}"


def process_alive(holder: str) -> bool | None:
    """Whether the process a holder names is alive: True or False on this machine, None when
    this machine cannot tell (another machine, or another boot of a machine of this name):
    then only the holder's heartbeat tells."""
    machine, _, rest = holder.partition(":")
    if machine != socket.gethostname() or not rest:
        return None
    pid_text, _, identity = rest.split(":", 1)[0].partition("@")
    try:
        pid = int(pid_text)
    except ValueError:
        return None
    if pid <= 0:
        return None
    if identity:
        boot, _, start = identity.partition(".")
        if boot != _boot():
            return None
        fields = proc_fields(pid)
        if fields is None:
            return False
        return fields[19] == start and fields[0] not in ("Z", "X")  # a zombie is dead
    # a holder without identity (an older Terry): the pid alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return None
    fields = proc_fields(pid)
    return fields is None or fields[0] not in ("Z", "X")


def lock_alive(row: HostLockRow, now: datetime) -> bool:
    """Whether a lock row's holder is alive: its process (on this machine), else its
    heartbeat; a row without heartbeat (an older Terry elsewhere) until it expires."""
    alive = process_alive(row.holder)
    if alive is not None:
        return alive
    if row.heartbeat_at is not None:
        return row.heartbeat_at >= now - STALE
    return row.expires_at >= now


def _left_runs(session: Session, holder: str) -> bool:
    """Whether the holder's process has runs still marked running (something it started
    may still be running: only recovery, which can stop it, releases its locks)."""
    count = session.scalar(
        select(func.count())
        .select_from(RunRow)
        .where(RunRow.status == "running", RunRow.holder == process_of(holder))
    )
    return bool(count)


# -- taking and releasing ---------------------------------------------------------------------
def _take(
    store: Store,
    key: str,
    holder: str,
    proposal_id: int | None,
    ttl: timedelta,
    *,
    again: bool = False,
) -> bool:
    """Take ``key`` for ``holder``: a free key, an expired one, or one whose holder died
    leaving no run behind. ``again``: a row this same holder has is taken too (renewed)."""
    for _ in range(2):  # a row deleted between the INSERT and the look is tried again
        now = utcnow()
        values = {
            "holder": holder,
            "proposal_id": proposal_id,
            "acquired_at": now,
            "expires_at": now + ttl,
            "heartbeat_at": now,
        }
        try:
            with store.session() as session:
                session.add(HostLockRow(host=key, **values))
            return True
        except IntegrityError:
            pass
        with store.session() as session:
            row = session.get(HostLockRow, key)
            if row is None:
                continue
            free = (
                row.expires_at < now
                or (again and row.holder == holder)
                or (not lock_alive(row, now) and not _left_runs(session, row.holder))
            )
            if not free:
                return False
            taken = session.execute(
                update(HostLockRow)
                .where(
                    HostLockRow.host == key,
                    HostLockRow.holder == row.holder,
                    HostLockRow.acquired_at == row.acquired_at,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            return bool(taken.rowcount)  # type: ignore[attr-defined]
    return False


def _release(store: Store, keys: Iterable[str], holder: str) -> None:
    keys = list(keys)
    if not keys:
        return
    with store.session() as session:
        session.execute(
            delete(HostLockRow).where(HostLockRow.host.in_(keys), HostLockRow.holder == holder)
        )


def release(store: Store, rows: Iterable[HostLockRow]) -> tuple[str, ...]:
    """Delete these lock rows unless they changed hands since they were read; returns the
    keys released."""
    released = []
    with store.session() as session:
        for row in rows:
            gone = session.execute(
                delete(HostLockRow).where(
                    HostLockRow.host == row.host,
                    HostLockRow.holder == row.holder,
                    HostLockRow.acquired_at == row.acquired_at,
                )
            )
            if gone.rowcount:  # type: ignore[attr-defined]
                released.append(row.host)
    return tuple(released)


class _Heartbeat:
    """Renews ``heartbeat_at`` of the keys one holder holds, from a thread, while it holds."""

    def __init__(self, store: Store, holder: str, every: float) -> None:
        self._store, self._holder, self._every = store, holder, every
        self._keys: set[str] = set()
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, key: str) -> None:
        with self._mutex:
            self._keys.add(key)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="terry-lock-beat", daemon=True)
            self._thread.start()

    def discard(self, key: str) -> None:
        with self._mutex:
            self._keys.discard(key)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            with self._mutex:
                keys = list(self._keys)
            if not keys:
                continue
            try:
                with self._store.session() as session:
                    session.execute(
                        update(HostLockRow)
                        .where(HostLockRow.host.in_(keys), HostLockRow.holder == self._holder)
                        .values(heartbeat_at=utcnow())
                    )
            except Exception as exc:  # the store may be down for a moment; beat again later
                log.warning("could not renew the heartbeat of %s: %s", ", ".join(keys), exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class HostBusy(StateError):
    """A host stayed busy for as long as the caller would wait. The proposal stays queued."""

    def __init__(self, host: str, other: int | str, proposal_id: int) -> None:
        self.host, self.other, self.proposal_id = host, other, proposal_id
        super().__init__(
            f"host {host} is busy: proposal {other} is running there; proposal "
            f"{proposal_id} stays queued for it ('terry serve' carries it on once the host "
            "is free)"
        )


@contextmanager
def host_locks(
    store: Store,
    hosts: tuple[str, ...],
    *,
    proposal_id: int,
    ttl: timedelta,
    wait: float = 0.0,
    reap: Callable[[], object] | None = None,
    heartbeat: float = HEARTBEAT_SECONDS,
) -> Iterator[None]:
    """Hold every host in ``hosts``, waiting up to ``wait`` seconds for busy ones, or raise
    HostBusy naming the busy host. Hosts are taken in sorted order, so two holders never
    wait on each other.

    While a host is busy the proposal is queued (a row ``queued:<id>``, see the module's
    doc), and ``reap`` (release what dead holders left: ``terry.store.runs.reap``) is called
    now and then."""
    holder = proposal_holder(proposal_id)
    queue_key = f"{_QUEUED}{proposal_id}"
    beat = _Heartbeat(store, holder, heartbeat)
    taken: list[str] = []
    waiting = False
    deadline = time.monotonic() + wait
    next_reap = 0.0
    try:
        for host in sorted(set(hosts)):
            while not _take(store, host, holder, proposal_id, ttl):
                if not waiting:
                    waiting = True
                    queue_ttl = timedelta(seconds=wait) + ttl
                    if _take(store, queue_key, holder, proposal_id, queue_ttl, again=True):
                        beat.add(queue_key)
                if reap is not None and time.monotonic() >= next_reap:
                    reap()
                    next_reap = time.monotonic() + heartbeat
                    if _take(store, host, holder, proposal_id, ttl):
                        break
                if time.monotonic() >= deadline:
                    _give_up(store, queue_key, holder)
                    with store.session() as session:
                        busy = session.get(HostLockRow, host)
                        other = busy.proposal_id if busy and busy.proposal_id else "?"
                    raise HostBusy(host, other, proposal_id)
                time.sleep(_POLL)
            taken.append(host)
            beat.add(host)
        beat.discard(queue_key)
        unqueue(store, proposal_id)  # it has its hosts: nobody needs to carry it on
        yield
    finally:
        beat.stop()
        _release(store, taken, holder)


def _give_up(store: Store, queue_key: str, holder: str) -> None:
    """Nobody waits for this proposal's hosts any more: its queue row (if this holder has
    it) expires now, for the worker to carry it on."""
    with suppress(Exception), store.session() as session:
        session.execute(
            update(HostLockRow)
            .where(HostLockRow.host == queue_key, HostLockRow.holder == holder)
            .values(expires_at=utcnow())
        )


@contextmanager
def named_lock(
    store: Store, name: str, *, ttl: timedelta, heartbeat: float = HEARTBEAT_SECONDS
) -> Iterator[bool]:
    """Try once to hold the lock ``name`` (e.g. ``schedule:nightly``) across processes;
    yields whether it was taken. A holder that died frees it (or, at the latest, ``ttl``)."""
    holder = f"{holder_id()}:{threading.get_ident()}"
    taken = _take(store, name, holder, None, ttl)
    beat = _Heartbeat(store, holder, heartbeat)
    if taken:
        beat.add(name)
    try:
        yield taken
    finally:
        beat.stop()
        if taken:
            _release(store, [name], holder)


# -- the queue --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Queued:
    """A proposal that waited for its hosts, and nobody waits for it any more."""

    proposal_id: int
    row: HostLockRow


def queued(store: Store) -> list[Queued]:
    """Proposals queued for their hosts whose waiter gave up or died, oldest first."""
    now = utcnow()
    with store.session() as session:
        rows = list(
            session.scalars(
                select(HostLockRow)
                .where(HostLockRow.host.startswith(_QUEUED, autoescape=True))
                .order_by(HostLockRow.acquired_at)
            )
        )
    return [
        Queued(int(row.host.removeprefix(_QUEUED)), row)
        for row in rows
        if row.expires_at < now or not lock_alive(row, now)
    ]


def claim_queued(store: Store, proposal_id: int, *, ttl: timedelta) -> bool:
    """Take a queued proposal to carry it on (False: another process took it first). Its
    host locks, taken by this process, end the queueing."""
    return _take(store, f"{_QUEUED}{proposal_id}", proposal_holder(proposal_id), proposal_id, ttl)


def unqueue(store: Store, proposal_id: int, *, claimed: bool = False) -> None:
    """The proposal waits for nothing any more (it moved on, or there is nothing to carry
    on): its queue row, whoever wrote it, goes. ``claimed``: only the claim this process
    made (``claim_queued``), unless a wait of its own gave up since (then it stays queued)."""
    query = delete(HostLockRow).where(HostLockRow.host == f"{_QUEUED}{proposal_id}")
    if claimed:
        query = query.where(
            HostLockRow.holder == proposal_holder(proposal_id), HostLockRow.expires_at > utcnow()
        )
    with store.session() as session:
        session.execute(query)


def live_proposals(store: Store) -> set[int]:
    """Proposals whose host locks a live holder has (what is being run right now)."""
    now = utcnow()
    with store.session() as session:
        rows = list(
            session.scalars(
                select(HostLockRow).where(
                    HostLockRow.proposal_id.is_not(None),
                    ~HostLockRow.host.startswith(_QUEUED, autoescape=True),
                )
            )
        )
    return {row.proposal_id for row in rows if row.proposal_id and lock_alive(row, now)}


def dead_locks(store: Store) -> list[HostLockRow]:
    """Lock rows (not queue rows) whose holder is dead."""
    now = utcnow()
    with store.session() as session:
        rows = list(
            session.scalars(
                select(HostLockRow).where(~HostLockRow.host.startswith(_QUEUED, autoescape=True))
            )
        )
    return [row for row in rows if not lock_alive(row, now)]


def hosts_free(store: Store, hosts: Iterable[str]) -> bool:
    """Whether every one of ``hosts`` could be taken now."""
    now = utcnow()
    with store.session() as session:
        rows = list(session.scalars(select(HostLockRow).where(HostLockRow.host.in_(list(hosts)))))
        return all(
            row.expires_at < now
            or (not lock_alive(row, now) and not _left_runs(session, row.holder))
            for row in rows
        )
