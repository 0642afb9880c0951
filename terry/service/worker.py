"""The remediation worker behind ``terry serve``.

The webhook only stores alerts; this worker does the slow part (diagnosis, dry run, gate,
apply) in a background thread. Its queue is the store itself: an incident with no
``diagnosed_at`` is work to do, claimed with a lease, so work survives a restart and two
servers on one database never diagnose one incident twice. The in-memory queue only makes
new work start at once instead of at the next poll.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from terry.incidents import lifecycle as incidents
from terry.pipeline import Pipeline
from terry.proposals.state import ProposalState, transition
from terry.store import Store
from terry.store.models import HostLockRow, IncidentRow, ProposalRow, utcnow

__all__ = ["Recovery", "Worker"]

log = logging.getLogger("terry.service.worker")


def _alive(holder: str) -> bool:
    """Whether a holder id (``host:pid[:...]``) names a live process on this machine.

    A holder on another machine is assumed alive; its lease expiring frees its work.
    """
    parts = holder.split(":")
    if len(parts) < 2 or parts[0] != socket.gethostname():
        return True
    try:
        os.kill(int(parts[1]), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Recovery:
    released_claims: int
    interrupted: tuple[int, ...]
    resumed: tuple[int, ...]


class Worker:
    def __init__(
        self,
        pipeline_factory: Callable[[], Pipeline],
        store: Store,
        *,
        poll_seconds: float = 1.0,
        threads: int = 2,
    ) -> None:
        self._factory = pipeline_factory
        self._store = store
        self._poll = poll_seconds
        # Incident ids to diagnose, or forge jobs: ("reconcile", proposal id) and
        # ("changed", (incident id, resolved?, what happened)).
        self._queue: queue.Queue[int | tuple[str, Any]] = queue.Queue()
        self._last_sync = 0.0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._count = max(1, threads)
        self._busy_count = 0
        self._lock = threading.Lock()
        self.last_recovery: Recovery | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Recover unfinished work, then drain the queue — all in worker threads.

        Several threads work on different incidents at once; claims keep them off the same
        incident and host locks off the same host.
        """
        for n in range(self._count):
            target = self._run if n == 0 else self._loop
            thread = threading.Thread(target=target, name=f"terry-worker-{n}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self) -> None:
        try:
            self.last_recovery = self.recover()
            log.info("recovered: %s", self.last_recovery)
        except Exception:
            log.exception("recovery failed; continuing with new work")
        self._loop()

    def stop(self, timeout: float = 600.0) -> bool:
        """Finish the item in hand, take no new one. True when the worker stopped in time."""
        self._stop.set()
        for _ in self._threads:
            self._queue.put(-1)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def submit(self, incident_ids: tuple[int, ...] | list[int]) -> None:
        for incident_id in incident_ids:
            self._queue.put(incident_id)

    def reconcile(self, proposal_id: int) -> None:
        """Read the proposal's pull request again and act on it (a forge webhook came)."""
        self._queue.put(("reconcile", proposal_id))

    def incidents_changed(self, changes: tuple[tuple[int, bool, str], ...]) -> None:
        for change in changes:
            self._queue.put(("changed", change))

    @property
    def busy(self) -> bool:
        return self._busy_count > 0

    # -- work -----------------------------------------------------------------------------
    def _loop(self) -> None:
        pipeline = self._factory()
        try:  # read main's catalogue and inventory now, not when the first alert waits
            pipeline.ctx.main.view()
        except Exception as exc:
            log.warning("could not read main ahead of the first alert: %s", exc)
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=self._poll)
            except queue.Empty:
                for pending in incidents.pending(self._store, lease=pipeline.ctx.lease):
                    self._queue.put(pending)
                self._maybe_sync(pipeline)
                continue
            if isinstance(item, tuple):
                self._forge_job(pipeline, *item)
                continue
            incident_id = item
            if incident_id < 0 or self._stop.is_set():
                continue
            with self._lock:
                self._busy_count += 1
            try:
                outcome = pipeline.remediate(incident_id)
                log.info(
                    "incident %s: proposal %s %s %s",
                    incident_id,
                    outcome.proposal_id,
                    outcome.state or "",
                    outcome.note,
                )
            except Exception:  # one bad incident must not stop the worker
                log.exception("incident %s: remediation crashed", incident_id)
            finally:
                with self._lock:
                    self._busy_count -= 1

    def _forge_job(self, pipeline: Pipeline, kind: str, arg: Any) -> None:
        if self._stop.is_set():
            return
        with self._lock:
            self._busy_count += 1
        try:
            if kind == "reconcile":
                done = pipeline.reconcile(int(arg))
                log.info("proposal %s: %s", arg, "; ".join(done.notes) or "nothing to do")
            elif kind == "changed":
                incident_id, resolved, detail = arg
                pipeline.incident_changed(incident_id, resolved=resolved, detail=detail)
        except Exception:  # one bad job must not stop the worker
            log.exception("forge job %s %s crashed", kind, arg)
        finally:
            with self._lock:
                self._busy_count -= 1

    def _maybe_sync(self, pipeline: Pipeline) -> None:
        """Poll the forge now and then, so a missed webhook or an outage loses nothing."""
        interval = pipeline.ctx.config.forge.github.sync_interval
        if not pipeline.uses_forge or time.monotonic() - self._last_sync < interval:
            return
        self._last_sync = time.monotonic()
        try:
            for done in pipeline.sync():
                if done.notes:
                    log.info("sync: proposal %s: %s", done.proposal_id, "; ".join(done.notes))
        except Exception:
            log.exception("forge sync failed; trying again later")

    def recover(self) -> Recovery:
        """After a restart: free dead claims, mark dead applies interrupted, resume the rest."""
        with self._store.session() as session:
            holders = {
                h
                for h in session.scalars(
                    select(IncidentRow.claimed_by).where(
                        IncidentRow.claimed_by.is_not(None), IncidentRow.diagnosed_at.is_(None)
                    )
                )
                if h
            }
            applying = list(
                session.scalars(
                    select(ProposalRow).where(ProposalRow.state == ProposalState.APPLYING.value)
                )
            )
            locks = {row.host: row for row in session.scalars(select(HostLockRow))}
            resumable = list(
                session.scalars(
                    select(ProposalRow.id).where(
                        ProposalRow.state.in_(
                            [
                                ProposalState.PROPOSED.value,
                                ProposalState.CHECKED.value,
                                ProposalState.APPROVED.value,
                            ]
                        ),
                        ProposalRow.commit_sha.is_not(None),
                    )
                )
            )
        released = incidents.release_claims(self._store, [h for h in holders if not _alive(h)])
        interrupted = []
        now = utcnow()
        for proposal in applying:
            held = [locks.get(h) for h in proposal.hosts]
            live = any(
                lock is not None
                and lock.proposal_id == proposal.id
                and lock.expires_at > now
                and _alive(lock.holder)
                for lock in held
            )
            if live:
                continue
            transition(
                self._store,
                proposal.id,
                ProposalState.INTERRUPTED,
                actor="terry",
                reason="the process applying it stopped mid-run; not re-applied "
                "automatically: check the host, then 'terry proposals apply' or "
                "'rollback'",
                changes={"outcome": "interrupted"},
            )
            interrupted.append(proposal.id)
        pipeline = self._factory()
        for proposal_id in resumable:
            pipeline.advance(proposal_id)
        for incident_id in incidents.pending(self._store, lease=pipeline.ctx.lease):
            self._queue.put(incident_id)
        return Recovery(released, tuple(interrupted), tuple(resumable))
