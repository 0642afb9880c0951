"""Record: runs and their runner events, kept in the store next to the proposal; and the
runs a dead process left ``running``, finished as ``interrupted`` by recovery (``reap``)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import null, select, update
from sqlalchemy.orm import Session

from terry.appliers.base import RunnerEvent, RunResult
from terry.store import Store
from terry.store.locks import (
    STALE,
    dead_locks,
    holder_id,
    lock_alive,
    proc_fields,
    process_alive,
    process_of,
    proposal_holder,
    release,
)
from terry.store.models import HostLockRow, ProposalRow, RunEventRow, RunRow, utcnow

__all__ = [
    "INTERRUPTED",
    "History",
    "Reaped",
    "RemedyRecord",
    "detach",
    "fail_run",
    "finish_run",
    "reap",
    "remedy_record",
    "remedy_records",
    "set_remote",
    "start_run",
]

log = logging.getLogger("terry.store.runs")

# The status of a run whose process died before it ended.
INTERRUPTED = "interrupted"
# Stops a run that goes on elsewhere (``runs.remote``, ``awx:<job id>``): whether it has
# ended there (stopped now, or finished before); False while it may still change hosts.
StopRemote = Callable[[str], bool]


def start_run(store: Store, *, proposal_id: int, kind: str, commit: str | None) -> int:
    with store.session() as session:
        row = RunRow(
            proposal_id=proposal_id,
            kind=kind,
            commit_sha=commit,
            status="running",
            rc=None,
            started_at=utcnow(),
            finished_at=None,
            stats={},
            artifact_dir=None,
            ansible_seconds=None,
            holder=holder_id(),
        )
        session.add(row)
        session.flush()
        return row.id


def finish_run(store: Store, run_id: int, result: RunResult) -> None:
    """The run's outcome and every event it produced, in one transaction."""
    with store.session() as session:
        row = session.get(RunRow, run_id)
        assert row is not None
        row.status = result.status.value
        row.rc = result.rc
        row.finished_at = utcnow()
        row.stats = {h: vars(s) for h, s in result.stats.items()}
        row.artifact_dir = str(result.artifact_dir) if result.artifact_dir else None
        row.ansible_seconds = result.ansible_seconds
        if result.revision is not None:  # it acted on another commit (a revert it made)
            row.commit_sha = result.revision
        _add_events(session, run_id, result.events)


def _add_events(session: Session, run_id: int, events: Iterable[RunnerEvent]) -> None:
    now = utcnow()
    session.add_all(
        RunEventRow(
            run_id=run_id,
            seq=e.seq,
            event=e.event,
            host=e.host,
            task=e.task,
            action=e.action,
            status=e.status.value if e.status else None,
            data=e.raw,
            created_at=now,
        )
        for e in events
    )


def set_remote(store: Store, run_id: int, remote: str) -> None:
    """Where the run goes on outside this process, said by its applier as it starts."""
    with store.session() as session:
        row = session.get(RunRow, run_id)
        if row is not None:
            row.remote = remote[:200]


def detach(
    store: Store,
    run_id: int,
    proposal_id: int,
    hosts: Iterable[str],
    events: Iterable[RunnerEvent] = (),
) -> str:
    """Hand a run this process stopped watching before it ended (``RunGoesOn``), and the
    locks it holds on the run's hosts, to recovery. Both get a holder that is no process,
    ``<machine>:detached-<run id>``, with a heartbeat already stale: ``reap`` judges the run
    as one whose process died, asks ``stop_remote`` where it goes on, and frees the hosts
    only once it has ended there. Until then no other run takes them (a dead holder's lock
    with a run left ``running`` is not free); the locks keep their expiry, the last bound
    for every holder. ``events``: what the run said so far, kept with it. Returns the new
    holder."""
    detached = f"{socket.gethostname()}:detached-{run_id}"
    stale = utcnow() - STALE - timedelta(seconds=1)
    with store.session() as session:
        session.execute(
            update(RunRow)
            .where(RunRow.id == run_id, RunRow.status == "running")
            .values(holder=detached)
        )
        session.execute(
            update(HostLockRow)
            .where(
                HostLockRow.host.in_(sorted(set(hosts))),
                HostLockRow.holder == proposal_holder(proposal_id),
            )
            .values(holder=proposal_holder(proposal_id, detached), heartbeat_at=stale)
            .execution_options(synchronize_session=False)
        )
        _add_events(session, run_id, events)
    return detached


def fail_run(store: Store, run_id: int, status: str) -> None:
    with store.session() as session:
        row = session.get(RunRow, run_id)
        if row is not None:
            row.status = status
            row.finished_at = utcnow()


# -- what a dead process left ------------------------------------------------------------------
@dataclass(frozen=True)
class Reaped:
    """What ``reap`` found a dead process had left: runs finished as interrupted, processes
    of those runs stopped on this machine, locks released."""

    runs: tuple[int, ...] = ()
    stopped: tuple[int, ...] = ()
    released: tuple[str, ...] = ()


def reap(store: Store, runs_dir: Path | None, stop_remote: StopRemote | None = None) -> Reaped:
    """Release what dead processes left: each run they left ``running`` is stopped (what is
    left of its ansible-playbook on this machine, found in ``runs_dir``, the runs' private
    directories; a run that goes on elsewhere, ``runs.remote``, by ``stop_remote``) and
    finished as ``interrupted``; then their locks are released. A run that would not stop
    (or that nothing here can stop) keeps its locks and stays ``running``: the next look
    tries again, and no other fix is let onto hosts it may still be changing.

    A run's process is dead when its holder is (``terry.store.locks.process_alive``); seen
    from another machine, when that process holds no lock with a live heartbeat (a run is
    made under its proposal's host locks). Runs recorded before holders were (0012) are
    judged by their proposal's locks. Runs are read before locks, so a run that started
    after the read is never judged by locks read before it began."""
    with store.session() as session:
        running = session.execute(
            select(RunRow.id, RunRow.proposal_id, RunRow.holder, RunRow.remote).where(
                RunRow.status == "running"
            )
        ).all()
    now = utcnow()
    with store.session() as session:
        locks = list(session.scalars(select(HostLockRow)))
    live = [row for row in locks if lock_alive(row, now)]
    dead: dict[int, tuple[int, str | None]] = {}  # run id -> (proposal id, holder)
    remote: dict[int, str] = {}  # dead runs that go on elsewhere -> where
    for run_id, proposal_id, holder, elsewhere in running:
        if holder:
            alive = process_alive(holder)
            if alive is None:  # another machine: alive while it holds a live lock
                alive = any(process_of(row.holder) == holder for row in live)
        else:
            alive = any(row.proposal_id == proposal_id for row in live)
        if not alive:
            dead[run_id] = (proposal_id, holder)
            if elsewhere:
                remote[run_id] = elsewhere
    left = _leftovers([runs_dir / str(run_id) for run_id in dead]) if runs_dir and dead else {}
    stopped = _stop(left)
    # a run something of which would not stop keeps its locks: never free a host that
    # something may still be changing
    still = {left[pid] for pid in left if pid not in stopped}
    still |= {run_id for run_id, where in remote.items() if not _ended(where, stop_remote)}
    finished = _interrupt(store, [run_id for run_id in dead if run_id not in still])
    kept = {dead[run_id][0] for run_id in still}
    releasable = [row for row in dead_locks(store) if row.proposal_id not in kept]
    return Reaped(finished, tuple(sorted(stopped)), release(store, releasable))


def _ended(remote: str, stop_remote: StopRemote | None) -> bool:
    """Whether a dead process's run that goes on at ``remote`` has ended there (stopped now
    by ``stop_remote``); never when nothing here can stop it, or stopping it failed."""
    if stop_remote is None:
        log.warning("run at %s: its process died and nothing here can stop it", remote)
        return False
    try:
        return stop_remote(remote)
    except Exception as exc:  # whatever it was, the hosts stay held
        log.warning("run at %s: its process died and stopping it failed: %s", remote, exc)
        return False


def _interrupt(store: Store, run_ids: list[int]) -> tuple[int, ...]:
    """Finish these runs as interrupted, unless they ended meanwhile."""
    done = []
    with store.session() as session:
        for run_id in run_ids:
            changed = session.execute(
                update(RunRow)
                .where(RunRow.id == run_id, RunRow.status == "running")
                .values(status=INTERRUPTED, finished_at=utcnow())
            )
            if changed.rowcount:  # type: ignore[attr-defined]
                done.append(run_id)
    return tuple(done)


def _argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _run_dir_of(pid: int) -> Path | None:
    """The private directory of the ansible-runner run a process belongs to (ansible-runner
    puts its artifacts directory in the environment of the ansible it starts)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in environ:
        if item.startswith(b"AWX_ISOLATED_DATA_DIR="):
            artifacts = Path(item.partition(b"=")[2].decode(errors="replace"))
            return artifacts.parent.parent  # <run dir>/artifacts/<ident>
    return None


def _leftovers(run_dirs: Iterable[Path]) -> dict[int, int]:
    """Processes on this machine still working for these runs: each ansible-playbook whose
    run directory is one of ``run_dirs``, with every process below it (the task it is in);
    not what its tasks started and left detached (a service it started). pid -> run id."""
    wanted = {os.path.realpath(d): int(d.name) for d in run_dirs}
    parents: dict[int, int] = {}
    roots: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        fields = proc_fields(pid)
        if fields is None:
            continue
        parents[pid] = int(fields[1])
        if any(Path(arg).name == "ansible-playbook" for arg in _argv(pid)[:2]):
            run_dir = _run_dir_of(pid)
            if run_dir is not None and os.path.realpath(run_dir) in wanted:
                roots[pid] = wanted[os.path.realpath(run_dir)]
    found = dict(roots)
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if pid not in found and parent in found:
                found[pid] = found[parent]
                grew = True
    return found


def _gone(pid: int) -> bool:
    fields = proc_fields(pid)
    return fields is None or fields[0] in ("Z", "X")


def _stop(processes: dict[int, int], *, grace: float = 10.0) -> set[int]:
    """Stop these processes (TERM, then KILL after ``grace`` seconds); returns those gone."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in processes:
            if not _gone(pid):
                with suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and not all(_gone(pid) for pid in processes):
            time.sleep(0.1)
        if all(_gone(pid) for pid in processes):
            break
    return {pid for pid in processes if _gone(pid)}


FINISHED = ("verified", "failed", "rolled_back", "escalated")


@dataclass(frozen=True)
class History:
    """How a remedy fared before: proposals that reached an end after apply (verified,
    failed, rolled back, escalated), how many were verified, the last one's end, and the mean
    time from proposal to verified."""

    runs: int
    verified: int
    rolled_back: int
    last_outcome: str | None = None
    mean_seconds_to_fix: float | None = None

    @property
    def success_rate(self) -> float | None:
        return round(self.verified / self.runs, 4) if self.runs else None

    def as_input(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "verified": self.verified,
            "rolled_back": self.rolled_back,
            "success_rate": self.success_rate,
            "last_outcome": self.last_outcome,
            "mean_seconds_to_fix": self.mean_seconds_to_fix,
        }

    def describe(self) -> str:
        if not self.runs:
            return "no runs yet"
        text = f"{self.verified} of {self.runs} verified"
        if self.rolled_back:
            text += f", {self.rolled_back} rolled back"
        return text + f", last {self.last_outcome}"


def _history(rows: list[tuple[str, datetime, datetime]]) -> History:
    """``rows``: (state, created_at, updated_at) of finished proposals. The last outcome is
    the one that ended last (``updated_at``), not the newest proposal's: an old proposal a
    person approved late and that failed is the latest news."""
    rows = sorted(rows, key=lambda r: r[2])
    fixes = [(u - c).total_seconds() for state, c, u in rows if state == "verified"]
    return History(
        runs=len(rows),
        verified=sum(1 for state, _c, _u in rows if state == "verified"),
        rolled_back=sum(1 for state, _c, _u in rows if state == "rolled_back"),
        last_outcome=rows[-1][0] if rows else None,
        mean_seconds_to_fix=round(sum(fixes) / len(fixes), 1) if fixes else None,
    )


@dataclass(frozen=True)
class RemedyRecord:
    """A remedy's history over every environment and in each one (by the environment the
    gate judged each proposal in; proposals from before Terry kept it count only in the
    whole)."""

    remedy: str
    overall: History
    by_environment: dict[str, History]

    def environment(self, name: str) -> History:
        return self.by_environment.get(name, History(runs=0, verified=0, rolled_back=0))


def remedy_records(
    store: Store,
    remedies: tuple[str, ...] | None = None,
    *,
    exclude: int | None = None,
    runs: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, RemedyRecord]:
    """Every remedy's record (or only ``remedies``), read in one query; ``runs``: only the
    proposals whose parameters it accepts (one variant's, ``terry.remedies.variants``)."""
    params = ProposalRow.params if runs is not None else null()  # read only when asked
    query = (
        select(ProposalRow.remedy, ProposalRow.environment, ProposalRow.state)
        .add_columns(ProposalRow.created_at, ProposalRow.updated_at, params)
        .where(ProposalRow.state.in_(FINISHED), ProposalRow.id != (exclude or -1))
        .order_by(ProposalRow.id)
    )
    if remedies is not None:
        query = query.where(ProposalRow.remedy.in_(remedies))
    overall: dict[str, list[tuple[str, datetime, datetime]]] = {}
    per_env: dict[str, dict[str, list[tuple[str, datetime, datetime]]]] = {}
    with store.session() as session:
        for remedy, environment, state, created, updated, given in session.execute(query):
            if runs is not None and not runs(dict(given or {})):
                continue
            overall.setdefault(remedy, []).append((state, created, updated))
            if environment:
                per_env.setdefault(remedy, {}).setdefault(environment, []).append(
                    (state, created, updated)
                )
    return {
        remedy: RemedyRecord(
            remedy,
            _history(rows),
            {env: _history(r) for env, r in sorted(per_env.get(remedy, {}).items())},
        )
        for remedy, rows in sorted(overall.items())
    }


def remedy_record(
    store: Store,
    remedy: str,
    *,
    exclude: int | None = None,
    runs: Callable[[dict[str, Any]], bool] | None = None,
) -> RemedyRecord:
    """One remedy's record (empty when it never reached an end); ``runs`` as for
    ``remedy_records``."""
    found = remedy_records(store, (remedy,), exclude=exclude, runs=runs).get(remedy)
    return found or RemedyRecord(remedy, History(runs=0, verified=0, rolled_back=0), {})
