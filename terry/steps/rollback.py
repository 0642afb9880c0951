"""Rollback: undo an applied proposal, as its plan says: the applier's rollback (the
remedy's rollback tasks; Argo CD: revert the merge and sync the revert), or, where nothing
can be undone automatically (the desired state is the reference), a note for a person."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from terry.appliers.base import RunKind
from terry.appliers.registry import Appliers
from terry.context import Context
from terry.errors import RunnerError, StateError
from terry.proposals.plan import MANUAL, Plan
from terry.proposals.state import ProposalState, get, transition
from terry.steps.record import Record
from terry.store.locks import host_locks

__all__ = ["ROLLBACK_FROM", "Rollback"]

ROLLBACK_FROM = (
    ProposalState.APPLIED,
    ProposalState.VERIFIED,
    ProposalState.FAILED,
    ProposalState.ESCALATED,
    ProposalState.INTERRUPTED,
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
            self.record.attention(
                proposal_id,
                f"proposal {proposal_id}: the change did not take ({reason}); no automatic "
                f"rollback: {plan.rollback_note or 'revert its merge by hand'}",
            )
            return
        self.ctx.reporter.step(proposal_id, f"rolling back ({reason})")
        try:
            result = self.record.run(
                self.appliers.get(applier), RunKind.ROLLBACK, proposal_id, merge_sha
            )
        except RunnerError as exc:
            self.record.attention(
                proposal_id, f"proposal {proposal_id}: rollback could not start: {exc}"
            )
            return
        if result.ok:
            transition(
                self.ctx.store,
                proposal_id,
                ProposalState.ROLLED_BACK,
                actor=actor,
                reason=f"rolled back: {reason}",
                allowed_from=ROLLBACK_FROM,
            )
        else:
            why = "; ".join(result.failure_messages()[:5])
            self.record.attention(proposal_id, f"proposal {proposal_id}: rollback failed: {why}")

    def requested(self, proposal_id: int, *, actor: str) -> ProposalState:
        """Run the rollback on demand (after a verified or escalated apply)."""
        ctx = self.ctx
        with ctx.store.session() as session:
            row = get(session, proposal_id)
            hosts, merge_sha, state = tuple(row.hosts), row.merge_sha, ProposalState(row.state)
        if state not in ROLLBACK_FROM or merge_sha is None:
            raise StateError(f"cannot roll back proposal {proposal_id}: it is {state.value}")
        ttl = timedelta(seconds=ctx.config.runner.timeout + 60)
        with host_locks(
            ctx.store, hosts, proposal_id=proposal_id, ttl=ttl, wait=ctx.config.runner.lock_wait
        ):
            self(proposal_id, merge_sha, reason=f"requested by {actor}", actor=actor)
        return self.record.state(proposal_id)
