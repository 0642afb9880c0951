"""Review: a person's verdict on a proposal the gate sent to review. Approving records who
approved and merges (through the review implementation: locally, or the pull request);
rejecting ends it. Applying after an approval is the sequencer's next step, not this one's.

With review on GitHub, an approver that is a GitHub login (a pull request's approvers, or a
plain ``--as`` name, which ``github:`` members already match) approves for a tenant as a
member of a ``github_team`` it names, as GitHub's team membership says (``teams``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from terry.context import Context
from terry.errors import MergeConflict
from terry.inventory.hosts import load_inventory
from terry.proposals.duties import check_not_author
from terry.proposals.state import ProposalState, get, transition
from terry.proposals.tenant_approvals import TenantApprovals, record_tenant_approval
from terry.review.base import Review
from terry.review.principals import TeamCache
from terry.steps.record import Record
from terry.tenants.loader import load_tenants
from terry.tenants.model import TeamCheck

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
        """Approved by ``actor`` and merged; the merge commit's sha. When tenants are
        defined, each tenant the proposal touches approves first (``ApprovalPending`` until
        the last one has: terry.proposals.tenant_approvals). The author of a change a
        person asked for never approves it in production (terry.proposals.duties)."""
        check_not_author(self.ctx.store, proposal_id, actor=actor)
        self.tenant_approvals(proposal_id, actor=actor)
        self.record_approval(proposal_id, actor=actor, reason=f"approved by {actor}")
        return self.merge_approved(proposal_id, actor=actor, reason=f"approved by {actor}")

    def merge_approved(self, proposal_id: int, *, actor: str, reason: str) -> str:
        """Merge an approved proposal; the merge commit's sha. A merge that conflicts with
        main as main now is rejects the proposal (its incident kept for a person) and is
        raised: nothing was merged."""
        try:
            return self.review.merge(
                proposal_id, actor=actor, reason=reason, from_state=ProposalState.APPROVED
            )
        except MergeConflict as conflict:
            Record(self.ctx).not_merged(
                proposal_id, conflict, actor=actor, from_state=ProposalState.APPROVED
            )
            raise MergeConflict(
                f"{conflict}; proposal {proposal_id} is rejected: nothing was merged or applied",
                conflict.paths,
            ) from conflict

    def tenant_approvals(self, proposal_id: int, *, actor: str) -> TenantApprovals | None:
        """Record ``actor``'s approval for the proposal's tenants they may approve for
        (main's policies/tenants.yml); None when no tenant is involved."""
        ctx = self.ctx
        with ctx.store.session() as session:
            row = get(session, proposal_id)
            hosts, risk, state, commit = list(row.hosts), row.risk, row.state, row.commit_sha
        if state != ProposalState.AWAITING_REVIEW.value:
            return None  # record_approval refuses it in the usual words
        sha, _catalogue, inventory = ctx.main.view()
        tenancy = load_tenants(ctx.repo.tree(sha), ctx.config.policy.path)
        if tenancy is None:
            return None
        found = [inventory.hosts[h] for h in hosts if h in inventory.hosts]
        if commit and len(found) < len(hosts):  # hosts an inventory edit adds
            edited = load_inventory(ctx.repo.tree(commit), ctx.config.inventory)
            found += [
                edited.hosts[h] for h in hosts if h not in inventory.hosts and h in edited.hosts
            ]
        required = {t for host in found for t in tenancy.tenants_of(host)}
        if not required:
            return None
        return record_tenant_approval(
            ctx.store,
            proposal_id,
            tenancy=tenancy,
            required=required,
            actor=actor,
            risk=risk,
            teams=self.teams,
        )

    @cached_property
    def teams(self) -> TeamCheck | None:
        """GitHub's team membership when review is on GitHub (remembered a few minutes,
        ``TeamCache``; a failure counts as no and says why); None for local review. The
        forge is built on the first question only: most approvals name no team."""
        from terry.review.forge import GitHubReview

        review = self.review
        if not isinstance(review, GitHubReview):
            return None
        return TeamCache(lambda team, login: review.forge.in_team(team, login))

    def reject(self, proposal_id: int, *, actor: str, reason: str) -> None:
        transition(
            self.ctx.store,
            proposal_id,
            ProposalState.REJECTED,
            actor=actor,
            verb="reject",
            reason=f"rejected by {actor}: {reason}",
            # approved too: its merge did not happen (GitHub refused it, or was down)
            allowed_from=(ProposalState.AWAITING_REVIEW, ProposalState.APPROVED),
            changes={"outcome": f"rejected: {reason}"},
        )
