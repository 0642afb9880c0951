"""Who is asking from chat, as ``terry.access`` principals, and what they may see and do.

A chat user is known by the platform's ids (``slack:T123/U456``: the workspace and the user;
``discord:81234``: the user). Two places grant them roles, and both count:

- the tenants' members (``policies/tenants.yml`` on main: ``{slack: U456, role: operator}``,
  ``{discord: "81234", role: viewer}``, or ``{user: alice, ...}`` for the Terry identity
  ``chat.users`` maps them to): that role in that tenant;
- ``terry.yml``'s allow-list, meaning what it did before roles: an identity in
  ``chat.writers`` approves, rejects and rolls back at any risk in every tenant (the admin
  row of the table); one ``chat.users`` maps, not a writer and named by no tenant, is a
  viewer of every tenant.

Nobody else may do anything. Every write is then ``terry.access.allowed`` with the
proposal's risk and tenants (``ChatAccess.decide``), the very check the API, the console
and the forge make; reads are limited to the hosts of the person's tenants
(``ChatAccess.scope``, ``terry.tenants.scope``), so another tenant's host, incident or
proposal is answered as an unknown one.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from terry.access import ANY_TENANT, Action, Decision, Principal, Role, allowed_any
from terry.config import ChatConfig, Config
from terry.inventory.hosts import Inventory
from terry.tenants.model import Tenants
from terry.tenants.scope import EVERYTHING, Scope, visible_hosts

__all__ = ["ChatAccess", "ChatUser", "access_of", "tenants_of_hosts"]

_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}
_HINT = (
    "; approving, rejecting, rolling back and preventing are for operators (chat.writers "
    "in terry.yml, or a tenant's members with the operator role in policies/tenants.yml)"
)


@dataclass(frozen=True)
class ChatUser:
    """A person on a chat platform, as the signed request names them."""

    platform: str  # slack | discord
    user_id: str
    team_id: str = ""  # Slack's workspace; empty on Discord
    name: str | None = None  # the Terry identity chat.users maps them to

    @property
    def key(self) -> str:
        """The id ``chat.users`` is keyed by."""
        if self.platform == "slack":
            return f"slack:{self.team_id}/{self.user_id}"
        return f"{self.platform}:{self.user_id}"

    @property
    def identities(self) -> tuple[str, ...]:
        """How a tenant's members may name them (``kind:name``, as ``Member.identity``)."""
        found = [f"{self.platform}:{self.user_id}"]
        if self.team_id:
            found.append(self.key)
        if self.name:
            found.append(f"user:{self.name}")
        return tuple(found)

    @property
    def actor(self) -> str:
        """How the audit trail names them: ``slack:U456 (alice)``."""
        return f"{self.platform}:{self.user_id} ({self.name or 'unmapped'})"

    @classmethod
    def known(cls, config: ChatConfig, platform: str, user_id: str, team_id: str = "") -> ChatUser:
        user = cls(platform, user_id, team_id)
        return cls(platform, user_id, team_id, config.users.get(user.key))


@dataclass(frozen=True)
class ChatAccess:
    """A chat user's principals: one per tenant they hold a role in (``"*"``: every one)."""

    user: ChatUser
    principals: tuple[Principal, ...]

    @property
    def known(self) -> bool:
        return bool(self.principals)

    def refusal(self) -> str | None:
        """Why they may not use Terry at all; None when they may read something."""
        if self.principals:
            return None
        return (
            f"you are not a Terry user: ask an administrator to map {self.user.key} to your "
            "Terry identity under chat.users in terry.yml, or to name you as a member of "
            "your team's tenant in policies/tenants.yml"
        )

    def writes_anywhere(self) -> bool:
        """Whether some role of theirs changes anything (else a write is refused at once)."""
        return any(p.role is not Role.VIEWER for p in self.principals)

    def decide(self, action: Action, *, risk: str | None, tenants: Collection[str]) -> Decision:
        """``terry.access.allowed_any``: yes when one of their principals may ``action`` a
        proposal of ``risk`` in one of ``tenants`` (none: hosts of no tenant); else why."""
        refused = allowed_any(
            self.principals, action, risk=risk, tenants=tenants, nobody=self.refusal() or ""
        )
        if not refused and "role does not" in refused.reason:
            return Decision(False, refused.reason + _HINT)
        return refused

    def scope(self, tenancy: Tenants | None, inventory: Inventory) -> Scope:
        """The hosts they may read and act on: every host for a principal of every tenant,
        else those of their tenants (``terry.tenants.scope.visible_hosts``)."""
        if any(p.tenant == ANY_TENANT for p in self.principals):
            return EVERYTHING
        hosts: set[str] = set()
        for principal in self.principals:
            found = visible_hosts(principal, tenancy, inventory).hosts
            hosts |= set(found or ())
        return Scope(frozenset(hosts))


def access_of(config: Config, user: ChatUser, tenancy: Tenants | None) -> ChatAccess:
    """``user``'s principals from main's tenants and ``terry.yml``'s allow-list."""
    name = user.name or user.key
    best: dict[str, Role] = {}
    for tenant in tenancy.tenants.values() if tenancy else ():
        roles = [r for i in user.identities if (r := tenant.role_of(i)) in _RANK]
        if roles:
            best[tenant.name] = max(roles, key=_RANK.__getitem__)
    principals = [Principal(name, role, tenant) for tenant, role in sorted(best.items())]
    if user.name is not None:
        if user.name in config.chat.writers:  # as before roles: any risk, any tenant
            principals.insert(0, Principal(name, Role.ADMIN, ANY_TENANT))
        elif not best:
            principals.insert(0, Principal(name, Role.VIEWER, ANY_TENANT))
    return ChatAccess(user, tuple(principals))


def tenants_of_hosts(
    hosts: Iterable[str], tenancy: Tenants | None, inventory: Inventory
) -> frozenset[str]:
    """The tenants a proposal on ``hosts`` touches (main's inventory; unknown hosts: none)."""
    if tenancy is None:
        return frozenset()
    found: set[str] = set()
    for name in hosts:
        host = inventory.hosts.get(name) or inventory.find(name)
        if host is not None:
            found.update(tenancy.tenants_of(host))
    return frozenset(found)
