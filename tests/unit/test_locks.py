"""Host locks through the database: one run per host at a time, across processes."""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from terry.errors import StateError
from terry.store import Store
from terry.store.locks import (
    STALE,
    HostBusy,
    claim_queued,
    holder_id,
    host_locks,
    proc_fields,
    process_alive,
    process_of,
    proposal_holder,
    queued,
)
from terry.store.models import HostLockRow, IncidentRow, ProposalRow, RunRow, utcnow
from terry.store.runs import reap

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


# -- dead holders (issue 13, item 6) -----------------------------------------------------------
def _here(pid: int, start: int, what: str) -> str:
    """A holder id on this machine, for process ``pid`` started at ``start``."""
    if "@" not in holder_id():
        pytest.skip("no /proc: holders carry no process identity here")
    boot = holder_id().split("@")[1].split(".")[0]
    return f"{socket.gethostname()}:{pid}@{boot}.{start}:{what}"


def _reused_pid(what: str) -> str:
    """A holder whose pid the kernel has given to another process since (this one: the
    same pid, another start time)."""
    fields = proc_fields(os.getpid())
    assert fields is not None
    return _here(os.getpid(), int(fields[19]) + 1, what)


def _gone_pid(what: str) -> str:
    """A holder whose process is gone (a pid above the kernel's maximum never runs)."""
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    return _here(pid_max + 1, 1, what)


def _held_by(
    store: Store, host: str, holder: str, *, proposal_id: int | None = 9, **times: object
) -> None:
    now = utcnow()
    values = {"acquired_at": now, "expires_at": now + timedelta(hours=1), "heartbeat_at": now}
    values.update(times)
    with store.session() as session:
        session.add(HostLockRow(host=host, holder=holder, proposal_id=proposal_id, **values))


def _holder(store: Store, host: str) -> tuple[str, int | None] | None:
    with store.session() as session:
        row = session.get(HostLockRow, host)
        return (row.holder, row.proposal_id) if row else None


def _proposal(store: Store, *, state: str = "applying") -> int:
    now = utcnow()
    with store.session() as session:
        incident = IncidentRow(
            fingerprint="f", source="alert", title="SlowThing", state="open", opened_at=now
        )
        session.add(incident)
        session.flush()
        proposal = ProposalRow(
            incident_id=incident.id,
            remedy="slow-fix",
            role="slow_fix",
            hosts=["web-01"],
            params={},
            risk="low",
            state=state,
            created_at=now,
            updated_at=now,
        )
        session.add(proposal)
        session.flush()
        return proposal.id


def _run(store: Store, proposal_id: int, holder: str | None) -> int:
    with store.session() as session:
        run = RunRow(
            proposal_id=proposal_id,
            kind="apply",
            commit_sha=None,
            status="running",
            started_at=utcnow(),
            holder=holder,
        )
        session.add(run)
        session.flush()
        return run.id


def _run_status(store: Store, run_id: int) -> tuple[str, bool]:
    with store.session() as session:
        run = session.get(RunRow, run_id)
        assert run is not None
        return run.status, run.finished_at is not None


@pytest.mark.parametrize("dead", [_reused_pid, _gone_pid], ids=["pid-reused", "pid-gone"])
def test_a_lock_of_a_dead_process_on_this_machine_is_taken_at_once(store: Store, dead) -> None:
    _held_by(store, "web-01", dead("9"))  # an hour before it would expire
    with host_locks(store, ("web-01",), proposal_id=2, ttl=TTL):
        assert _holder(store, "web-01") == (proposal_holder(2), 2)
    assert _holder(store, "web-01") is None


def test_a_live_holder_keeps_its_host_and_a_zombie_does_not_count_as_one(store: Store) -> None:
    _held_by(store, "web-01", f"{holder_id()}:9")  # this very process: alive
    with (
        pytest.raises(HostBusy, match="host web-01 is busy: proposal 9"),
        host_locks(store, ("web-01",), proposal_id=2, ttl=TTL),
    ):
        pass
    assert process_alive(holder_id()) is True
    assert process_alive(_reused_pid("x")) is False
    assert process_alive(_gone_pid("x")) is False


def test_a_holder_elsewhere_is_dead_once_its_heartbeat_stops(store: Store) -> None:
    elsewhere = "other-machine.example:4242@0badc0de.77:9"
    assert process_alive(elsewhere) is None  # this machine cannot tell
    _held_by(store, "web-01", elsewhere)  # beating
    _held_by(store, "web-02", elsewhere, heartbeat_at=utcnow() - STALE - timedelta(seconds=1))
    with (
        pytest.raises(HostBusy, match="host web-01 is busy"),
        host_locks(store, ("web-01",), proposal_id=2, ttl=TTL),
    ):
        pass
    with host_locks(store, ("web-02",), proposal_id=2, ttl=TTL):
        assert _holder(store, "web-02") == (proposal_holder(2), 2)


def test_a_holder_without_heartbeat_elsewhere_is_only_freed_by_expiry(store: Store) -> None:
    """Rows an older Terry wrote on another machine: nothing tells whether it lives."""
    old = "other-machine.example:4242:9"
    _held_by(store, "web-01", old, heartbeat_at=None, acquired_at=utcnow() - timedelta(hours=2))
    with pytest.raises(HostBusy), host_locks(store, ("web-01",), proposal_id=2, ttl=TTL):
        pass
    with store.session() as session:
        session.execute(update(HostLockRow).values(expires_at=utcnow() - TTL))
    with host_locks(store, ("web-01",), proposal_id=2, ttl=TTL):
        pass


def test_the_heartbeat_is_renewed_while_the_lock_is_held(store: Store) -> None:
    def beat() -> object:
        with store.session() as session:
            row = session.get(HostLockRow, "web-01")
            assert row is not None
            return row.heartbeat_at

    with host_locks(store, ("web-01",), proposal_id=1, ttl=TTL, heartbeat=0.05):
        first = beat()
        deadline = time.monotonic() + 10
        while beat() == first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert beat() > first


def test_a_dead_holder_that_left_a_run_running_keeps_the_host_until_it_is_reaped(
    store: Store, tmp_path: Path
) -> None:
    """What its run started may still be running: only recovery, which stops it, frees the
    host; then the run is finished as interrupted, no longer running."""
    proposal = _proposal(store)
    dead = _reused_pid(str(proposal))
    _held_by(store, "web-01", dead, proposal_id=proposal)
    dead_run = _run(store, proposal, process_of(dead))
    live_run = _run(store, _proposal(store), holder_id())  # this process: still at it
    with pytest.raises(HostBusy), host_locks(store, ("web-01",), proposal_id=2, ttl=TTL):
        pass

    reaped = reap(store, tmp_path / "runs")
    assert reaped.runs == (dead_run,)
    assert reaped.released == ("web-01",)
    assert _run_status(store, dead_run) == ("interrupted", True)
    assert _run_status(store, live_run) == ("running", False)
    with host_locks(store, ("web-01",), proposal_id=2, ttl=TTL):
        pass


def test_a_waiter_taking_reap_frees_the_host_a_dead_run_held(store: Store, tmp_path: Path) -> None:
    proposal = _proposal(store)
    dead = _gone_pid(str(proposal))
    _held_by(store, "web-01", dead, proposal_id=proposal)
    dead_run = _run(store, proposal, process_of(dead))
    with host_locks(
        store, ("web-01",), proposal_id=2, ttl=TTL, wait=30, reap=lambda: reap(store, tmp_path)
    ):
        assert _holder(store, "web-01") == (proposal_holder(2), 2)
    assert _run_status(store, dead_run) == ("interrupted", True)


def test_runs_recorded_without_holder_are_judged_by_their_proposals_locks(
    store: Store, tmp_path: Path
) -> None:
    held, unheld = _proposal(store), _proposal(store)
    _held_by(store, "web-01", f"{holder_id()}:{held}", proposal_id=held)
    kept, ended = _run(store, held, None), _run(store, unheld, None)
    assert reap(store, tmp_path).runs == (ended,)
    assert _run_status(store, kept) == ("running", False)


# -- the queue: a proposal that waited is never left behind ------------------------------------
def test_a_proposal_that_gave_up_waiting_stays_queued_until_it_has_its_hosts(
    store: Store,
) -> None:
    with host_locks(store, ("web-01",), proposal_id=1, ttl=TTL):
        with (
            pytest.raises(HostBusy, match="proposal 2 stays queued"),
            host_locks(store, ("web-01",), proposal_id=2, ttl=TTL, wait=0.2),
        ):
            pass
        assert [q.proposal_id for q in queued(store)] == [2]  # nobody waits for it now
        assert claim_queued(store, 2, ttl=TTL)
        assert not claim_queued(store, 2, ttl=TTL)  # taken: another worker finds it busy
        assert queued(store) == []
    with host_locks(store, ("web-01",), proposal_id=2, ttl=TTL):
        pass
    with store.session() as session:
        assert session.scalars(select(HostLockRow)).all() == []  # no queue row left


def test_a_live_waiter_is_not_queued_work_and_a_dead_one_is(store: Store) -> None:
    _held_by(store, "queued:5", f"{holder_id()}:5", proposal_id=5)  # waiting, alive
    _held_by(store, "queued:6", _gone_pid("6"), proposal_id=6)  # died while it waited
    assert [q.proposal_id for q in queued(store)] == [6]
