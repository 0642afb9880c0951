"""Apply: the merged commit carried to the hosts by the proposal's applier, under per-host
database locks, then verified. A failed apply or a failed verification rolls back; a
verification that cannot tell (``unknown``) escalates to a person and is never recorded
as verified.

Right before the applier runs, under the locks, what the apply acts on is re-checked
(``terry.steps.precheck``): the commit carries no change on main that nobody gated (else
``MainNotGated``, nothing applied), and the problem still holds (else the proposal is
withdrawn and its incident closed as resolved by itself).

When the plan says so (``Plan.verify_with_apply``, from the remedy) and the applier can
(``apply_and_verify``), the applier's verify runs in the apply's own run: one start fewer.
The run's verify part is still recorded as a verify run and judged as the applier's check;
the checks after it (Prometheus) run as before."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from terry.appliers.base import Job, OnEvent, RunKind, RunResult
from terry.appliers.registry import Appliers
from terry.context import Context
from terry.errors import RunnerError
from terry.proposals.plan import APPLIER, Plan
from terry.proposals.state import MERGED_STATES, ProposalState, get, transition
from terry.steps.precheck import Precheck
from terry.steps.record import Record
from terry.steps.rollback import Rollback
from terry.steps.verify import Verify
from terry.store.locks import host_locks
from terry.store.runs import reap
from terry.verify.judge import Outcome

__all__ = ["Apply"]


@dataclass
class _Together:
    """The applier seen by ``Record.run`` for an apply that verifies in the same run: its
    ``apply`` is the fix's part; the verify's part is kept for the verify step."""

    applier: Any
    verified: RunResult | None = field(default=None)

    def apply(self, job: Job, on_event: OnEvent) -> RunResult:
        fixed, self.verified = self.applier.apply_and_verify(job, on_event)
        return fixed


@dataclass(frozen=True)
class Apply:
    ctx: Context
    appliers: Appliers
    record: Record
    verify: Verify
    rollback: Rollback
    precheck: Precheck

    def __call__(self, proposal_id: int, *, actor: str) -> ProposalState:
        ctx, record = self.ctx, self.record
        with ctx.store.session() as session:
            row = get(session, proposal_id)
            hosts, merge_sha, applier = tuple(row.hosts), row.merge_sha, row.applier
            plan = Plan.from_json(row.plan, applier=row.applier)
        runner = ctx.config.runner
        ttl = timedelta(seconds=runner.timeout * 3 + 60)
        runs = ctx.config.state_dir / "runs"
        with host_locks(
            ctx.store,
            hosts,
            proposal_id=proposal_id,
            ttl=ttl,
            wait=runner.lock_wait,
            reap=lambda: reap(ctx.store, runs),  # a dead holder's lock is freed, not waited out
        ):
            healed = self._recheck(proposal_id, merge_sha)
            if healed is not None:
                return healed
            transition(
                ctx.store,
                proposal_id,
                ProposalState.APPLYING,
                actor=actor,
                verb="apply",
                reason=f"apply {str(merge_sha)[:10]} on {', '.join(hosts)}",
                allowed_from=MERGED_STATES,
            )
            assert merge_sha is not None
            ctx.reporter.step(proposal_id, f"applying on {', '.join(hosts)}")
            chosen = self.appliers.get(applier)
            together = (
                _Together(chosen)
                if plan.verify_with_apply
                and APPLIER in plan.verify
                and callable(getattr(chosen, "apply_and_verify", None))
                else None
            )
            try:
                result = record.run(together or chosen, RunKind.APPLY, proposal_id, merge_sha)
            except RunnerError as exc:
                record.move(proposal_id, ProposalState.FAILED, str(exc), outcome=str(exc))
                raise
            if not result.ok:
                why = "; ".join(result.failure_messages()[:5]) or f"ended {result.status.value}"
                record.move(
                    proposal_id,
                    ProposalState.FAILED,
                    f"apply failed: {why}",
                    outcome=f"apply failed: {why}",
                )
                self.rollback(proposal_id, merge_sha, reason="apply failed")
                return record.state(proposal_id)
            record.move(proposal_id, ProposalState.APPLIED, f"applied: {result.changed} change(s)")
            verification = self.verify(
                proposal_id, merge_sha, ran=together.verified if together else None
            )
            evidence = "; ".join(verification.evidence)
            if verification.outcome is Outcome.VERIFIED:
                record.move(
                    proposal_id, ProposalState.VERIFIED, evidence, outcome=f"verified: {evidence}"
                )
                record.fixed(proposal_id)
            elif verification.outcome is Outcome.FAILED:
                record.move(
                    proposal_id,
                    ProposalState.FAILED,
                    f"verification failed: {evidence}",
                    outcome=f"verification failed: {evidence}",
                )
                self.rollback(proposal_id, merge_sha, reason="verification failed")
            else:
                record.move(
                    proposal_id,
                    ProposalState.ESCALATED,
                    f"verification unknown: {evidence}",
                    outcome=f"unknown: {evidence}",
                )
                record.attention(
                    proposal_id,
                    f"proposal {proposal_id}: verification could not tell ({evidence}). "
                    f"Next: check {', '.join(hosts)}, then `terry proposals rollback "
                    f"{proposal_id}` (undo) or `terry proposals apply {proposal_id}` (again)",
                )
        return record.state(proposal_id)

    # -- re-check before acting (terry.steps.precheck) --------------------------------------
    def _recheck(self, proposal_id: int, merge_sha: str | None) -> ProposalState | None:
        """Raise ``MainNotGated`` if ``merge_sha`` carries an ungated change on main; the
        proposal's new state when its problem healed before the fix (nothing applied), or
        None: go ahead."""
        with self.ctx.store.session() as session:
            state = ProposalState(get(session, proposal_id).state)
        if merge_sha is None or state not in MERGED_STATES:  # refused below, in its words
            return None
        self.precheck.gated(proposal_id, merge_sha)
        gone = self.precheck.problem_gone(proposal_id, merge_sha)
        if gone is None:
            return None
        return self.precheck.withdraw(proposal_id, gone)
