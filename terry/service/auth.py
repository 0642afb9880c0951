"""Who is asking ``terry serve``: its principals, and the one check every endpoint makes.

Principals, never interchangeable:

- Alertmanager, with the webhook's bearer token (the variable named by ``server.token_env``);
  it may only post alerts.
- People and scripts, each with a name, a role and a token of their own. Tokens come from
  the environment (``server.read_tokens_env``: viewers, ``server.operator_tokens_env``:
  operators; ``name:token`` entries, or ``@/path/to/file`` holding one a line) or from the
  store (``terry tokens create``: a role in a tenant, an expiry, revocable; only its digest
  is stored, ``terry.store.api_tokens``).

What a role may do is ``terry.access`` (``allowed``, the one permission table, also in
``docs/permissions.md``); ``may_act`` is its yes or no for the console.

``Authenticator.authenticate(request, role)`` is the only check: every route but ``/healthz``
and the signed webhooks goes through it (``terry.service.server`` wraps the routes, none checks
a header itself). ``role`` is what the route needs at the least (``viewer``: read; the
webhook's: post alerts). A request is known by its principal's ``actor`` ("alice (token
tk_0a1b2c3d)"), which is what is logged; a token never is. Environment tokens are compared as
SHA-256 digests with ``hmac.compare_digest``, against every one (no early exit); a stored
token is found by its id (its first 11 characters, not secret) and its digest compared. A
revoked or expired stored token is refused (401) and the log says which and why; while the
store cannot be read, a stored token is neither taken nor refused: the answer is 503.

Without a webhook token ``terry serve`` refuses to start unless the operator passes
``--insecure-no-auth``; then a role with no token configured in the environment accepts
anonymous requests, and ``/healthz`` and the log say so.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import HTTPConnection

from terry.access import Action, Decision, Principal, Role, allowed
from terry.config import Config
from terry.errors import ConfigError, StoreError, TerryError

if TYPE_CHECKING:
    from terry.store import Store

__all__ = [
    "Action",
    "Authenticator",
    "Decision",
    "Principal",
    "Role",
    "allowed",
    "may_act",
    "may_read",
    "parse_read_tokens",
]

log = logging.getLogger("terry.service.auth")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
MIN_READ_TOKEN = 16  # characters; `openssl rand -hex 16` gives 32
# What a route that names a role needs at the least (``authenticate``).
_DOOR = {
    Role.ALERTMANAGER: Action.INGEST,
    Role.VIEWER: Action.READ,
    Role.OPERATOR: Action.APPROVE,
    Role.ADMIN: Action.TOKENS,
}
_TOUCH_EVERY = 60.0  # seconds between two writes of a token's last_used_at
_WARN_EVERY = 60.0  # seconds between two log lines about the same refused token


@dataclass(frozen=True)
class _Credential:
    digest: bytes
    principal: Principal


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def parse_read_tokens(value: str, *, source: str) -> dict[str, str]:
    """``{name: token}`` from ``name:token`` entries separated by commas, spaces or lines
    (``#`` starts a comment line). Errors name the entry by its position and principal,
    never by its token."""
    tokens: dict[str, str] = {}
    seen: dict[str, str] = {}
    entries = [
        entry
        for line in value.splitlines()
        if not line.lstrip().startswith("#")
        for entry in re.split(r"[\s,]+", line)
        if entry
    ]
    for n, entry in enumerate(entries, 1):
        name, sep, token = entry.partition(":")
        if not sep or not _NAME.fullmatch(name):
            raise ConfigError(
                f"{source}: entry {n} is not NAME:TOKEN (a name of letters, digits, "
                "'_', '.', '@' or '-', then ':' and the token)"
            )
        if not token.isascii() or not token.isprintable():
            raise ConfigError(f"{source}: the token of {name!r} is not printable ASCII")
        if len(token) < MIN_READ_TOKEN:
            raise ConfigError(
                f"{source}: the token of {name!r} is shorter than {MIN_READ_TOKEN} characters"
            )
        if name in tokens:
            raise ConfigError(f"{source}: {name!r} is named twice")
        if token in seen:
            raise ConfigError(f"{source}: {name!r} and {seen[token]!r} have the same token")
        tokens[name] = token
        seen[token] = name
    return tokens


def may_act(principal: Principal, action: Action, *, risk: str | None = None) -> bool:
    """Whether ``principal`` may do ``action`` (``terry.access.allowed``): the console's yes
    or no. An anonymous principal (an open role) never acts in the console."""
    return not principal.anonymous and allowed(principal, action, risk=risk).ok


def may_read(principal: Principal) -> bool:
    """Whether ``principal`` may read the console: its role reads, in its own tenant (every
    page filters by that tenant, ``terry.tenants.scope``). Never an anonymous principal."""
    decision = allowed(principal, Action.READ, tenant=principal.tenant)
    return not principal.anonymous and decision.ok


def _read_tokens(
    config: Config, environ: Mapping[str, str], variable: str | None = None
) -> tuple[dict[str, str], str]:
    """The tokens the environment's ``variable`` names (default: the readers'), and where
    they came from (for messages)."""
    variable = variable or config.server.read_tokens_env
    value = environ.get(variable, "").strip()
    if not value.startswith("@"):
        return parse_read_tokens(value, source=f"${variable}"), f"${variable}"
    path = Path(value[1:]).expanduser()
    if not path.is_absolute():  # never a file in the repository, which is committed
        raise ConfigError(f"${variable}: the token file must be an absolute path (@/path)")
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"${variable}: cannot read the token file {path}: {exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("reader token file %s is readable by others than its owner (chmod 600)", path)
    return parse_read_tokens(text, source=str(path)), str(path)


class Authenticator:
    """The credentials ``terry serve`` accepts: the environment's, loaded once at start, and
    the store's API tokens, read as they are presented (a revocation counts at once)."""

    def __init__(
        self,
        *,
        webhook_token: str | None,
        readers: Mapping[str, str],
        insecure_no_auth: bool = False,
        readers_from: str = "",
        operators: Mapping[str, str] | None = None,
        store: Store | None = None,
    ) -> None:
        if not webhook_token and not insecure_no_auth:
            raise ConfigError(
                "no webhook token: set the variable named by server.token_env "
                "(TERRY_WEBHOOK_TOKEN by default), or pass --insecure-no-auth to accept "
                "alerts from anyone who can reach the port"
            )
        self._credentials: dict[Role, list[_Credential]] = {role: [] for role in Role}
        if webhook_token:
            self._credentials[Role.ALERTMANAGER].append(
                _Credential(_digest(webhook_token), Principal("alertmanager", Role.ALERTMANAGER))
            )
        for name, token in readers.items():
            self._credentials[Role.VIEWER].append(
                _Credential(_digest(token), Principal(name, Role.VIEWER))
            )
        for name, token in (operators or {}).items():
            self._credentials[Role.OPERATOR].append(
                _Credential(_digest(token), Principal(name, Role.OPERATOR))
            )
        self._store = store
        self._touched: dict[str, float] = {}  # token id -> when its last use was written
        self._warned: dict[str, float] = {}  # token id -> when its refusal was last logged
        # With --insecure-no-auth a role nobody holds a token for is open to anyone (never
        # the console's operators or admins: approving always takes a token).
        self._open = frozenset(
            role
            for role, held in self._credentials.items()
            if insecure_no_auth and not held and role in (Role.ALERTMANAGER, Role.VIEWER)
        )
        self.warnings: tuple[str, ...] = tuple(
            f"{_OPEN_WARNING[role]} (--insecure-no-auth)" for role in Role if role in self._open
        )
        self.readers_from = readers_from

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        webhook_token: str | None = None,
        readers: Mapping[str, str] | None = None,
        insecure_no_auth: bool = False,
        environ: Mapping[str, str] | None = None,
        operators: Mapping[str, str] | None = None,
        store: Store | None = None,
    ) -> Authenticator:
        """The credentials of ``config``: tokens from the environment, unless given, and
        the API tokens in ``store``."""
        env = os.environ if environ is None else environ
        token = webhook_token if webhook_token is not None else env.get(config.server.token_env)
        source = "given"
        if readers is None:
            readers, source = _read_tokens(config, env)
        if operators is None:
            operators, _ = _read_tokens(config, env, config.server.operator_tokens_env)
        return cls(
            webhook_token=(token or "").strip() or None,
            readers=readers,
            insecure_no_auth=insecure_no_auth,
            readers_from=source,
            operators=operators,
            store=store,
        )

    @property
    def reader_names(self) -> tuple[str, ...]:
        return tuple(c.principal.name for c in self._credentials[Role.VIEWER])

    @property
    def operator_names(self) -> tuple[str, ...]:
        return tuple(c.principal.name for c in self._credentials[Role.OPERATOR])

    def identify(self, token: str) -> Principal | None:
        """The person or script ``token`` names: an environment token's principal (an
        operator's wins over a viewer's), else an active API token's; None otherwise.
        Every environment credential is compared (the time says nothing)."""
        token = token.strip()
        digest = _digest(token)
        found: Principal | None = None
        for role in (Role.VIEWER, Role.OPERATOR):
            for credential in self._credentials[role]:
                if hmac.compare_digest(digest, credential.digest):
                    found = credential.principal
        if found is None and self._store is not None and token.startswith("tk_"):
            found = self._stored(token)
        return found

    def _stored(self, token: str) -> Principal | None:
        from terry.store.api_tokens import find_token, touch_token

        assert self._store is not None
        try:
            lookup = find_token(self._store, token)
        except (TerryError, SQLAlchemyError) as exc:
            # not a 401: the token may be good, and a client gives up on what a 4xx
            # refused; the server answers StoreError with 503 and Retry-After
            log.error("API tokens cannot be read, the request cannot be answered: %s", exc)
            raise StoreError(f"API tokens cannot be read: {exc}") from exc
        stored, principal = lookup.token, lookup.found
        now = time.monotonic()
        if stored is not None and principal is None:
            if now - self._warned.get(stored.id, -_WARN_EVERY) >= _WARN_EVERY:
                self._warned[stored.id] = now
                when = stored.revoked_at if lookup.status == "revoked" else stored.expires_at
                log.warning(
                    "refused API token %s of %s: %s since %s",
                    stored.id,
                    stored.user,
                    lookup.status,
                    when.strftime("%Y-%m-%d %H:%M:%S UTC") if when else "?",
                )
            return None
        if principal is None or principal.token_id is None:
            return principal
        if now - self._touched.get(principal.token_id, -_TOUCH_EVERY) >= _TOUCH_EVERY:
            self._touched[principal.token_id] = now
            try:
                touch_token(self._store, principal.token_id)
            except (TerryError, SQLAlchemyError) as exc:  # the request goes on
                log.warning("could not record the use of %s: %s", principal.token_id, exc)
        return principal

    def login(self, token: str) -> Principal | None:
        """The console principal ``token`` names: one that may read (a tenant's, its
        tenant: the console scopes every page); None otherwise."""
        principal = self.identify(token)
        return principal if principal is not None and may_read(principal) else None

    def holds(self, principal: Principal) -> bool:
        """Whether ``principal`` (from a console session) is still configured: its
        environment token still there, or its API token still active (not revoked, not
        expired) for the same user, role and tenant."""
        if principal.token_id is None:
            return any(c.principal == principal for c in self._credentials[principal.role])
        if self._store is None:
            return False
        from terry.store.api_tokens import TokenStatus, get_token

        try:
            stored = get_token(self._store, principal.token_id)
        except (TerryError, SQLAlchemyError) as exc:
            log.error("API tokens cannot be read, ending the session: %s", exc)
            return False
        return (
            stored is not None
            and stored.status() is TokenStatus.ACTIVE
            and stored.principal() == principal
        )

    def is_open(self, role: Role) -> bool:
        return role in self._open

    def authenticate(
        self, request: HTTPConnection, role: Role, *, scoped: bool = False
    ) -> Principal | None:
        """The principal a request's bearer token names, when it may do what ``role`` does
        at the least (``_DOOR``); None when it names none or may not (answer 401). With no
        token at all, an open role gives an anonymous principal. ``scoped``: the route
        filters what it answers by the principal's tenant (``terry.tenants.scope``), so a
        principal limited to one tenant is let in, for its own tenant."""
        header = request.headers.get("authorization")
        if header is None:
            return Principal("anonymous", role, anonymous=True) if role in self._open else None
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return None
        if role is Role.ALERTMANAGER:
            digest = _digest(given.strip())
            found: Principal | None = None
            for credential in self._credentials[role]:  # every one: the time says nothing
                if hmac.compare_digest(digest, credential.digest):
                    found = credential.principal
            return found
        principal = self.identify(given)
        if principal is None:
            return None
        tenant = principal.tenant if scoped else None
        decision = allowed(principal, _DOOR[role], tenant=tenant)
        if not decision:
            log.info("refused: %s", decision.reason)
            return None
        return principal


_OPEN_WARNING = {
    Role.ALERTMANAGER: "the webhook accepts alerts without a token",
    Role.VIEWER: "the API and /metrics answer without a token",
    Role.OPERATOR: "",  # never open
    Role.ADMIN: "",  # never open
}
