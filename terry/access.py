"""Who may do what: Terry's roles, the one permission table, and ``allowed``.

Every way in asks here (``terry serve``'s API and console through
``terry.service.auth``, the remote CLI through the API, chat through
``terry.chat.identity``, pull requests through ``terry.review.principals``), so a permission
is written once; a person holding roles in several tenants is judged by ``allowed_any``.
``docs/permissions.md`` repeats ``TABLE`` for people, and
``tests/integration/test_permissions.py`` parses that page and holds both the table and every
HTTP endpoint to it: the docs and the code cannot drift.

Roles, from least to most:

- ``viewer`` reads: the JSON API, ``/metrics``, the console's pages.
- ``operator`` also approves, rejects and applies proposals up to ``medium`` risk, rolls
  back any (undoing is what an operator on call must always be able to do), and asks Terry
  to retry an incident (a new proposal goes through the gate like any other).
- ``admin`` does everything an operator does at any risk, and manages configuration and
  API tokens.
- ``alertmanager`` (the webhook's token) posts alerts and does nothing else.

A principal holds one role in one tenant (``"*"``: every tenant). An action that names no
tenant is allowed only to principals of every tenant: a token limited to one tenant is
refused rather than shown the others' work, except where reading filters by tenant
(``terry.tenants.scope``, docs/permissions.md): the JSON API's incidents and proposals with
their explain and job, the console's pages and forms, and the drift and weekly reports
(``terry.reports.scoped``), each cut to the tenant's hosts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ANY_TENANT",
    "RISKS",
    "TABLE",
    "Action",
    "Decision",
    "Principal",
    "Role",
    "act_as",
    "actors_in",
    "allowed",
    "allowed_any",
    "identities_of",
    "may",
]

ANY_TENANT = "*"
RISKS = ("low", "medium", "high")  # as the catalogue's remedies declare them, least first
_ANY = "any"  # a rule with no risk limit
_TENANT = re.compile(r"^(\*|[a-z0-9][a-z0-9_.-]{0,62})$")
# How the interfaces write who acted (the audit's actor): chat's "slack:U456 (alice)" and
# tokens' "alice (token tk_0a1b2c3d)", "api:alice (token ...)", "console:alice (token ...)".
_CHAT_ACTOR = re.compile(
    r"(?P<kind>slack|discord):(?:[^\s/()]+/)?(?P<id>[^\s/()]+) \((?P<name>[^()]+)\)"
)
_TOKEN_ACTOR = re.compile(r"(?:(?:console|api):)?(?P<name>[^\s()]+) \(token [^()]*\)")
# An admin acting as someone else (``--as``, the API's ``"as"``): "bob (by ada)",
# "api:bob (by ada (token tk_0a1b2c3d))". Both are named: who the audit says, who acted.
_ON_BEHALF = re.compile(r"(?:(?:console|api):)?(?P<named>[^\s()]+) \(by (?P<by>.+)\)")
# A name ``--as`` may give: no spaces or parentheses, so an actor string parses one way.
_AS_NAME = re.compile(r"[^\s()]{1,64}")


class Role(StrEnum):
    ALERTMANAGER = "alertmanager"
    VIEWER = "viewer"
    READER = "viewer"  # the old name of a viewer (TERRY_READ_TOKENS' readers): the same role
    OPERATOR = "operator"
    ADMIN = "admin"


class Action(StrEnum):
    INGEST = "ingest"  # post alerts (the webhook)
    READ = "read"  # the JSON API, /metrics, the console's pages
    APPROVE = "approve"
    REJECT = "reject"
    APPLY = "apply"
    ROLLBACK = "rollback"
    RETRY = "retry"  # an incident whose proposal ended unfixed: diagnose and propose again
    CONFIG = "config"  # change Terry's configuration
    TOKENS = "tokens"  # create, list and revoke API tokens


# The one table: what each role may do, and up to which risk ("any": no limit). What a
# role's row does not name, it may not do.
TABLE: dict[Role, dict[Action, str]] = {
    Role.ALERTMANAGER: {Action.INGEST: _ANY},
    Role.VIEWER: {Action.READ: _ANY},
    Role.OPERATOR: {
        Action.READ: _ANY,
        Action.APPROVE: "medium",
        Action.REJECT: "medium",
        Action.APPLY: "medium",
        Action.ROLLBACK: _ANY,
        Action.RETRY: _ANY,
    },
    Role.ADMIN: {
        Action.READ: _ANY,
        Action.APPROVE: _ANY,
        Action.REJECT: _ANY,
        Action.APPLY: _ANY,
        Action.ROLLBACK: _ANY,
        Action.RETRY: _ANY,
        Action.CONFIG: _ANY,
        Action.TOKENS: _ANY,
    },
}


@dataclass(frozen=True)
class Principal:
    """Who asks: a name to log and to decide by, never the credential.

    ``token_id`` names the API token that acted (``tk_...``, not secret), None for a token
    from the environment; ``actor`` is how the audit log names them."""

    name: str
    role: Role
    tenant: str = ANY_TENANT
    token_id: str | None = None
    anonymous: bool = False

    @property
    def actor(self) -> str:
        return f"{self.name} (token {self.token_id})" if self.token_id else self.name


@dataclass(frozen=True)
class Decision:
    """``allowed``'s answer: whether, and why (a sentence a person can act on)."""

    ok: bool
    reason: str

    def __bool__(self) -> bool:
        return self.ok


def valid_tenant(tenant: str) -> bool:
    return bool(_TENANT.fullmatch(tenant))


def allowed(
    principal: Principal, action: Action, *, risk: str | None = None, tenant: str | None = None
) -> Decision:
    """Whether ``principal`` may do ``action`` (on a proposal of ``risk``, in ``tenant``).

    A risk Terry does not know is treated as the highest; an anonymous principal (an open
    role under ``--insecure-no-auth``) is judged by its role like any other."""
    who = f"{principal.actor} ({principal.role})"
    limit = TABLE.get(principal.role, {}).get(action)
    if limit is None:
        return Decision(False, f"{who} may not {action}: the {principal.role} role does not")
    if principal.tenant != ANY_TENANT:
        if tenant is None:
            return Decision(
                False,
                f"{who} may {action} only in tenant {principal.tenant!r}, and this is not "
                "limited to one tenant",
            )
        if tenant != principal.tenant:
            return Decision(
                False, f"{who} may {action} only in tenant {principal.tenant!r}, not {tenant!r}"
            )
    if limit != _ANY and risk is not None:
        rank = RISKS.index(risk) if risk in RISKS else len(RISKS)
        if rank > RISKS.index(limit):
            return Decision(
                False,
                f"{who} may {action} proposals up to {limit} risk; this one is {risk} "
                "(an admin must)",
            )
    return Decision(True, f"{who} may {action}")


def allowed_any(
    principals: Iterable[Principal],
    action: Action,
    *,
    risk: str | None = None,
    tenants: Iterable[str] = (),
    nobody: str = "nobody may act without a role",
) -> Decision:
    """``allowed`` for someone who holds several principals (a role in each of their
    tenants, as chat and forge identities do), on a proposal of ``risk`` touching
    ``tenants`` (none: hosts of no tenant): yes when one principal may in one tenant. Else
    the refusal that says most: the risk limit's, the role's, then another tenant's;
    ``nobody`` when there is no principal at all."""
    held = list(principals)
    if not held:
        return Decision(False, nobody)
    refusals: list[Decision] = []
    for principal in held:
        for tenant in sorted(set(tenants)) or [None]:
            decision = allowed(principal, action, risk=risk, tenant=tenant)
            if decision:
                return decision
            refusals.append(decision)

    # Most telling first: a role that may, but not at this risk; then a role that may not;
    # then another tenant's.
    def telling(d: Decision) -> int:
        return 0 if "an admin must" in d.reason else 1 if "role does not" in d.reason else 2

    return min(refusals, key=telling)


def may(role: Role, action: Action) -> str | None:
    """What the table says for ``role`` and ``action``: ``"any"``, the highest risk, or None
    (not allowed). For the docs' table and its test."""
    return TABLE.get(role, {}).get(action)


def act_as(caller: str, named: str | None, *, admin: bool) -> Decision:
    """Whether ``caller`` may be recorded as ``named`` (``--as NAME``): yes for themselves
    (or no name given), and for anyone when ``caller`` is an admin; nobody else may put
    another person's name in the audit. ``caller`` is the token's user (``terry serve``) or
    the local caller (``TERRY_ACTOR``, terry.yml's ``actor``, git's ``user.name``, the
    login); ``admin`` is the token's role, or terry.yml's ``admins`` naming the caller."""
    if named is None or named == caller:
        return Decision(True, f"{caller} acts as themselves")
    if not _AS_NAME.fullmatch(named):
        return Decision(
            False, f"--as takes a name (1 to 64 characters, no spaces or brackets): {named[:64]!r}"
        )
    if admin:
        return Decision(True, f"{caller} (an admin) may act as {named}")
    return Decision(
        False,
        f"{caller} may not act as {named!r}: only an admin may name someone else with --as "
        "(set TERRY_ACTOR to who you are instead)",
    )


def actors_in(actor: str) -> tuple[str, ...]:
    """The actors one audit actor string names: itself, or, for an admin acting as someone
    else, the one named and the one who acted (``api:bob (by ada (token tk_…))`` is
    ``bob`` and ``ada (token tk_…)``). Whoever is named in a decision took part in it:
    separation of duties asks about each."""
    text = actor.strip()
    if behalf := _ON_BEHALF.fullmatch(text):
        return (behalf["named"], *actors_in(behalf["by"]))
    return (text,)


def identities_of(actor: str) -> frozenset[str]:
    """The identities an audit actor names, written as a tenant's members are (``kind:name``):
    ``slack:U456 (alice)`` is ``slack:U456`` and ``user:alice``; ``api:alice (token tk_…)``
    is ``user:alice``. A plain name (a GitHub login, ``--as``) is matched by the name itself;
    an actor of another form names nobody here, nor does one acting as another
    (``actors_in``): a grant (a tenant's approval) is not given in someone else's name;
    a refusal (separation of duties) asks about both."""
    text = actor.strip()
    if chat := _CHAT_ACTOR.fullmatch(text):
        found = {f"{chat['kind']}:{chat['id']}"}
        if chat["name"] != "unmapped":
            found.add(f"user:{chat['name'].strip()}")
        return frozenset(found)
    if token := _TOKEN_ACTOR.fullmatch(text):
        return frozenset({f"user:{token['name']}"})
    return frozenset()
