"""Who is asking ``terry serve``: its principals, and the one check every endpoint makes.

Two kinds of principal, never interchangeable:

- Alertmanager, with the webhook's bearer token (the variable named by ``server.token_env``);
  it may only post alerts.
- Readers, each with a name and a token of its own (the variable named by
  ``server.read_tokens_env``: ``name:token`` entries, or ``@/path/to/file`` holding one
  ``name:token`` a line); they may read the JSON API and ``/metrics``.
- Operators (``server.operator_tokens_env``, the same format), who log in to the web console
  and may approve and reject there (``may_act``, the one permission check).

``Authenticator.authenticate(request, role)`` is the only check: every route but ``/healthz``
goes through it (``terry.service.server`` wraps the routes, none checks a header itself). A
request is known by its principal's name, which is what is logged; a token never is. Tokens
are compared as SHA-256 digests with ``hmac.compare_digest``, against every token of the role
(no early exit). Per-user tokens, roles and tenants (the tenancy issue) grow here: a
``Principal`` is what a later permission check is given.

Without a webhook token ``terry serve`` refuses to start unless the operator passes
``--insecure-no-auth``; then a role with no token configured accepts anonymous requests, and
``/healthz`` and the log say so.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from starlette.requests import HTTPConnection

from terry.config import Config
from terry.errors import ConfigError

__all__ = ["Action", "Authenticator", "Principal", "Role", "may_act", "parse_read_tokens"]

log = logging.getLogger("terry.service.auth")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
MIN_READ_TOKEN = 16  # characters; `openssl rand -hex 16` gives 32


class Role(StrEnum):
    ALERTMANAGER = "alertmanager"  # POST /api/v1/alerts
    READER = "reader"  # GET /api/v1/..., /metrics
    OPERATOR = "operator"  # the console: read, approve, reject (console login only)


class Action(StrEnum):
    """What a principal asks to do in the console."""

    READ = "read"
    APPROVE = "approve"
    REJECT = "reject"


@dataclass(frozen=True)
class Principal:
    """Who made a request: a name to log and to decide by, never the credential."""

    name: str
    role: Role
    anonymous: bool = False


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


def may_act(principal: Principal, action: Action) -> bool:
    """Whether ``principal`` may do ``action``: the one permission check of the console
    (the tenancy issue grows it into per-user roles). Readers read; operators also approve
    and reject; the webhook's principal does neither."""
    if principal.anonymous or principal.role is Role.ALERTMANAGER:
        return False
    if action is Action.READ:
        return principal.role in (Role.READER, Role.OPERATOR)
    return principal.role is Role.OPERATOR


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
    """The credentials ``terry serve`` accepts, loaded once at start."""

    def __init__(
        self,
        *,
        webhook_token: str | None,
        readers: Mapping[str, str],
        insecure_no_auth: bool = False,
        readers_from: str = "",
        operators: Mapping[str, str] | None = None,
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
            self._credentials[Role.READER].append(
                _Credential(_digest(token), Principal(name, Role.READER))
            )
        for name, token in (operators or {}).items():
            self._credentials[Role.OPERATOR].append(
                _Credential(_digest(token), Principal(name, Role.OPERATOR))
            )
        # With --insecure-no-auth a role nobody holds a token for is open to anyone (never
        # the console's operators: approving always takes a token).
        self._open = frozenset(
            role
            for role, held in self._credentials.items()
            if insecure_no_auth and not held and role is not Role.OPERATOR
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
    ) -> Authenticator:
        """The credentials of ``config``: tokens from the environment, unless given."""
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
        )

    @property
    def reader_names(self) -> tuple[str, ...]:
        return tuple(c.principal.name for c in self._credentials[Role.READER])

    @property
    def operator_names(self) -> tuple[str, ...]:
        return tuple(c.principal.name for c in self._credentials[Role.OPERATOR])

    def login(self, token: str) -> Principal | None:
        """The console principal ``token`` names: an operator's, else a reader's; None when
        it names neither. Every credential is compared (the time says nothing)."""
        digest = _digest(token.strip())
        found: Principal | None = None
        for role in (Role.READER, Role.OPERATOR):  # an operator's wins
            for credential in self._credentials[role]:
                if hmac.compare_digest(digest, credential.digest):
                    found = credential.principal
        return found

    def holds(self, principal: Principal) -> bool:
        """Whether ``principal`` (from a console session) is still configured."""
        return any(c.principal == principal for c in self._credentials[principal.role])

    def is_open(self, role: Role) -> bool:
        return role in self._open

    def authenticate(self, request: HTTPConnection, role: Role) -> Principal | None:
        """The principal a request's bearer token names for ``role``; None when it names
        none (answer 401). With no token at all, an open role gives an anonymous principal."""
        header = request.headers.get("authorization")
        if header is None:
            return Principal("anonymous", role, anonymous=True) if role in self._open else None
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return None
        digest = _digest(given.strip())
        found: Principal | None = None
        for credential in self._credentials[role]:  # every one: the time says nothing
            if hmac.compare_digest(digest, credential.digest):
                found = credential.principal
        return found


_OPEN_WARNING = {
    Role.ALERTMANAGER: "the webhook accepts alerts without a token",
    Role.READER: "the API and /metrics answer without a token",
    Role.OPERATOR: "",  # never open
}
