"""Review: a merge decision merges at once; a review decision waits for a person to approve
(merge, then apply) or reject. Every merge commit carries the decision, its reasons, the
policy commit and who approved, as trailers.
"""

from __future__ import annotations

from terry.proposals.state import ProposalState, get, transition
from terry.steps import Steps, decision_trailers, one_line

__all__ = ["ReviewSteps"]

S = ProposalState


class ReviewSteps(Steps):
    def _merge(
        self, proposal_id: int, *, actor: str, reason: str, from_state: ProposalState
    ) -> str:
        with self.store.session() as session:
            row = get(session, proposal_id)
            branch, remedy, hosts = row.branch, row.remedy, ", ".join(row.hosts)
        assert branch is not None
        message = f"Merge {branch}: {remedy} on {hosts}\n\n" + self.merge_trailers(proposal_id)
        merge_sha = self.repo.merge(branch, message=message)
        transition(
            self.store,
            proposal_id,
            S.MERGED,
            actor=actor,
            reason=f"merged into {self.config.main_branch} as {merge_sha[:10]}: {reason}",
            allowed_from=(from_state,),
            changes={"merge_sha": merge_sha},
        )
        self.reporter.step(proposal_id, f"merged into {self.config.main_branch} ({merge_sha[:10]})")
        return merge_sha

    def merge_trailers(self, proposal_id: int) -> str:
        """The merge commit's trailers: the proposal, the gate's verdict, who approved."""
        with self.store.session() as session:
            row = get(session, proposal_id)
            decision, reasons, policy_commit = row.decision, list(row.reasons), row.policy_commit
            approved_by = row.approved_by
        trailers = [
            f"Terry-Proposal: {proposal_id}",
            *decision_trailers(decision, reasons, policy_commit),
        ]
        if approved_by:
            trailers.append(f"Terry-Approved-By: {one_line(approved_by, 100)}")
        return "\n".join(trailers) + "\n"

    def _record_approval(self, proposal_id: int, *, actor: str, reason: str) -> None:
        transition(
            self.store,
            proposal_id,
            S.APPROVED,
            actor=actor,
            verb="approve",
            reason=reason,
            allowed_from=(S.AWAITING_REVIEW,),
            changes={"approved_by": actor},
        )

    def approve(self, proposal_id: int, *, actor: str, apply: bool = True) -> None:
        self._record_approval(proposal_id, actor=actor, reason=f"approved by {actor}")
        self._merge(proposal_id, actor=actor, reason=f"approved by {actor}", from_state=S.APPROVED)
        if apply:
            self.apply(proposal_id, actor=actor)

    def reject(self, proposal_id: int, *, actor: str, reason: str) -> None:
        transition(
            self.store,
            proposal_id,
            S.REJECTED,
            actor=actor,
            verb="reject",
            reason=f"rejected by {actor}: {reason}",
            allowed_from=(S.AWAITING_REVIEW,),
            changes={"outcome": f"rejected: {reason}"},
        )
