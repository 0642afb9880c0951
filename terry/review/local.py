"""Local review: a merge decision merges into main at once; a review decision waits for a
person (``terry proposals approve|reject``). Nothing is shared: appliers read this
repository. Every merge commit carries the decision, its reasons, the policy commit and
who approved, as trailers."""

from __future__ import annotations

from collections.abc import Mapping

from terry.context import Context
from terry.proposals.state import ProposalState, get, transition
from terry.review.base import Reconciled, ReviewActions, merge_trailers

__all__ = ["LocalReview"]


class LocalReview:
    name = "local"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def request(self, proposal_id: int, *, reason: str, changes: Mapping[str, object]) -> None:
        transition(
            self.ctx.store,
            proposal_id,
            ProposalState.AWAITING_REVIEW,
            actor="policy",
            reason=reason,
            changes={**changes, "forge_state": None},
        )

    def merge(self, proposal_id: int, *, actor: str, reason: str, from_state: ProposalState) -> str:
        """Merge the commit the dry run and the gate saw (``commit_sha``), never the branch's
        tip: a commit pushed on the branch since is not merged, and the merge says so."""
        ctx = self.ctx
        with ctx.store.session() as session:
            row = get(session, proposal_id)
            branch, commit = row.branch, row.commit_sha
            remedy, hosts = row.remedy, ", ".join(row.hosts)
        assert branch is not None and commit is not None
        moved = _moved_past(ctx, branch, commit)
        message = f"Merge {branch}: {remedy} on {hosts}\n\n" + merge_trailers(
            ctx.store, proposal_id
        )
        merge_sha = ctx.repo.merge(branch, commit=commit, message=message)
        main = ctx.config.main_branch
        transition(
            ctx.store,
            proposal_id,
            ProposalState.MERGED,
            actor=actor,
            reason=f"merged into {main} as {merge_sha[:10]}: {reason}{moved}",
            allowed_from=(from_state,),
            changes={"merge_sha": merge_sha},
        )
        ctx.reporter.step(proposal_id, f"merged into {main} ({merge_sha[:10]}){moved}")
        return merge_sha

    def incident_changed(self, incident_id: int, *, resolved: bool, detail: str) -> None:
        return None  # nobody to tell: the CLI shows the incident as it is

    def reconcile(self, proposal_id: int, actions: ReviewActions) -> Reconciled:
        state = actions.state(proposal_id).value
        return Reconciled(proposal_id, None, state, ("no forge: nothing to reconcile",))

    def sync(self, actions: ReviewActions) -> list[Reconciled]:
        return []

    def open_change(
        self, branch: str, *, title: str, body: str, labels: tuple[str, ...]
    ) -> str | None:
        return None

    def share_branch(self, branch: str) -> None:
        return None

    def share_main(self) -> None:
        return None

    def refresh_main(self) -> None:
        return None


def _moved_past(ctx: Context, branch: str, commit: str) -> str:
    """What to add when ``branch`` no longer points at the commit that was checked."""
    tip = ctx.repo.head(branch) if ctx.repo.ref_exists(branch) else None
    if tip == commit:
        return ""
    now = f"is now {tip[:10]}" if tip else "is gone"
    return (
        f"; its branch {now}, but the dry run and the gate saw {commit[:10]}: "
        f"that commit is what is merged, and nothing pushed on the branch since"
    )
