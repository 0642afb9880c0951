"""The webhook's inbox: accept fast, lose nothing.

``Inbox`` commits each accepted body before its request is answered, in groups: requests
that arrive together share one transaction (one fsync), so a burst costs a few commits,
not one per alert. ``Folder`` then folds inbox rows into alerts and incidents
(``terry.incidents.lifecycle``) and hands new incidents to the worker. A row is folded at most once,
across processes: folding claims it with ``UPDATE ... WHERE folded_at IS NULL`` in the same
transaction that stores its alerts, and a crash before that commit leaves it to fold again.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from terry.errors import InputError, StoreError
from terry.incidents import lifecycle as incidents
from terry.sources.alertmanager import Payload, parse_payload
from terry.store import Store
from terry.store.models import InboxRow, IncidentRow, utcnow

__all__ = ["Folder", "Inbox", "fold_pending"]

log = logging.getLogger("terry.sources.inbox")

# (body, its request's W3C traceparent or None, the loop and future its request waits on)
_Waiter = tuple[str, str | None, asyncio.AbstractEventLoop, "asyncio.Future[None]"]


class Inbox:
    """Group commit of webhook bodies; ``await put(body)`` returns once it is durable."""

    def __init__(
        self, store: Store, *, max_batch: int = 512, on_commit: Callable[[], None] | None = None
    ) -> None:
        self._store = store
        self._max = max_batch
        self._on_commit = on_commit
        self._queue: queue.Queue[_Waiter | None] = queue.Queue()
        self._last_commit = 0.0  # time.monotonic() of the newest commit
        self._thread = threading.Thread(target=self._run, name="terry-inbox", daemon=True)
        self._thread.start()

    async def put(self, body: str, traceparent: str | None = None) -> None:
        """Store ``body`` (with the W3C ``traceparent`` its request came with, a valid one:
        ``terry.traces.spans.parse_traceparent``); raises StoreError when the store refused
        it (answer 503)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.put((body, traceparent, loop, done))
        await done

    def quiet_for(self) -> float:
        """Seconds since the inbox last committed (how long the webhook has been quiet)."""
        return time.monotonic() - self._last_commit

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            error: Exception | None = None
            try:
                now = utcnow()
                with self._store.write_turn(urgent=True), self._store.session() as session:
                    session.execute(
                        insert(InboxRow.__table__),
                        [
                            {"received_at": now, "body": body, "traceparent": parent}
                            for body, parent, _l, _f in batch
                        ],
                    )
            except Exception as exc:  # any failure: every request of the batch gets a 503
                log.error("inbox commit failed for %d bodies: %s", len(batch), exc)
                error = exc if isinstance(exc, StoreError) else StoreError(str(exc))
            by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
            for _body, _parent, loop, done in batch:
                by_loop.setdefault(loop, []).append(done)
            for loop, futures in by_loop.items():  # one wake-up per loop, not one per request
                loop.call_soon_threadsafe(_settle, futures, error)
            self._last_commit = time.monotonic()
            if error is None and self._on_commit is not None:
                self._on_commit()


def _settle(futures: list[asyncio.Future[None]], error: Exception | None) -> None:
    for done in futures:
        if done.done():
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)


@dataclass(frozen=True)
class Folded:
    rows: int  # rows taken from the inbox, refused ones included
    opened: tuple[int, ...]
    refused: int = 0  # rows kept with an error instead of folded
    # Open incidents that fired again or resolved: (incident, resolved?, what happened).
    changed: tuple[tuple[int, bool, str], ...] = ()


def fold_pending(store: Store, *, limit: int = 200) -> Folded:
    """Fold up to ``limit`` inbox rows into alerts and incidents, oldest first.

    The rows are claimed and folded in one transaction (one commit for the batch). When the
    batch fails (a concurrent server stored the same alert, a row the store refuses), it is
    rolled back and folded again row by row, so one bad row cannot hold up the others.
    """
    try:
        return _fold_batch(store, limit)
    except StoreError:
        raise
    except Exception as exc:  # fold the same rows one transaction each
        log.warning("folding %d inbox rows at once failed, folding one by one: %s", limit, exc)
    opened: list[int] = []
    changed: list[tuple[int, bool, str]] = []
    folded = refused = 0
    for _ in range(limit):
        try:
            batch = _fold_batch(store, 1)
        except StoreError:
            raise
        except Exception as exc:
            _refuse_oldest(store, f"folding failed: {exc}")
            folded += 1
            refused += 1
            continue
        if batch.rows == 0:
            break
        folded += batch.rows
        refused += batch.refused
        opened.extend(batch.opened)
        changed.extend(batch.changed)
    return Folded(folded, tuple(opened), refused, tuple(changed))


def _claim(session: Session, limit: int) -> list[tuple[int, str, datetime, str | None]]:
    """Take the oldest unfolded rows: one UPDATE, so two servers never take the same row."""
    oldest = (
        select(InboxRow.id)
        .where(InboxRow.folded_at.is_(None))
        .order_by(InboxRow.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer anyway
    )
    claimed = session.execute(
        update(InboxRow)
        .where(InboxRow.id.in_(oldest.scalar_subquery()), InboxRow.folded_at.is_(None))
        .values(folded_at=utcnow())
        .returning(InboxRow.id, InboxRow.body, InboxRow.received_at, InboxRow.traceparent)
        .execution_options(synchronize_session=False)
    )
    return sorted(
        ((row.id, row.body, row.received_at, row.traceparent) for row in claimed),
        key=lambda row: row[0],
    )


def _fold_batch(store: Store, limit: int) -> Folded:
    with store.write_turn(urgent=False), store.session() as session:
        rows = _claim(session, limit)
        good: list[tuple[Payload, datetime]] = []
        parents: list[str | None] = []  # each good body's request's traceparent
        refused = 0
        for row_id, body, received_at, parent in rows:
            try:
                good.append((parse_payload(body), received_at))
                parents.append(parent)
            except InputError as exc:
                session.execute(
                    update(InboxRow)
                    .where(InboxRow.id == row_id)
                    .values(error=_storable(str(exc)))
                    .execution_options(synchronize_session=False)
                )
                refused += 1
        results = incidents.ingest_many(session, good)
        _keep_traceparents(session, results, parents)
    opened = tuple(i for result in results for i in result.opened)
    changed = tuple(
        (e.incident_id, e.effect is incidents.Effect.RESOLVED, f"{e.alertname} {e.status.value}")
        for result in results
        for e in result.effects
        if e.incident_id and e.effect in (incidents.Effect.RESOLVED, incidents.Effect.JOINED)
    )
    return Folded(len(rows), opened, refused, changed)


def _keep_traceparents(
    session: Session, results: list[incidents.IngestResult], parents: list[str | None]
) -> None:
    """Each incident a notification opened keeps that notification's traceparent (its
    trace links to Alertmanager's span); the first one, when several opened it at once.
    One statement per traceparent, not per incident: a storm's body opens hundreds."""
    opened: dict[str, list[int]] = {}
    for result, parent in zip(results, parents, strict=True):
        if parent is not None:
            opened.setdefault(parent, []).extend(
                e.incident_id
                for e in result.effects
                if e.effect is incidents.Effect.OPENED and e.incident_id
            )
    for parent, ids in opened.items():
        if not ids:
            continue
        session.execute(
            update(IncidentRow)
            .where(IncidentRow.id.in_(ids), IncidentRow.alert_traceparent.is_(None))
            .values(alert_traceparent=parent)
            .execution_options(synchronize_session=False)
        )


def _storable(reason: str, limit: int = 2000) -> str:
    """A reason the store can always keep: an error's text may quote what the store refused
    (a NUL, a lone surrogate), and keeping the row must not fail for the same cause."""
    text = reason[:limit].encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\x00", "\\x00")


def _refuse_oldest(store: Store, reason: str) -> None:
    """Mark the oldest unfolded row folded with ``reason`` as its error (kept, not lost)."""
    reason = _storable(reason)
    with store.session() as session:
        oldest = session.scalar(
            select(InboxRow.id).where(InboxRow.folded_at.is_(None)).order_by(InboxRow.id).limit(1)
        )
        if oldest is not None:
            session.execute(
                update(InboxRow)
                .where(InboxRow.id == oldest, InboxRow.folded_at.is_(None))
                .values(folded_at=utcnow(), error=reason)
                .execution_options(synchronize_session=False)
            )
            log.error("inbox row %d refused: %s", oldest, reason)


class Folder:
    """A thread folding the inbox: woken by each commit, and every ``poll`` seconds.

    Folding yields to the webhook: while bodies keep arriving (the inbox committed within
    ``quiet`` seconds) it folds one batch every ``max_delay`` seconds at most, and catches up
    at full speed once the burst is over. Acknowledgements stay fast during an alert storm;
    diagnosis starts a little later.
    """

    def __init__(
        self,
        store: Store,
        *,
        on_opened: Callable[[tuple[int, ...]], None],
        on_changed: Callable[[tuple[tuple[int, bool, str], ...]], None] | None = None,
        poll: float = 2.0,
        quiet_for: Callable[[], float] | None = None,
        quiet: float = 0.05,
        max_delay: float = 1.0,
    ) -> None:
        self._store = store
        self._on_opened = on_opened
        self._on_changed = on_changed
        self._poll = poll
        self._quiet_for = quiet_for
        self._quiet = quiet
        self._max_delay = max_delay
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="terry-folder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(60)

    def _yield_to_webhook(self) -> None:
        if self._quiet_for is None:
            return
        deadline = time.monotonic() + self._max_delay
        while (
            not self._stop.is_set()
            and self._quiet_for() < self._quiet
            and time.monotonic() < deadline
        ):
            self._stop.wait(self._quiet)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._poll)
            self._wake.clear()
            try:
                while not self._stop.is_set():
                    self._yield_to_webhook()
                    folded = fold_pending(self._store)
                    self._store.checkpoint()
                    if folded.opened:
                        self._on_opened(folded.opened)
                    if folded.changed and self._on_changed is not None:
                        self._on_changed(folded.changed)
                    if folded.rows == 0:
                        break
            except StoreError as exc:
                log.error("folding the inbox failed, retrying: %s", exc)
            except Exception:
                log.exception("folding the inbox crashed, retrying")
