"""The remediation worker behind ``terry serve``.

The webhook only stores alerts; this worker does the slow part (diagnosis, dry run, gate,
apply) in a background thread. Its queue is the store itself: an incident with no
``diagnosed_at`` is work to do, claimed with a lease, so work survives a restart and two
servers on one database never diagnose one incident twice. The in-memory queue only makes
new work start at once instead of at the next poll.

On start (``recover``), and every ``sweep_seconds`` after (``sweep``), it releases what dead
processes left: their runs' leftover ansible on this machine is stopped and the runs are
finished as ``interrupted``, their host locks are released, and a proposal left ``applying``
becomes ``interrupted`` (never re-applied blindly). A proposal queued for busy hosts whose
waiter gave up or died is carried on once its hosts are free.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from terry.errors import NotFound
from terry.incidents import lifecycle as incidents
from terry.pipeline import Pipeline
from terry.proposals.hosts import with_queued
from terry.proposals.state import ProposalState, get
from terry.steps.rollback import interrupt_dead_applies
from terry.store import Store
from terry.store.locks import claim_queued, hosts_free, process_alive, queued, unqueue
from terry.store.models import IncidentRow, ProposalRow
from terry.store.runs import Reaped

__all__ = ["CARRY_ON", "Recovery", "Sweep", "Worker"]

log = logging.getLogger("terry.service.worker")

SWEEP_SECONDS = 15.0
BATCH = 500  # incidents diagnosed together at most (a storm's hosts fold into one proposal)
ARCHIVE_SECONDS = 60.0  # how often closed incidents' reports are committed

# States a queued proposal is carried on from (``Pipeline.advance``: dry run, gate, merge,
# apply); in any other it waits for nothing the worker can do.
CARRY_ON = frozenset(
    {
        ProposalState.PROPOSED,
        ProposalState.CHECKED,
        ProposalState.APPROVED,
        ProposalState.MERGED,
    }
)


def _alive(holder: str) -> bool:
    """Whether the process a claim's holder names may be alive: a holder on another machine
    is assumed alive (its lease expiring frees its work)."""
    return process_alive(holder) is not False


@dataclass(frozen=True)
class Sweep:
    """What one sweep found: what dead processes left (``reaped``), applies it marked
    interrupted, and queued proposals whose hosts are free now."""

    reaped: Reaped = field(default_factory=Reaped)
    interrupted: tuple[int, ...] = ()
    ready: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        reaped = self.reaped
        return bool(reaped.runs or reaped.released or self.interrupted or self.ready)


@dataclass(frozen=True)
class Recovery:
    released_claims: int
    interrupted: tuple[int, ...]
    resumed: tuple[int, ...]
    interrupted_runs: tuple[int, ...] = ()
    released_locks: tuple[str, ...] = ()
    stopped: tuple[int, ...] = ()  # processes of dead runs stopped on this machine


@dataclass(frozen=True)
class _Arrived:
    """Incidents to diagnose, opened together."""

    ids: tuple[int, ...]


class Worker:
    def __init__(
        self,
        pipeline_factory: Callable[[], Pipeline],
        store: Store,
        *,
        poll_seconds: float = 1.0,
        threads: int = 2,
        sweep_seconds: float = SWEEP_SECONDS,
        archive_seconds: float = ARCHIVE_SECONDS,
        gather: float = 0.0,
        gather_max: float = 10.0,
    ) -> None:
        self._factory = pipeline_factory
        self._store = store
        self._poll = poll_seconds
        self._sweep_every = sweep_seconds
        self._last_sweep = time.monotonic()
        self._sweeping = threading.Lock()
        self._carrying: set[int] = set()
        # Incidents to diagnose (_Arrived: those that came together stay together), -1 to
        # stop, or jobs: ("reconcile", proposal id), ("changed", (incident id, resolved?,
        # what happened)) and ("carry", queued proposal id).
        self._queue: queue.Queue[_Arrived | int | tuple[str, Any]] = queue.Queue()
        self._last_sync = 0.0
        self._archive_every = archive_seconds
        self._last_archive = time.monotonic()  # the first batch after archive_seconds
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._count = max(1, threads)
        self._busy_count = 0
        self._lock = threading.Lock()
        self.last_recovery: Recovery | None = None
        # Storm gathering (``storm.gather``): a batch waits until no new incident came for
        # ``gather`` seconds (at most ``gather_max``); what arrives meanwhile joins it.
        self._gather = gather
        self._gather_max = gather_max
        self._gathering: dict[int, None] | None = None  # the open batch (ordered, once each)
        self._gathered_at = 0.0  # when the open batch last grew

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
        """Incidents opened together (one webhook's alerts): one queue item, so one thread
        diagnoses them all and a storm among them folds into one proposal. One put per
        incident would let an idle thread take some of them, and their hosts would get a
        proposal of their own beside the storm's."""
        if not incident_ids:
            return
        with self._lock:
            if self._gathering is not None:  # a thread is gathering a batch: this joins it
                self._join_gathering(incident_ids)
                return
        self._queue.put(_Arrived(tuple(incident_ids)))

    def _join_gathering(self, incident_ids: tuple[int, ...] | list[int]) -> None:
        """Add to the batch being gathered (under ``_lock``); only new ones delay it."""
        assert self._gathering is not None
        new = [i for i in incident_ids if i not in self._gathering]
        if new:
            self._gathering.update(dict.fromkeys(new))
            self._gathered_at = time.monotonic()

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
                self.submit(incidents.pending(self._store, lease=pipeline.ctx.lease))
                self._maybe_sync(pipeline)
                self._maybe_sweep(pipeline)
                self._maybe_archive(pipeline)
                continue
            if isinstance(item, tuple):
                self._forge_job(pipeline, *item)
                continue
            if isinstance(item, int) or self._stop.is_set():
                continue  # -1: stop
            with self._lock:
                self._busy_count += 1
            try:
                batch = self._batch(list(item.ids))
                if not batch or self._stop.is_set():  # handed to the thread gathering a
                    continue  # storm; or stopping (still pending in the store: recovered)
                for outcome in pipeline.remediate_many(batch):
                    log.info(
                        "incident %s: proposal %s %s %s",
                        outcome.incident_id,
                        outcome.proposal_id,
                        outcome.state or "",
                        outcome.note,
                    )
            except Exception:  # one bad batch must not stop the worker
                log.exception("incidents %s: remediation crashed", batch)
            finally:
                with self._lock:
                    self._busy_count -= 1

    def _batch(self, batch: list[int]) -> list[int]:
        """``batch`` and the incidents queued right behind it, diagnosed together so that a
        storm (one cause on many hosts) folds into one proposal (terry.proposals.storm).
        Anything else met in the queue is put back. With ``gather`` set, the batch then
        waits for the rest of a storm whose alerts come as separate webhooks."""
        while len(batch) < BATCH:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Arrived):
                batch.extend(item.ids)
            else:
                self._queue.put(item)
                break
        return self._gather_rest(batch) if self._gather > 0 else batch

    def _gather_rest(self, batch: list[int]) -> list[int]:
        """``batch`` and every incident submitted until none came for ``gather`` seconds
        (at most ``gather_max`` in all), as Alertmanager's group_wait does within a group.
        One thread gathers at a time; ``submit`` hands it what arrives meanwhile."""
        started = time.monotonic()
        with self._lock:
            if self._gathering is not None:  # another thread gathers: it takes these too
                self._join_gathering(batch)
                return []
            self._gathering = dict.fromkeys(batch)
            self._gathered_at = started
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                with self._lock:
                    quiet_until = self._gathered_at + self._gather
                until = min(quiet_until, started + self._gather_max)
                if now >= until or len(self._gathering) >= BATCH:
                    break
                self._stop.wait(min(0.1, until - now))
        finally:
            with self._lock:
                gathered, self._gathering = list(self._gathering or ()), None
        if len(gathered) > len(batch):
            log.info(
                "gathered %d incident(s) in %.1fs (storm.gather %gs)",
                len(gathered),
                time.monotonic() - started,
                self._gather,
            )
        return gathered

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
            elif kind == "carry" and self._carry(pipeline, int(arg)):
                log.info("proposal %s: carried on after waiting for its hosts", arg)
            elif kind == "follow" and (wave := pipeline.follow_up(int(arg))) is not None:
                log.info("proposal %s: its next wave is proposal %s", arg, wave)
        except Exception:  # one bad job must not stop the worker
            log.exception("job %s %s crashed", kind, arg)
        finally:
            if kind == "carry":
                with self._lock:
                    self._carrying.discard(int(arg))
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

    def _maybe_archive(self, pipeline: Pipeline) -> None:
        """Now and then: commit the reports of closed incidents to the repository (not on
        the webhook's path, which must stay fast; ``terry.reports.incident_archive``)."""
        if time.monotonic() - self._last_archive < self._archive_every:
            return
        self._last_archive = time.monotonic()
        from terry.reports.incident_archive import archive_closed

        try:
            refs = archive_closed(pipeline.ctx, pipeline.review)
            if refs:
                log.info("committed the reports of %s", ", ".join(refs))
        except Exception:
            log.exception("committing incident reports failed; trying again later")

    def _maybe_sweep(self, pipeline: Pipeline) -> None:
        """Now and then: release what dead processes left, queue what waited for hosts."""
        if time.monotonic() - self._last_sweep < self._sweep_every:
            return
        if not self._sweeping.acquire(blocking=False):
            return
        try:
            self._last_sweep = time.monotonic()
            found = self.sweep(pipeline)
            if found:
                log.info("sweep: %s", found)
            for proposal_id in with_queued(pipeline.ctx.store):  # a storm's next waves
                self._queue.put(("follow", proposal_id))
            for proposal_id in found.ready:
                with self._lock:
                    if proposal_id in self._carrying:
                        continue
                    self._carrying.add(proposal_id)
                self._queue.put(("carry", proposal_id))
        except Exception:
            log.exception("sweep failed; trying again later")
        finally:
            self._sweeping.release()

    def sweep(self, pipeline: Pipeline) -> Sweep:
        """Release what dead processes left (``terry.store.runs.reap``), mark their applies
        interrupted, and find queued proposals nobody waits for whose hosts are free."""
        ctx = pipeline.ctx
        store = ctx.store
        reaped = pipeline.reap()
        interrupted = interrupt_dead_applies(store)
        ready = []
        for item in queued(store):
            try:
                with store.session() as session:
                    row = get(session, item.proposal_id)
                    state, hosts = ProposalState(row.state), tuple(row.hosts)
                    commit = row.commit_sha
            except NotFound:
                unqueue(store, item.proposal_id)
                continue
            if state not in CARRY_ON or commit is None:
                unqueue(store, item.proposal_id)  # it moved on, or waits for a person
                continue
            if hosts_free(store, hosts):
                ready.append(item.proposal_id)
        return Sweep(reaped, interrupted, tuple(ready))

    def _carry(self, pipeline: Pipeline, proposal_id: int) -> bool:
        """Carry a queued proposal on from where it stopped, if this process wins it."""
        config = pipeline.ctx.config
        ttl = timedelta(seconds=config.runner.lock_wait + 60)  # until its steps take its hosts
        if not claim_queued(self._store, proposal_id, ttl=ttl):
            return False
        try:
            pipeline.advance(proposal_id)
        finally:
            unqueue(self._store, proposal_id, claimed=True)
        return True

    def recover(self) -> Recovery:
        """After a restart: free dead claims, release what dead processes left (runs, locks,
        applies: interrupted), resume proposals stopped before the gate or after an approval,
        and carry on those queued for their hosts."""
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
        pipeline = self._factory()
        found = self.sweep(pipeline)
        self._last_sweep = time.monotonic()
        for proposal_id in resumable:
            pipeline.advance(proposal_id)
        carried = [
            proposal_id
            for proposal_id in found.ready
            if proposal_id not in resumable and self._carry(pipeline, proposal_id)
        ]
        for incident_id in incidents.pending(self._store, lease=pipeline.ctx.lease):
            self._queue.put(incident_id)
        return Recovery(
            released,
            found.interrupted,
            (*resumable, *carried),
            found.reaped.runs,
            found.reaped.released,
            found.reaped.stopped,
        )
