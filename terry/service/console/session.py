"""Console sessions: who is logged in, in an HMAC-signed cookie.

The cookie holds the principal's name and role, the session's CSRF token and when it
expires, signed with HMAC-SHA256 under the server's secret (``server.console_secret_env``,
else one made at start: a restart then logs everyone out). Never the login token: a cookie
that leaks names a person, not their credential. A session whose principal is no longer
configured (``Authenticator.holds``), whose time is up, or that its person ended (``end``:
logging out; the store keeps which, so every ``terry serve`` on the store agrees) is no
session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from terry.errors import ConfigError
from terry.service.auth import Principal, Role
from terry.store import Store
from terry.store.models import ConsoleLogoutRow, utcnow

__all__ = ["COOKIE", "Session", "Sessions", "end", "is_ended"]

COOKIE = "terry_session"
MIN_SECRET = 32  # characters of the configured secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    principal: Principal
    csrf: str  # the per-session token every form posts back
    expires: int  # Unix seconds

    @property
    def digest(self) -> str:
        """What names this session in the store: the SHA-256 of its random token."""
        return hashlib.sha256(self.csrf.encode("ascii")).hexdigest()


def end(store: Store, session: Session) -> None:
    """Log ``session`` out for good: its cookie is no session from now on, here and on
    every server sharing the store. Ended sessions already past their time are forgotten."""
    now = utcnow()
    with store.session() as db:
        db.execute(delete(ConsoleLogoutRow).where(ConsoleLogoutRow.expires_at < now))
    try:
        with store.session() as db:
            db.add(
                ConsoleLogoutRow(
                    digest=session.digest,
                    expires_at=datetime.fromtimestamp(session.expires, UTC),
                )
            )
    except IntegrityError:  # ended already (a second tab, a retried POST)
        pass


def is_ended(store: Store, session: Session) -> bool:
    with store.session() as db:
        found = db.execute(
            select(ConsoleLogoutRow.digest).where(ConsoleLogoutRow.digest == session.digest)
        ).first()
    return found is not None


class Sessions:
    """Makes and reads session cookies under one secret."""

    def __init__(self, secret: str | None, *, minutes: int) -> None:
        if secret is not None and len(secret) < MIN_SECRET:
            raise ConfigError(f"the console secret must have at least {MIN_SECRET} characters")
        raw = secret.encode("utf-8") if secret else secrets.token_bytes(32)
        self._key = hashlib.sha256(b"terry console session\0" + raw).digest()
        self.seconds = minutes * 60

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest())

    def new(self, principal: Principal, *, now: float | None = None) -> tuple[Session, str]:
        """A fresh session for ``principal`` and its cookie value."""
        expires = int(now if now is not None else time.time()) + self.seconds
        session = Session(principal, secrets.token_urlsafe(32), expires)
        data = {
            "n": principal.name,
            "r": str(principal.role),
            "g": principal.tenant,  # the tenant its role holds in ("*": every one)
            "t": principal.token_id,  # the API token it logged in with (None: the env's)
            "c": session.csrf,
            "e": expires,
        }
        body = _b64(json.dumps(data, separators=(",", ":")).encode("utf-8"))
        return session, f"{body}.{self._sign(body)}"

    def read(self, value: str | None, *, now: float | None = None) -> Session | None:
        """The session a cookie value carries, or None (missing, forged, expired, garbled)."""
        if not value or len(value) > 4096 or not value.isascii():
            return None
        body, _, signature = value.partition(".")
        if not hmac.compare_digest(self._sign(body), signature):
            return None
        try:
            data = json.loads(_unb64(body))
            name, role, csrf, expires = str(data["n"]), Role(data["r"]), str(data["c"]), data["e"]
            tenant, token_id = str(data.get("g", "*")), data.get("t")
        except (ValueError, KeyError, TypeError):
            return None
        if token_id is not None and not isinstance(token_id, str):
            return None
        if not isinstance(expires, int) or expires <= (now if now is not None else time.time()):
            return None
        return Session(Principal(name, role, tenant=tenant, token_id=token_id), csrf, expires)
