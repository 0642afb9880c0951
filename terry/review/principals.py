"""Who acts on a pull request, as ``terry.access`` principals, and whether they may.

A GitHub login holds a role from two places, and both count:

- ``forge.github.allowed_users`` in ``terry.yml``: what it meant before roles, approving
  and rolling back at any risk in every tenant (the admin row of the table);
- the tenants' members and reviewers on main (``policies/tenants.yml``): ``{github: login,
  role: R}`` is role R in that tenant; ``{github_team: org/team, role: R}`` too when GitHub
  says the login is an active member of the team (``GitHubForge.in_team``); a reviewer
  approves as an operator (``Tenant.standing``). A membership GitHub cannot tell (a 403, a
  5xx, unreachable) counts as no, and the refusal says why.

Every ``/terry`` command, every approving review and every merge by a person is then
``terry.access.allowed_any`` with the proposal's risk and tenants (its hosts' tenants on
main): the check the API, the console and chat make. The bot itself holds no role.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from terry.access import ANY_TENANT, Action, Decision, Principal, Role, allowed_any
from terry.config import Config
from terry.errors import ForgeError
from terry.inventory.hosts import Inventory
from terry.tenants.model import Standing, TeamCheck, Tenants

__all__ = ["PullAccess", "TeamCache", "TeamCheck", "principals_of", "standing_of"]

log = logging.getLogger("terry.review")

_TEAM_SECONDS = 300.0  # how long a team membership GitHub told is trusted


class TeamCache:
    """``GitHubForge.in_team`` remembered for a few minutes (one question per person and
    team, not one per reconcile). A failure is not remembered: it is logged and raised
    again, and the tenant that asked counts it as no and says why (``Tenant.standing``)."""

    def __init__(self, ask: TeamCheck, *, seconds: float = _TEAM_SECONDS) -> None:
        self._ask = ask
        self._seconds = seconds
        self._lock = threading.Lock()
        self._known: dict[tuple[str, str], tuple[float, bool]] = {}

    def __call__(self, team: str, login: str) -> bool:
        key = (team.lower(), login.lower())
        now = time.monotonic()
        with self._lock:
            seen = self._known.get(key)
        if seen is not None and now - seen[0] < self._seconds:
            return seen[1]
        try:
            member = self._ask(team, login)
        except ForgeError as exc:
            log.warning("team %s: %s's membership unknown, counted as no: %s", team, login, exc)
            raise
        with self._lock:
            self._known[key] = (now, member)
        return member


def principals_of(
    config: Config, login: str, tenancy: Tenants | None, in_team: TeamCheck
) -> tuple[Principal, ...]:
    """The principals GitHub user ``login`` holds (see the module's docstring)."""
    return standing_of(config, login, tenancy, in_team)[0]


def standing_of(
    config: Config, login: str, tenancy: Tenants | None, in_team: TeamCheck
) -> tuple[tuple[Principal, ...], str]:
    """``principals_of``, and what GitHub said of the tenants' teams for a refusal: the
    teams it says ``login`` is not in, and the memberships it could not tell, with why."""
    found: list[Principal] = []
    if login in config.forge.github.allowed_users:  # as before roles: any risk, any tenant
        found.append(Principal(login, Role.ADMIN, ANY_TENANT))
    declined: list[str] = []
    unknown: list[str] = []
    for tenant in tenancy.tenants.values() if tenancy else ():
        standing = tenant.standing(f"github:{login}", in_team)
        declined += [t for t in standing.declined if t not in declined]
        unknown += [u for u in standing.unknown if u not in unknown]
        if standing.role is not None:
            found.append(Principal(login, standing.role, tenant.name))
    return tuple(found), Standing(None, tuple(declined), tuple(unknown)).detail()


@dataclass(frozen=True)
class PullAccess:
    """What a pull request's proposal is, for judging who may act on it."""

    risk: str
    tenants: frozenset[str]
    tenancy: Tenants | None

    @classmethod
    def of(
        cls, hosts: list[str], risk: str, tenancy: Tenants | None, inventory: Inventory
    ) -> PullAccess:
        found: set[str] = set()
        for name in hosts:
            host = inventory.hosts.get(name)
            if host is not None and tenancy is not None:
                found.update(tenancy.tenants_of(host))
        return cls(risk, frozenset(found), tenancy)

    def decide(self, config: Config, login: str, action: Action, in_team: TeamCheck) -> Decision:
        """Whether ``login`` may ``action`` this proposal, and why not."""
        principals, teams = standing_of(config, login, self.tenancy, in_team)
        risk = self.risk if action in (Action.APPROVE, Action.REJECT, Action.APPLY) else None
        decision = allowed_any(
            principals,
            action,
            risk=risk,
            tenants=self.tenants,
            nobody=(
                f"{login} is not allowed to {action} Terry's changes: not in "
                "forge.github.allowed_users, and no tenant of this proposal names them "
                "(github: or github_team: members in policies/tenants.yml)"
            ),
        )
        return decision if decision or not teams else Decision(False, decision.reason + teams)
