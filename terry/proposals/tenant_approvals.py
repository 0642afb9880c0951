"""One approval per tenant: a proposal that touches hosts of several tenants (or of one whose
settings ask a reviewer) merges only once a person of each has approved (docs/tenants.md).

Each tenant's approval is an audit row (entity ``tenant_approval``, the proposal's id, the
approver as actor, the tenant as reason), written only while the proposal awaits review. The
approval that completes the set is the one that merges; until then ``ApprovalPending`` says
who approved for which tenant and which tenants are still missing.

Who may approve for a tenant is ``Tenant.may_approve``: its listed members and reviewers,
and, when the approval comes with a ``TeamCheck`` (review on GitHub hands in the forge's
team membership), the members of the ``github_team``s it names. A membership GitHub cannot
tell counts as no, and the refusal says why.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select

from terry.errors import StateError
from terry.store import Store
from terry.store.audit import audit
from terry.store.models import AuditRow, ProposalRow
from terry.tenants.model import TeamCheck, Tenants

__all__ = [
    "ENTITY",
    "ApprovalPending",
    "TenantApprovals",
    "present",
    "record_tenant_approval",
]

ENTITY = "tenant_approval"
_APPROVED = "approved"


class ApprovalPending(StateError):
    """The approval was recorded for some tenants; others must still approve. The CLI says
    so and succeeds; the API and the console answer 409 with this message."""


@dataclass(frozen=True)
class TenantApprovals:
    required: tuple[str, ...]
    approved: dict[str, str]  # tenant -> who approved for it

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(t for t in self.required if t not in self.approved)


def present(store: Store, proposal_id: int) -> dict[str, str]:
    """The tenants that approved ``proposal_id``, and who approved for each (the first)."""
    with store.session() as session:
        rows = session.execute(
            select(AuditRow.reason, AuditRow.actor)
            .where(AuditRow.entity == ENTITY, AuditRow.entity_id == proposal_id)
            .order_by(AuditRow.id)
        ).all()
    found: dict[str, str] = {}
    for tenant, actor in rows:
        found.setdefault(tenant, actor)
    return found


def record_tenant_approval(
    store: Store,
    proposal_id: int,
    *,
    tenancy: Tenants,
    required: Collection[str],
    actor: str,
    risk: str,
    teams: TeamCheck | None = None,
) -> TenantApprovals:
    """Record ``actor``'s approval for every missing tenant they may approve for; the
    approvals then. Raises ``StateError`` when they may approve for none of the missing ones
    and ``ApprovalPending`` when some tenant still has to approve. ``teams``: GitHub's team
    membership, so a ``github_team`` member approves for the tenant (None: names only)."""
    ordered = tuple(sorted(required))
    approved = present(store, proposal_id)
    missing = [t for t in ordered if t not in approved]
    # A forge names every approver of a pull request at once ("alice, bob").
    people = [p.strip() for p in actor.split(",") if p.strip()] or [actor]
    counts_for: dict[str, str] = {}  # tenant -> the person who approves for it
    refusals: list[str] = []
    for name in missing:
        tenant = tenancy.tenants.get(name)
        for person in people:
            ok, why = (
                (True, "") if tenant is None else tenant.may_approve(person, risk=risk, teams=teams)
            )
            if ok:
                counts_for[name] = person
                break
            refusals.append(why)
    if missing and not counts_for:
        raise StateError(
            f"cannot approve proposal {proposal_id} for tenant(s) {', '.join(missing)}: "
            + "; ".join(refusals)
            + _already(approved)
        )
    if counts_for:
        with store.session() as session:
            row = session.get(ProposalRow, proposal_id)
            if row is None or row.state != "awaiting_review":
                raise StateError(
                    f"cannot approve proposal {proposal_id}: it is not awaiting review"
                )
            for name, person in counts_for.items():
                audit(
                    session,
                    entity=ENTITY,
                    entity_id=proposal_id,
                    actor=person,
                    from_state=None,
                    to_state=_APPROVED,
                    reason=name,
                )
        approved = present(store, proposal_id)
    result = TenantApprovals(ordered, approved)
    if result.missing:
        done = ", ".join(f"{t} (by {approved[t]})" for t in ordered if t in approved)
        raise ApprovalPending(
            f"approval recorded for tenant(s) {', '.join(counts_for)} by {actor}; proposal "
            f"{proposal_id} still needs an approval from tenant(s) "
            f"{', '.join(result.missing)} before it merges (approved so far: {done}); a member "
            f"or reviewer of each approves it as themselves"
        )
    return result


def _already(approved: dict[str, str]) -> str:
    if not approved:
        return ""
    return " (approved so far: " + ", ".join(f"{t} by {a}" for t, a in approved.items()) + ")"
