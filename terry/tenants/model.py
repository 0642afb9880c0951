"""Tenants as typed values, and which tenant a host is in (``Tenants.tenant_of``).

Placement: a host's explicit ``terry_tenant`` in the inventory wins (the inventory names it,
a person decided); otherwise the tenants whose selectors match it. A selector matches a
host by any of its kinds: a host pattern (fnmatch on the inventory name or ``ansible_host``),
an inventory group, or every listed label. A host two tenants' selectors match, with no
``terry_tenant``, is in both: the gate asks each for approval, and ``terry inventory
validate`` reports it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from terry.access import RISKS, Action, Principal, Role, allowed, identities_of
from terry.inventory.hosts import Host

__all__ = [
    "IdentityKind",
    "Member",
    "Permission",
    "Placement",
    "Selector",
    "Tenant",
    "Tenants",
]


class Permission(StrEnum):
    READ = "read"  # Terry diagnoses and reports on the tenant's hosts
    WRITE = "write"  # Terry may change them (through review)
    AUTO_RESOLVE = "auto-resolve"  # ... and merge a fix the policy allows on its own
    MANUAL_APPROVAL_ONLY = "manual-approval-only"  # every change waits for a person


class IdentityKind(StrEnum):
    USER = "user"  # a Terry user: the name the audit log records (--as, a token's user)
    GITHUB = "github"  # a GitHub login
    GITHUB_TEAM = "github_team"  # org/team, resolved by the forge
    SLACK = "slack"  # a Slack user id
    DISCORD = "discord"  # a Discord user id


@dataclass(frozen=True)
class Member:
    kind: IdentityKind
    name: str
    role: Role = Role.VIEWER

    @property
    def identity(self) -> str:
        return f"{self.kind.value}:{self.name}"

    def is_(self, actor: str) -> bool:
        """Whether ``actor`` (an audit-log name or ``kind:name``) is this member."""
        if actor == self.identity:
            return True
        if self.kind in (IdentityKind.USER, IdentityKind.GITHUB) and actor == self.name:
            return True
        return self.identity in identities_of(actor)  # chat's and tokens' actor forms


@dataclass(frozen=True)
class Selector:
    hosts: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    def matches(self, host: Host) -> bool:
        names = [host.name, *([host.address] if host.address else [])]
        if any(fnmatch.fnmatchcase(n, p) for p in self.hosts for n in names):
            return True
        if any(g in host.groups for g in self.groups):
            return True
        return bool(self.labels) and all(host.labels.get(k) == v for k, v in self.labels.items())


@dataclass(frozen=True)
class Tenant:
    name: str
    selector: Selector
    permissions: frozenset[Permission]
    can_auto_resolve: bool
    approval_threshold: str  # low | medium | high: this risk and above needs a reviewer
    members: tuple[Member, ...] = ()
    reviewers: tuple[Member, ...] = ()  # may approve for the tenant (as operators)
    routes: tuple[str, ...] = ()  # names of notifications.routes in terry.yml

    @property
    def open(self) -> bool:
        """Names nobody: anyone who may approve at all approves for it."""
        return not self.members and not self.reviewers

    def role_of(self, actor: str) -> Role | None:
        for member in self.members:
            if member.is_(actor):
                return member.role
        if any(r.is_(actor) for r in self.reviewers):
            return Role.OPERATOR
        return None

    def may_approve(self, actor: str, *, risk: str) -> tuple[bool, str]:
        """Whether ``actor`` approves for this tenant a proposal of ``risk``, and why not.

        The role's limits are terry.access's one table (an operator up to medium risk)."""
        if self.open:
            return True, f"tenant {self.name} names no members: anyone may approve for it"
        role = self.role_of(actor)
        if role is None:
            return False, f"{actor} is not a member or reviewer of tenant {self.name}"
        decision = allowed(
            Principal(actor, role, self.name), Action.APPROVE, risk=risk, tenant=self.name
        )
        return decision.ok, decision.reason

    def settings(self) -> dict[str, Any]:
        """What the gate sees of this tenant (``input.tenant_settings``, docs/policy.md)."""
        return {
            "defined": True,
            "can_auto_resolve": self.can_auto_resolve,
            "approval_threshold": self.approval_threshold,
            "permissions": sorted(p.value for p in self.permissions),
            "reviewers": sorted(
                {m.identity for m in self.reviewers}
                | {m.identity for m in self.members if m.role in (Role.OPERATOR, Role.ADMIN)}
            ),
        }


# What the gate sees of a tenant a host names (terry_tenant) that the file does not define:
# nothing merges there on its own.
UNDEFINED_SETTINGS: dict[str, Any] = {
    "defined": False,
    "can_auto_resolve": False,
    "approval_threshold": RISKS[0],
    "permissions": [],
    "reviewers": [],
}


@dataclass(frozen=True)
class Placement:
    """Where one host is: its tenants, and how it got there."""

    host: str
    tenants: tuple[str, ...]
    explicit: bool  # terry_tenant in the inventory


@dataclass(frozen=True)
class Tenants:
    tenants: Mapping[str, Tenant]
    source: str  # the file they came from, for messages

    def place(self, host: Host) -> Placement:
        if host.tenant:
            return Placement(host.name, (host.tenant,), True)
        found = tuple(sorted(n for n, t in self.tenants.items() if t.selector.matches(host)))
        return Placement(host.name, found, False)

    def tenants_of(self, host: Host) -> tuple[str, ...]:
        return self.place(host).tenants

    def tenant_of(self, host: Host) -> str | None:
        """The host's one tenant; None when it is in none, or in two (see ``place``)."""
        found = self.tenants_of(host)
        return found[0] if len(found) == 1 else None

    def settings(self, name: str) -> dict[str, Any]:
        tenant = self.tenants.get(name)
        return tenant.settings() if tenant else dict(UNDEFINED_SETTINGS)
