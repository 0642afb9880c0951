"""An incident joining an open proposal (its next wave) is carried by it, or gets its own.

Found by two Terry servers on one PostgreSQL: each took an incident on the same host at the
same moment, both joined the same proposal, and the second was silently absorbed: its
host row was the first one's, so it was never marked fixed. A join now either queues a
row of its own for the incident (the unique (proposal, host) key decides between racing
processes) or gives the incident a proposal of its own.
"""

from __future__ import annotations

import threading

import pytest

from terry.diagnosis.finding import Fix
from terry.diagnosis.rules import Diagnosis
from terry.inventory.hosts import Host
from terry.proposals.hosts import HostState, add_hosts, hosts_of, set_hosts
from terry.proposals.state import ProposalState
from terry.proposals.storm import JOINABLE, join
from terry.remedies.catalogue import load_catalogue
from terry.store import Store
from terry.store.models import IncidentRow, ProposalRow, utcnow
from tests.conftest import REPO_ROOT

PARAMS = {"path": "/srv/data"}


def _incident(store: Store, n: int, host: str) -> int:
    with store.session() as session:
        row = IncidentRow(
            fingerprint=f"join-{n}",
            source="alert",
            title="DiskUsageHigh",
            host=host,
            state="open",
            opened_at=utcnow(),
        )
        session.add(row)
        session.flush()
        return row.id


def _open_proposal(store: Store, hosts: list[str]) -> int:
    """A disk fix Terry is applying on ``hosts``, as the pipeline leaves it."""
    first = _incident(store, 0, hosts[0])
    now = utcnow()
    with store.session() as session:
        row = ProposalRow(
            incident_id=first,
            remedy="disk-usage-high",
            role="disk_cleanup",
            hosts=hosts,
            params=PARAMS,
            risk="low",
            state="applying",
            commit_sha="0" * 40,
            check_summary={},
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        session.flush()
        proposal = row.id
    add_hosts(store, proposal, [(h, first, "staging") for h in hosts])
    return proposal


def _fix(host: str) -> Fix:
    remedy = load_catalogue(REPO_ROOT / "roles").get("disk-usage-high")
    assert remedy is not None
    return Fix(Diagnosis(remedy, (Host(host, None, "staging", None),), dict(PARAMS)), base="0")


def _join(store: Store, host: str, incident: int) -> int | None:
    return join(store, _fix(host), incident, window=600, environment="staging")


def test_a_new_host_joins_and_is_queued_for_its_incident(store: Store) -> None:
    proposal = _open_proposal(store, ["web-01"])
    incident = _incident(store, 1, "web-02")
    assert _join(store, "web-02", incident) == proposal
    queued = [h for h in hosts_of(store, proposal) if h.host == "web-02"]
    assert [(h.state, h.incident_id) for h in queued] == [(HostState.QUEUED, incident)]


@pytest.mark.parametrize("state", list(HostState))
def test_a_host_already_on_the_proposal_in_any_state_is_not_absorbed(
    store: Store, state: HostState
) -> None:
    proposal = _open_proposal(store, ["web-01", "web-02"])
    set_hosts(store, proposal, {"web-02": (state, "")})
    later = _incident(store, 2, "web-02")
    assert _join(store, "web-02", later) is None  # it gets a proposal of its own
    assert later not in {h.incident_id for h in hosts_of(store, proposal)}


def test_two_processes_joining_one_host_at_once_queue_it_once(store: Store) -> None:
    proposal = _open_proposal(store, ["web-01"])
    incidents = [_incident(store, 10 + n, "web-02") for n in range(8)]
    start = threading.Barrier(len(incidents))
    joined: dict[int, int | None] = {}
    errors: list[BaseException] = []

    def racer(incident: int) -> None:
        try:
            start.wait()
            joined[incident] = _join(store, "web-02", incident)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=racer, args=(i,)) for i in incidents]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    winners = [i for i, p in joined.items() if p == proposal]
    assert len(winners) == 1, joined
    assert all(joined[i] is None for i in incidents if i not in winners)
    carried = [h for h in hosts_of(store, proposal) if h.host == "web-02"]
    assert [(h.state, h.incident_id) for h in carried] == [(HostState.QUEUED, winners[0])]


@pytest.mark.parametrize("state", list(ProposalState))
def test_a_late_host_joins_while_the_rollout_is_under_way_and_never_after(
    store: Store, state: ProposalState
) -> None:
    """A rollout in waves is ``applied`` once its canary's wave is, while the canary is
    watched and the rest roll out: a host arriving then goes in its next wave (its follow-up
    waits for the rollout's end: ``Pipeline.follow_up`` does nothing while it is joinable).
    Waiting for a person, and ended, it is not joined."""
    proposal = _open_proposal(store, ["web-01", "web-02", "web-03", "web-04"])
    with store.session() as session:
        session.get(ProposalRow, proposal).state = state.value
    set_hosts(store, proposal, {"web-01": (HostState.VERIFIED, "the canary, verified")})
    late = _incident(store, 9, "web-05")
    under_way = state in JOINABLE
    assert (_join(store, "web-05", late) == proposal) is under_way
    assert (late in {h.incident_id for h in hosts_of(store, proposal)}) is under_way
    assert (ProposalState.APPLIED in JOINABLE) and ProposalState.AWAITING_REVIEW not in JOINABLE
