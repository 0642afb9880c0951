"""API tokens in the store (``terry tokens``; table ``api_tokens``, migration 0015).

A token is ``tk_<8 hex>_<43 url-safe characters>``: its first 11 characters are its id,
which is not secret (lists, logs and the audit name a token by it); the rest is 256 bits
from ``secrets``. The store keeps the SHA-256 digest of the whole token, never the token,
which is shown once when it is made. Finding a token reads the row its id names and
compares digests in constant time; an unknown id, a wrong secret, a revoked or an expired
token are told apart for the server's log (``Lookup``), never for the caller.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from terry.access import ANY_TENANT, Principal, Role, valid_tenant
from terry.errors import InputError, NotFound
from terry.store import Store
from terry.store.models import ApiTokenRow, utcnow

__all__ = [
    "ApiToken",
    "Lookup",
    "TokenStatus",
    "create_token",
    "find_token",
    "get_token",
    "list_tokens",
    "revoke_token",
    "touch_token",
]

_ID = re.compile(r"^tk_[0-9a-f]{8}$")
_TOKEN = re.compile(r"^(tk_[0-9a-f]{8})_[A-Za-z0-9_-]{43}$")
_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
# Roles a token may carry: the webhook's token stays in the environment.
TOKEN_ROLES = (Role.VIEWER, Role.OPERATOR, Role.ADMIN)


class TokenStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class ApiToken:
    """A token as the store knows it: everything but the secret."""

    id: str
    user: str
    tenant: str
    role: Role
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def status(self, now: datetime | None = None) -> TokenStatus:
        if self.revoked_at is not None:
            return TokenStatus.REVOKED
        if self.expires_at is not None and self.expires_at <= (now or utcnow()):
            return TokenStatus.EXPIRED
        return TokenStatus.ACTIVE

    def principal(self) -> Principal:
        return Principal(self.user, self.role, tenant=self.tenant, token_id=self.id)

    @classmethod
    def of(cls, row: ApiTokenRow) -> ApiToken:
        return cls(
            row.id,
            row.user,
            row.tenant,
            Role(row.role),
            row.created_at,
            row.created_by,
            row.expires_at,
            row.revoked_at,
            row.last_used_at,
        )


@dataclass(frozen=True)
class Lookup:
    """What a presented token turned out to be: ``token`` is set when it names a stored
    token (whatever its status), ``found`` when it is also active."""

    token: ApiToken | None
    status: TokenStatus | None  # None: not a stored token (unknown id or a wrong secret)

    @property
    def found(self) -> Principal | None:
        if self.token is None or self.status is not TokenStatus.ACTIVE:
            return None
        return self.token.principal()


def _hexdigest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def create_token(
    store: Store,
    *,
    user: str,
    role: Role,
    tenant: str = ANY_TENANT,
    expires_in: timedelta | None,
    created_by: str = "",
    now: datetime | None = None,
) -> tuple[ApiToken, str]:
    """A new token for ``user`` with ``role`` in ``tenant``: its record and the token
    itself, which nothing keeps (show it once)."""
    if not _USER.fullmatch(user):
        raise InputError(
            f"user {user[:64]!r} is not a name (letters, digits, '_', '.', '@' or '-')"
        )
    if role not in TOKEN_ROLES:
        raise InputError(f"a token's role is one of {', '.join(TOKEN_ROLES)}, not {role}")
    if not valid_tenant(tenant):
        raise InputError(f"tenant {tenant[:64]!r} is not a tenant's name (or '*')")
    at = now or utcnow()
    for _attempt in range(5):  # an id taken already (1 in 4 billion) draws again
        token_id = f"tk_{secrets.token_hex(4)}"
        token = f"{token_id}_{secrets.token_urlsafe(32)}"
        row = ApiTokenRow(
            id=token_id,
            digest=_hexdigest(token),
            user=user,
            tenant=tenant,
            role=str(role),
            created_at=at,
            created_by=created_by[:200],
            expires_at=at + expires_in if expires_in is not None else None,
            revoked_at=None,
            last_used_at=None,
        )
        try:
            with store.session() as session:
                session.add(row)
                session.flush()
                made = ApiToken.of(row)
        except IntegrityError:
            continue
        return made, token
    raise InputError("could not draw an unused token id; try again")  # pragma: no cover


def list_tokens(store: Store, *, user: str | None = None) -> list[ApiToken]:
    """Every token (or ``user``'s), newest first; never a secret, there is none to give."""
    query = select(ApiTokenRow).order_by(ApiTokenRow.created_at.desc(), ApiTokenRow.id)
    if user is not None:
        query = query.where(ApiTokenRow.user == user)
    with store.session() as session:
        return [ApiToken.of(row) for row in session.scalars(query)]


def revoke_token(store: Store, token_id: str, *, now: datetime | None = None) -> ApiToken:
    """Revoke ``token_id`` (from now on it is refused); revoking twice keeps the first time."""
    if not _ID.fullmatch(token_id):
        raise NotFound(f"token {token_id[:24]!r} does not exist (ids look like tk_0a1b2c3d)")
    with store.session() as session:
        session.execute(
            update(ApiTokenRow)
            .where(ApiTokenRow.id == token_id, ApiTokenRow.revoked_at.is_(None))
            .values(revoked_at=now or utcnow())
        )
        row = session.get(ApiTokenRow, token_id)
        if row is None:
            raise NotFound(f"token {token_id} does not exist (terry tokens list)")
        return ApiToken.of(row)


def find_token(store: Store, token: str, *, now: datetime | None = None) -> Lookup:
    """What ``token`` is: a stored token and its status, or nothing."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        return Lookup(None, None)
    with store.session() as session:
        row = session.get(ApiTokenRow, match[1])
        if row is None or not hmac.compare_digest(row.digest, _hexdigest(token)):
            return Lookup(None, None)
        found = ApiToken.of(row)
    return Lookup(found, found.status(now))


def get_token(store: Store, token_id: str) -> ApiToken | None:
    """The token ``token_id`` names, whatever its status, or None."""
    if not _ID.fullmatch(token_id):
        return None
    with store.session() as session:
        row = session.get(ApiTokenRow, token_id)
        return None if row is None else ApiToken.of(row)


def touch_token(store: Store, token_id: str, *, now: datetime | None = None) -> None:
    """Record that ``token_id`` was just used."""
    with store.session() as session:
        session.execute(
            update(ApiTokenRow)
            .where(ApiTokenRow.id == token_id)
            .values(last_used_at=now or utcnow())
        )
