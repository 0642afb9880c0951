"""The webhook's inbox: accept fast, lose nothing.

``Inbox`` commits each accepted body before its request is answered, in groups: requests
that arrive together share one transaction (one fsync), so a burst costs a few commits,
not one per alert. ``Folder`` then folds inbox rows into alerts and incidents
(``terry.incidents``) and hands new incidents to the worker. A row is folded at most once,
across processes: folding claims it with ``UPDATE ... WHERE folded_at IS NULL`` in the same
transaction that stores its alerts, and a crash before that commit leaves it to fold again.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import insert, select, update

from terry import incidents
from terry.errors import InputError, StoreError
from terry.sources.alertmanager import parse_payload
from terry.store import Store
from terry.store.models import InboxRow, utcnow

__all__ = ["Folder", "Inbox", "fold_pending"]

log = logging.getLogger("terry.inbox")

_Waiter = tuple[str, asyncio.AbstractEventLoop, "asyncio.Future[None]"]


class Inbox:
    """Group commit of webhook bodies; ``await put(body)`` returns once it is durable."""

    def __init__(
        self, store: Store, *, max_batch: int = 512, on_commit: Callable[[], None] | None = None
    ) -> None:
        self._store = store
        self._max = max_batch
        self._on_commit = on_commit
        self._queue: queue.Queue[_Waiter | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="terry-inbox", daemon=True)
        self._thread.start()

    async def put(self, body: str) -> None:
        """Store ``body``; raises StoreError when the store refused it (answer 503)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.put((body, loop, done))
        await done

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
                with self._store.session() as session:
                    session.execute(
                        insert(InboxRow),
                        [{"received_at": now, "body": body} for body, _l, _f in batch],
                    )
            except Exception as exc:  # any failure: every request of the batch gets a 503
                log.error("inbox commit failed for %d bodies: %s", len(batch), exc)
                error = exc if isinstance(exc, StoreError) else StoreError(str(exc))
            for _body, loop, done in batch:
                loop.call_soon_threadsafe(_settle, done, error)
            if error is None and self._on_commit is not None:
                self._on_commit()


def _settle(done: asyncio.Future[None], error: Exception | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


@dataclass(frozen=True)
class Folded:
    rows: int
    opened: tuple[int, ...]


def fold_pending(store: Store, *, limit: int = 500) -> Folded:
    """Fold up to ``limit`` inbox rows into alerts and incidents, oldest first."""
    with store.session() as session:
        ids = list(
            session.scalars(
                select(InboxRow.id)
                .where(InboxRow.folded_at.is_(None))
                .order_by(InboxRow.id)
                .limit(limit)
            )
        )
    opened: list[int] = []
    folded = 0
    for row_id in ids:
        with store.session() as session:
            claimed = session.execute(
                update(InboxRow)
                .where(InboxRow.id == row_id, InboxRow.folded_at.is_(None))
                .values(folded_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another server folded it
            row = session.get(InboxRow, row_id)
            assert row is not None
            try:
                payload = parse_payload(row.body)
            except InputError as exc:
                row.error = str(exc)
                continue
            result = incidents.ingest_in(session, payload, now=row.received_at)
        folded += 1
        opened.extend(result.opened)
    return Folded(folded, tuple(opened))


class Folder:
    """A thread folding the inbox: woken by each commit, and every ``poll`` seconds."""

    def __init__(
        self, store: Store, *, on_opened: Callable[[tuple[int, ...]], None], poll: float = 2.0
    ) -> None:
        self._store = store
        self._on_opened = on_opened
        self._poll = poll
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

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._poll)
            self._wake.clear()
            try:
                while not self._stop.is_set():
                    folded = fold_pending(self._store)
                    if folded.opened:
                        self._on_opened(folded.opened)
                    if folded.rows == 0:
                        break
            except StoreError as exc:
                log.error("folding the inbox failed, retrying: %s", exc)
            except Exception:
                log.exception("folding the inbox crashed, retrying")
