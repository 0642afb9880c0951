"""Rollback: undo an applied proposal, as its plan says: the applier's rollback (the
remedy's rollback tasks; Argo CD: revert the merge and sync the revert), or, where nothing
can be undone automatically (the desired state is the reference), a note for a person.

An apply whose process died is ``interrupted`` (``interrupt_dead_applies``: recovery, or a
person asking for its rollback), never re-applied blindly; its rollback is the way back."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from terry.appliers.base import RunKind
from terry.appliers.registry import Appliers
from terry.context import Context
from terry.errors import RunGoesOn, RunnerError, StateError
from terry.proposals.hosts import HostState, hosts_of, set_hosts
from terry.proposals.plan import MANUAL, Plan
from terry.proposals.state import ProposalState, get, transition
from terry.steps.record import Record, keep_interrupted
from terry.store import Store
from terry.store.locks import host_locks, live_proposals
from terry.store.models import ProposalRow

__all__ = ["INTERRUPTED_REASON", "ROLLBACK_FROM", "Rollback", "interrupt_dead_applies"]

INTERRUPTED_REASON = (
    "the process applying it stopped mid-run; not re-applied automatically: check the "
    "host, then 'terry proposals apply' or 'rollback'"
)

ROLLBACK_FROM = (
    ProposalState.APPLIED,
    ProposalState.VERIFIED,
    ProposalState.FAILED,
    ProposalState.ESCALATED,
    ProposalState.INTERRUPTED,
)

# Hosts whose state says the fix is not there to undo.
_UNTOUCHED = (
    HostState.HELD,
    HostState.QUEUED,
    HostState.MOVED,
    HostState.NOT_APPLIED,
    HostState.ROLLED_BACK,
)


@dataclass(frozen=True)
class Rollback:
    ctx: Context
    appliers: Appliers
    record: Record

    def __call__(
        self, proposal_id: int, merge_sha: str, *, reason: str, actor: str = "terry"
    ) -> None:
        with self.ctx.store.session() as session:
            row = get(session, proposal_id)
            plan, applier = Plan.from_json(row.plan, applier=row.applier), row.applier
        if plan.rollback == MANUAL:
            self.record.rollback_manual(proposal_id, reason, plan.rollback_note)
            return
        hosts, every = self._touched(proposal_id)
        if not hosts:
            transition(
                self.ctx.store,
                proposal_id,
                ProposalState.ROLLED_BACK,
                actor=actor,
                reason=f"rolled back: {reason}: nothing left to undo (each host was held, not "
                "applied, or rolled back already)",
                allowed_from=ROLLBACK_FROM,
            )
            return
        self.ctx.reporter.step(proposal_id, f"rolling back {', '.join(hosts)} ({reason})")
        try:
            result = self.record.run(
                self.appliers.get(applier),
                RunKind.ROLLBACK,
                proposal_id,
                merge_sha,
                hosts=None if hosts == every else hosts,
            )
        except RunnerError as exc:
            self.record.rollback_not_started(proposal_id, reason, str(exc))
            return
        if result.ok:
            set_hosts(
                self.ctx.store,
                proposal_id,
                dict.fromkeys(hosts, (HostState.ROLLED_BACK, f"rolled back ({reason})")),
            )
            self.record.undone(proposal_id, hosts, reason)
            transition(
                self.ctx.store,
                proposal_id,
                ProposalState.ROLLED_BACK,
                actor=actor,
                reason=f"rolled back: {reason}",
                allowed_from=ROLLBACK_FROM,
            )
            self.record.rolled_back(proposal_id, reason)
        else:
            why = "; ".join(result.failure_messages()[:5]) or f"ended {result.status.value}"
            set_hosts(
                self.ctx.store,
                proposal_id,
                dict.fromkeys(hosts, (HostState.ROLLBACK_FAILED, f"the rollback failed: {why}")),
            )
            self.record.rollback_failed(proposal_id, reason, why)

    def _touched(self, proposal_id: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(the hosts a rollback of the whole proposal undoes, all its hosts): those its fix
        ran on or may have (not held, never applied, moved on, or rolled back already: a
        storm's rollback never touches a host its apply left alone)."""
        with self.ctx.store.session() as session:
            every = tuple(get(session, proposal_id).hosts)
        states = {h.host: h.state for h in hosts_of(self.ctx.store, proposal_id)}
        return tuple(h for h in every if states.get(h) not in _UNTOUCHED), every

    def hosts(
        self, proposal_id: int, merge_sha: str, hosts: tuple[str, ...], *, reason: str
    ) -> tuple[bool, str]:
        """Roll back ``hosts`` only (a failed host of a wave, a failed canary), leaving the
        proposal's state to the caller: (rolled back?, what happened)."""
        with self.ctx.store.session() as session:
            row = get(session, proposal_id)
            plan, applier = Plan.from_json(row.plan, applier=row.applier), row.applier
        if plan.rollback == MANUAL:
            return False, f"nothing is rolled back automatically: {plan.rollback_note}"
        self.ctx.reporter.step(proposal_id, f"rolling back {', '.join(hosts)} ({reason})")
        try:
            result = self.record.run(
                self.appliers.get(applier), RunKind.ROLLBACK, proposal_id, merge_sha, hosts=hosts
            )
        except RunGoesOn as exc:
            return False, f"the rollback was not seen to end: {exc}"
        except RunnerError as exc:
            return False, f"the rollback could not start: {exc}"
        if result.ok:
            return True, f"rolled back ({reason})"
        why = "; ".join(result.failure_messages()[:5]) or f"ended {result.status.value}"
        return False, f"the rollback failed: {why}"

    def requested(self, proposal_id: int, *, actor: str) -> ProposalState:
        """Run the rollback on demand (after an apply: verified, escalated, failed, or
        interrupted; one left ``applying`` by a process that died is marked interrupted
        first)."""
        ctx = self.ctx
        with ctx.store.session() as session:
            state = ProposalState(get(session, proposal_id).state)
        if state is ProposalState.APPLYING:
            self.appliers.reap()  # what a dead apply left: its run, its locks
            interrupt_dead_applies(ctx.store, (proposal_id,))
        with ctx.store.session() as session:
            row = get(session, proposal_id)
            hosts, merge_sha, state = tuple(row.hosts), row.merge_sha, ProposalState(row.state)
        if state not in ROLLBACK_FROM or merge_sha is None:
            raise StateError(f"cannot roll back proposal {proposal_id}: it is {state.value}")
        ttl = timedelta(seconds=ctx.config.runner.timeout + 60)
        with host_locks(
            ctx.store,
            hosts,
            proposal_id=proposal_id,
            ttl=ttl,
            wait=ctx.config.runner.lock_wait,
            reap=self.appliers.reap,
        ):
            self(proposal_id, merge_sha, reason=f"requested by {actor}", actor=actor)
        return self.record.state(proposal_id)


def interrupt_dead_applies(store: Store, only: Iterable[int] | None = None) -> tuple[int, ...]:
    """Proposals left ``applying`` by a process that died (no live holder has any of their
    host locks) become ``interrupted``: never re-applied automatically. ``only``: just
    these proposals. Returns those marked.

    Proposals are read before locks: one seen applying had its locks by then, so a live
    apply is never mistaken for a dead one; one that moved on meanwhile is left alone."""
    query = select(ProposalRow.id).where(ProposalRow.state == ProposalState.APPLYING.value)
    if only is not None:
        query = query.where(ProposalRow.id.in_(list(only)))
    with store.session() as session:
        applying = list(session.scalars(query))
    if not applying:
        return ()
    live = live_proposals(store)
    marked = []
    for proposal_id in applying:
        if proposal_id in live:
            continue
        try:
            transition(
                store,
                proposal_id,
                ProposalState.INTERRUPTED,
                actor="terry",
                reason=INTERRUPTED_REASON,
                allowed_from=(ProposalState.APPLYING,),
                changes={"outcome": "interrupted"},
            )
        except StateError:  # it moved on meanwhile: its apply was alive after all
            continue
        keep_interrupted(store, proposal_id)  # its incident: why, and what a person does next
        marked.append(proposal_id)
    return tuple(marked)
