"""Each host of a proposal, with its own outcome (``proposal_hosts``, 0017).

A proposal over many hosts (a storm folded into one, ``terry.proposals.storm``) is applied,
verified and rolled back per host: one host failing verify is recorded as failed and rolled
back while the others keep their own outcome, and a person reads every host's state in
``terry proposals show``. Each host row names the incident that brought it, so that
incident is the one marked fixed (or kept for a person) by its host's outcome.

States: ``pending`` (in the proposal, not applied yet), ``queued`` (joined the
proposal: before its decision it is taken into it, ``pending`` again; after, it goes in
the next wave, a follow-up proposal), ``verified``,
``failed``, ``unknown`` (verification could not tell), ``rolled_back``,
``rollback_failed``, ``held`` (not applied: left for a person after a wave before it
failed), ``moved`` (queued, then carried by the follow-up proposal named in its detail),
``not_applied`` (the proposal ended without applying: denied, rejected, withdrawn; its
detail says why).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from terry.store import Store
from terry.store.models import IncidentRow, ProposalHostRow, ProposalRow, utcnow

__all__ = [
    "HostState",
    "ProposalHost",
    "add_hosts",
    "carried",
    "hosts_of",
    "open_incidents",
    "queue_host",
    "set_hosts",
    "set_waves",
    "take_queued",
    "with_queued",
]


class HostState(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    VERIFIED = "verified"
    FAILED = "failed"
    UNKNOWN = "unknown"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"
    HELD = "held"
    MOVED = "moved"
    NOT_APPLIED = "not_applied"


@dataclass(frozen=True)
class ProposalHost:
    host: str
    incident_id: int | None
    environment: str | None
    wave: int | None
    state: HostState
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "incident_id": self.incident_id,
            "environment": self.environment,
            "wave": self.wave,
            "state": self.state.value,
            "detail": self.detail,
        }


def add_hosts(
    store: Store,
    proposal_id: int,
    hosts: Iterable[tuple[str, int | None, str | None]],
) -> None:
    """Record (host, incident, environment) on the proposal, pending; a host already on it
    is kept (a proposal's own hosts; one joining later is ``queue_host``'s)."""
    with store.session() as session:
        known = set(
            session.scalars(
                select(ProposalHostRow.host).where(ProposalHostRow.proposal_id == proposal_id)
            )
        )
        for host, incident_id, environment in hosts:
            if host in known:
                continue
            known.add(host)
            session.add(_row(proposal_id, host, incident_id, environment, HostState.PENDING))


def _row(
    proposal_id: int, host: str, incident_id: int | None, environment: str | None, state: HostState
) -> ProposalHostRow:
    return ProposalHostRow(
        proposal_id=proposal_id,
        host=host,
        incident_id=incident_id,
        environment=environment,
        state=state.value,
        updated_at=utcnow(),
    )


def queue_host(
    store: Store, proposal_id: int, host: str, incident_id: int, environment: str | None
) -> bool:
    """Queue ``host`` on the proposal (taken into it before its decision, else its next
    wave), for ``incident_id``. False when the
    host is already on it, in any state, or another process queued it at the same moment
    (the unique (proposal, host) key decides): this incident is then *not* carried by it."""
    try:
        with store.session() as session:
            session.add(_row(proposal_id, host, incident_id, environment, HostState.QUEUED))
    except IntegrityError:
        return False
    return True


def set_hosts(
    store: Store,
    proposal_id: int,
    changes: Mapping[str, tuple[HostState, str]],
    *,
    wave: int | None = None,
) -> None:
    """Set each named host's state and detail (and wave, when given)."""
    if not changes:
        return
    now = utcnow()
    with store.session() as session:
        rows = session.scalars(
            select(ProposalHostRow).where(
                ProposalHostRow.proposal_id == proposal_id,
                ProposalHostRow.host.in_(list(changes)),
            )
        )
        for row in rows:
            state, detail = changes[row.host]
            row.state, row.detail, row.updated_at = state.value, detail[:2000], now
            if wave is not None:
                row.wave = wave


def hosts_of(store: Store, proposal_id: int) -> list[ProposalHost]:
    with store.session() as session:
        rows = session.scalars(
            select(ProposalHostRow)
            .where(ProposalHostRow.proposal_id == proposal_id)
            .order_by(ProposalHostRow.id)
        )
        return [
            ProposalHost(
                r.host, r.incident_id, r.environment, r.wave, HostState(r.state), r.detail or ""
            )
            for r in rows
        ]


def take_queued(
    store: Store, proposal_id: int, *, among: Collection[str] | None = None
) -> list[ProposalHost]:
    """The hosts queued on the proposal (those of ``among`` only, when given), each taken
    once (compare-and-set to ``moved``): two processes finishing the same proposal never
    both carry its next wave."""
    taken: list[ProposalHost] = []
    with store.session() as session:
        rows = session.scalars(
            select(ProposalHostRow).where(
                ProposalHostRow.proposal_id == proposal_id,
                ProposalHostRow.state == HostState.QUEUED.value,
            )
        ).all()
        candidates = [
            (r.id, r.host, r.incident_id, r.environment)
            for r in rows
            if among is None or r.host in among
        ]
    for row_id, host, incident_id, environment in candidates:
        with store.session() as session:
            result = session.execute(
                update(ProposalHostRow)
                .where(ProposalHostRow.id == row_id, ProposalHostRow.state == HostState.QUEUED)
                .values(state=HostState.MOVED.value, updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                taken.append(
                    ProposalHost(host, incident_id, environment, None, HostState.MOVED, "")
                )
    return taken


def open_incidents(store: Store, incident_ids: Iterable[int]) -> set[int]:
    """Those of ``incident_ids`` still open."""
    ids = list(incident_ids)
    if not ids:
        return set()
    with store.session() as session:
        return set(
            session.scalars(
                select(IncidentRow.id).where(IncidentRow.id.in_(ids), IncidentRow.state == "open")
            )
        )


def set_waves(store: Store, proposal_id: int, waves: Mapping[str, int]) -> None:
    """Record the wave each host is planned in (the plan the gate judged)."""
    if not waves:
        return
    with store.session() as session:
        rows = session.scalars(
            select(ProposalHostRow).where(
                ProposalHostRow.proposal_id == proposal_id,
                ProposalHostRow.host.in_(list(waves)),
            )
        )
        for row in rows:
            row.wave = waves[row.host]


def with_queued(store: Store) -> list[int]:
    """Proposals with hosts queued for their next wave (the worker's sweep hands those that
    are done to ``Pipeline.follow_up``, in case the process that finished them died)."""
    with store.session() as session:
        return sorted(
            set(
                session.scalars(
                    select(ProposalHostRow.proposal_id).where(
                        ProposalHostRow.state == HostState.QUEUED.value
                    )
                )
            )
        )


def carried(store: Store, proposal_id: int, hosts: Collection[str] | None = None) -> list[int]:
    """The incidents a proposal carries, oldest first (``hosts``: on those of its hosts
    only): its own (its first host's), each host's (``proposal_hosts``; a host queued for
    its next wave, or moved on, is not its own yet), and those riding on its hosts (a
    storm's second incident on one host, ``incidents.folded_into``). The other way round,
    each incident's proposals: ``terry.reports.history.carrying``."""
    with store.session() as session:
        row = session.get(ProposalRow, proposal_id)
        if row is None:
            return []
        on = list(row.hosts) if hosts is None else [h for h in row.hosts if h in hosts]
        own = [row.incident_id] if row.hosts and row.hosts[0] in on else []
        each = session.scalars(
            select(ProposalHostRow.incident_id).where(
                ProposalHostRow.proposal_id == proposal_id, ProposalHostRow.host.in_(on)
            )
        )
        riders = session.scalars(
            select(IncidentRow.id).where(
                IncidentRow.folded_into == proposal_id, IncidentRow.host.in_(on)
            )
        )
        found = {*own, *(i for i in each if i is not None), *riders}
    return sorted(found)
