"""Dry run: the proposal commit checked by each applier its plan names, in order (an
inventory edit that converges: the edited inventory first, then the desired state in check
mode). The first that fails is the dry run's result; otherwise the last one's. Its summary
and diff are recorded on the proposal for the gate and for reviewers."""

from __future__ import annotations

from dataclasses import dataclass

from terry.appliers.base import RunKind, RunResult
from terry.appliers.registry import Appliers
from terry.context import Context
from terry.errors import RunnerError
from terry.proposals.plan import Plan
from terry.proposals.state import ProposalState, get, transition
from terry.steps.record import Record

__all__ = ["DryRun"]


@dataclass(frozen=True)
class DryRun:
    ctx: Context
    appliers: Appliers
    record: Record

    def __call__(self, proposal_id: int) -> RunResult:
        store, reporter = self.ctx.store, self.ctx.reporter
        with store.session() as session:
            row = get(session, proposal_id)
            commit, plan = row.commit_sha, Plan.from_json(row.plan, applier=row.applier)
        assert commit is not None
        result: RunResult | None = None
        try:
            for name in plan.check:
                applier = self.appliers.get(name)
                reporter.step(proposal_id, f"dry run: {applier.check_words}")
                result = self.record.run(applier, RunKind.CHECK, proposal_id, commit)
                if not result.ok:
                    break
        except RunnerError as exc:
            transition(
                store,
                proposal_id,
                ProposalState.FAILED,
                actor="terry",
                reason=f"dry run could not start: {exc}",
                changes={"outcome": str(exc)},
            )
            raise
        assert result is not None, "a plan names at least one applier to check with"
        summary = result.summary()
        summary["messages"] = result.failure_messages()[:20]
        diff = result.diff_text()
        transition(
            store,
            proposal_id,
            ProposalState.CHECKED,
            actor="terry",
            reason=f"dry run {'passed' if result.ok else 'failed'}: {result.changed} change(s)",
            changes={"check_diff": diff, "check_summary": summary},
        )
        shown = "\n".join(diff.splitlines()[:12]) + ("\n    …" if diff.count("\n") >= 12 else "")
        reporter.step(
            proposal_id,
            f"check-mode diff ({result.changed} change(s), "
            f"{'passed' if result.ok else 'FAILED'}):\n{shown}",
        )
        return result
