"""Tenants as typed values, and which tenant a host is in (``Tenants.tenant_of``).

Placement: a host's explicit ``terry_tenant`` in the inventory wins (the inventory names it,
a person decided); otherwise the tenants whose selectors match it. A selector matches a
host by any of its kinds: a host pattern (fnmatch on the inventory name or ``ansible_host``),
an inventory group, or every listed label. A host two tenants' selectors match, with no
``terry_tenant``, is in both: the gate asks each for approval, and ``terry inventory
validate`` reports it.

Who holds a role in a tenant (``Tenant.standing``): its listed members and reviewers, and,
when the caller hands in a ``TeamCheck`` (the forge's team membership; only terry.review
has one), a GitHub login that is an active member of a ``github_team`` the tenant names.
The check is a callable so this layer never imports the forge: a membership it cannot tell
raises ``TerryError``, which counts as no and is said in the refusal.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from terry.access import RISKS, Action, Principal, Role, allowed, identities_of
from terry.errors import TerryError
from terry.inventory.hosts import Host

__all__ = [
    "IdentityKind",
    "Member",
    "Permission",
    "Placement",
    "Selector",
    "Standing",
    "TeamCheck",
    "Tenant",
    "Tenants",
    "github_login",
]

# (org/team, login) -> is the login an active member of the team? Raises TerryError when
# the forge cannot say (unreachable, refused, rate limited): the caller counts that as no.
TeamCheck = Callable[[str, str], bool]

_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}
# GitHub's login rules: letters, digits and single hyphens, at most 39, no leading hyphen.
_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")


def github_login(actor: str) -> str | None:
    """The GitHub login ``actor`` names: ``github:octo`` or a plain login-shaped name (how
    a pull request's approvers and ``--as`` are written); None for chat's and tokens'
    actor forms, which name a chat id or a Terry user, never a login."""
    name = actor.strip()
    if name.startswith(f"{IdentityKind.GITHUB.value}:"):
        name = name.partition(":")[2]
    return name if _LOGIN.fullmatch(name) else None


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
class Standing:
    """``actor``'s role in one tenant (None: none), and what GitHub said of its teams."""

    role: Role | None
    declined: tuple[str, ...] = ()  # teams GitHub says the login is not an active member of
    unknown: tuple[str, ...] = ()  # memberships GitHub could not tell, each with why

    def detail(self) -> str:
        """The teams' part of a refusal, each part after "; " ("" when no team was asked)."""
        said: list[str] = []
        if self.declined:
            said.append(
                "GitHub says they are not an active member of team "
                + ", ".join(self.declined)
                + " (or the token cannot see it)"
            )
        said += [f"{u}: counted as no" for u in self.unknown]
        return "".join(f"; {s}" for s in said)


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
        """``actor``'s role as a listed member or reviewer (teams: ``standing``)."""
        for member in self.members:
            if member.is_(actor):
                return member.role
        if any(r.is_(actor) for r in self.reviewers):
            return Role.OPERATOR
        return None

    def standing(self, actor: str, teams: TeamCheck | None = None) -> Standing:
        """``actor``'s highest role here: as a listed member or reviewer, or, given
        ``teams`` and an actor that is a GitHub login, as an active member of a
        ``github_team`` member (its role) or reviewer (an operator). A membership the
        forge cannot tell counts as no and is kept, with why, for the refusal."""
        roles = [r for r in (self.role_of(actor),) if r is not None]
        login = github_login(actor) if teams is not None else None
        declined: list[str] = []
        unknown: list[str] = []
        if teams is not None and login is not None:
            named = [(m, m.role) for m in self.members] + [
                (r, Role.OPERATOR) for r in self.reviewers
            ]
            for member, role in named:
                if member.kind is not IdentityKind.GITHUB_TEAM:
                    continue
                try:
                    if teams(member.name, login):
                        roles.append(role)
                    else:
                        declined.append(member.name)
                except TerryError as exc:
                    unknown.append(
                        f"GitHub could not say whether {login} is in team {member.name}: {exc}"
                    )
        role = max(roles, key=lambda r: _RANK.get(r, -1)) if roles else None
        return Standing(role, tuple(declined), tuple(unknown))

    def may_approve(
        self, actor: str, *, risk: str, teams: TeamCheck | None = None
    ) -> tuple[bool, str]:
        """Whether ``actor`` approves for this tenant a proposal of ``risk``, and why not.

        The role's limits are terry.access's one table (an operator up to medium risk);
        ``teams`` lets a ``github_team`` member approve (``standing``)."""
        if self.open:
            return True, f"tenant {self.name} names no members: anyone may approve for it"
        standing = self.standing(actor, teams)
        if standing.role is None:
            return (
                False,
                f"{actor} is not a member or reviewer of tenant {self.name}{standing.detail()}",
            )
        decision = allowed(
            Principal(actor, standing.role, self.name), Action.APPROVE, risk=risk, tenant=self.name
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
