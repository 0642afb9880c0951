"""Review: a person's verdict on a proposal the gate sent to review. Approving records who
approved and merges (through the review implementation: locally, or the pull request);
rejecting ends it. Applying after an approval is the sequencer's next step, not this one's.
"""

from __future__ import annotations

from dataclasses import dataclass

from terry.context import Context
from terry.proposals.state import ProposalState, transition
from terry.review.base import Review

__all__ = ["ReviewStep"]


@dataclass(frozen=True)
class ReviewStep:
    ctx: Context
    review: Review

    def record_approval(self, proposal_id: int, *, actor: str, reason: str) -> None:
        transition(
            self.ctx.store,
            proposal_id,
            ProposalState.APPROVED,
            actor=actor,
            verb="approve",
            reason=reason,
            allowed_from=(ProposalState.AWAITING_REVIEW,),
            changes={"approved_by": actor},
        )

    def approve(self, proposal_id: int, *, actor: str) -> str:
        """Approved by ``actor`` and merged; the merge commit's sha."""
        self.record_approval(proposal_id, actor=actor, reason=f"approved by {actor}")
        return self.review.merge(
            proposal_id,
            actor=actor,
            reason=f"approved by {actor}",
            from_state=ProposalState.APPROVED,
        )

    def reject(self, proposal_id: int, *, actor: str, reason: str) -> None:
        transition(
            self.ctx.store,
            proposal_id,
            ProposalState.REJECTED,
            actor=actor,
            verb="reject",
            reason=f"rejected by {actor}: {reason}",
            allowed_from=(ProposalState.AWAITING_REVIEW,),
            changes={"outcome": f"rejected: {reason}"},
        )
