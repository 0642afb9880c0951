"""The review seam: what happens to a proposal the gate has judged.

``Review`` has two implementations: ``LocalReview`` (merge at once; a person approves or
rejects with the CLI) and ``GitHubReview`` (a pull request; what people do there moves the
proposal). Review also knows where commits are shared (``Share``): locally nowhere, on a
forge by pushing, so an applier that reads git from the forge (Argo CD) finds them.

What a review implementation may ask of the pipeline when a person acts on the forge is
``ReviewActions``, passed in by the pipeline itself when it asks for a reconcile; review
never imports the pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from terry.gitops.messages import decision_trailers, one_line
from terry.proposals.state import ProposalState, get
from terry.store import Store

__all__ = ["Reconciled", "Review", "ReviewActions", "merge_trailers"]


@dataclass(frozen=True)
class Reconciled:
    proposal_id: int
    pr_number: int | None
    state: str
    notes: tuple[str, ...]
    error: str | None = None  # the forge refused or was unreachable; the next sync tries again


class ReviewActions(Protocol):
    """The pipeline's verbs a person's action on a forge turns into."""

    def approve(self, proposal_id: int, *, actor: str, apply: bool = True) -> None: ...

    def record_approval(self, proposal_id: int, *, actor: str, reason: str) -> None: ...

    def apply(self, proposal_id: int, *, actor: str) -> ProposalState: ...

    def reject(self, proposal_id: int, *, actor: str, reason: str) -> None: ...

    def rollback(self, proposal_id: int, *, actor: str) -> ProposalState: ...

    def state(self, proposal_id: int) -> ProposalState: ...


class Review(Protocol):
    name: str  # "local" or the forge's name

    def request(self, proposal_id: int, *, reason: str, changes: Mapping[str, object]) -> None:
        """The gate said review: wait for a person (and show them the proposal)."""
        ...

    def merge(self, proposal_id: int, *, actor: str, reason: str, from_state: ProposalState) -> str:
        """Merge the proposal's branch into main; the merge commit's sha."""
        ...

    def incident_changed(self, incident_id: int, *, resolved: bool, detail: str) -> None: ...

    def reconcile(self, proposal_id: int, actions: ReviewActions) -> Reconciled: ...

    def sync(self, actions: ReviewActions) -> list[Reconciled]: ...

    def open_change(
        self, branch: str, *, title: str, body: str, labels: tuple[str, ...]
    ) -> str | None:
        """Show a change that is no proposal (a policy edit) for review: its pull request's
        address, or None where review is local (the branch is there to merge by hand)."""
        ...

    def share_branch(self, branch: str) -> None: ...

    def share_main(self) -> None: ...

    def refresh_main(self) -> None: ...


def merge_trailers(store: Store, proposal_id: int) -> str:
    """The merge commit's trailers: the proposal, the gate's verdict, who approved."""
    with store.session() as session:
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
