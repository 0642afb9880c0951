"""The review seam: what happens to a proposal the gate has judged.

``Review`` has two implementations: ``LocalReview`` (merge at once; a person approves or
rejects with the CLI) and ``GitHubReview`` (a pull request; what people do there moves the
proposal). Review also knows where commits are shared (``Share``): locally nowhere, on a
forge by pushing, so an applier that reads git from the forge (Argo CD) finds them.

What a review implementation may ask of the pipeline when a person acts on the forge is
``ReviewActions``, passed in by the pipeline itself when it asks for a reconcile; review
never imports the pipeline.

A person can put on main what no dry run or gate saw: merging a pull request whose head
moved after the dry run, or one nobody allowed approved. Terry then applies none of it, and
records the merge as an *ungated change on main* (``record_ungated``): an incident kept for a
person, which the apply step reads (``ungated_on_main``) to refuse applying any commit that
contains it until main, as it now is, has been re-checked (``ReviewActions.recheck_main``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select

from terry.gitops.messages import decision_trailers, one_line
from terry.incidents import lifecycle as incidents
from terry.proposals.state import ProposalState, get
from terry.store import Store
from terry.store.models import IncidentRow

__all__ = [
    "UNGATED_SOURCE",
    "Reconciled",
    "Review",
    "ReviewActions",
    "Ungated",
    "merge_trailers",
    "record_ungated",
    "ungated_on_main",
]

UNGATED_SOURCE = "forge"  # the incidents' source: what a person did on the forge
_UNGATED = "ungated:"  # fingerprint prefix, then the merge commit


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

    def merge_approved(self, proposal_id: int, *, actor: str, reason: str) -> str:
        """Merge a proposal approved before whose merge did not happen; the merge commit."""
        ...

    def apply(self, proposal_id: int, *, actor: str) -> ProposalState: ...

    def reject(self, proposal_id: int, *, actor: str, reason: str) -> None: ...

    def rollback(self, proposal_id: int, *, actor: str) -> ProposalState: ...

    def state(self, proposal_id: int) -> ProposalState: ...

    def recheck_main(self, incident_id: int) -> int | None:
        """Propose a re-check of main as it now is for an ungated change (a dry run and a
        decision); the proposal's id, or None when one is already under way."""
        ...


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


@dataclass(frozen=True)
class Ungated:
    """A merge on main that no dry run and gate saw, not yet re-checked."""

    incident_id: int
    commit: str
    detail: str


def record_ungated(
    store: Store, *, commit: str, detail: str, labels: Mapping[str, str], holder: str
) -> int:
    """Record that main holds ``commit``, which nobody gated: an open incident (one per
    commit, kept for a person) until a re-check of main is verified. Its id."""
    fingerprint = f"{_UNGATED}{commit}"
    with store.session() as session:
        found = session.scalar(
            select(IncidentRow.id).where(
                IncidentRow.fingerprint == fingerprint,
                IncidentRow.state == str(incidents.IncidentState.OPEN),
            )
        )
    if found is not None:
        return int(found)
    incident_id = incidents.open_incident(
        store,
        source=UNGATED_SOURCE,
        fingerprint=fingerprint,
        title=f"Ungated change on main: {commit[:12]}",
        host=None,
        labels={"alertname": "UngatedChangeOnMain", **labels, "commit": commit},
        annotations={"summary": detail[:1000]},
        holder=holder,
    )
    incidents.mark_diagnosed(store, incident_id)
    incidents.set_attention(
        store,
        incident_id,
        f"main holds {commit[:12]}, which no dry run or gate saw ({detail[:300]}); nothing "
        "that contains it is applied until a re-check of main is approved and verified",
    )
    return incident_id


def ungated_on_main(store: Store) -> list[Ungated]:
    """Every ungated change on main not re-checked yet, oldest first."""
    with store.session() as session:
        rows = session.execute(
            select(IncidentRow.id, IncidentRow.fingerprint, IncidentRow.annotations)
            .where(
                IncidentRow.source == UNGATED_SOURCE,
                IncidentRow.state == str(incidents.IncidentState.OPEN),
                IncidentRow.fingerprint.startswith(_UNGATED, autoescape=True),
            )
            .order_by(IncidentRow.id)
        ).all()
    return [
        Ungated(
            int(r.id),
            r.fingerprint[len(_UNGATED) :],
            str((r.annotations or {}).get("summary") or ""),
        )
        for r in rows
    ]
