"""Confirmation buttons: signed, expiring, single-use tokens that name one command.

A write command Terry understood from plain language runs only when the person who asked
presses "Confirm". The button carries ``<expiry>|<nonce>|<command>.<mac>``: the command's
canonical text (``Command.text``), an expiry, and an HMAC-SHA256 over those and the chat
user's id, so the token is good only for that command, that person and those minutes. The
nonce is spent on first use (in this process: a token pressed twice runs once).

The key comes from the variable ``chat.confirm_secret_env`` names; without it each process
draws a random one (a restart voids pending confirmations). Discord's buttons hold at most
100 characters: a command too long for that is not offered as a button.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from terry.errors import InputError

__all__ = ["ConfirmTokens", "Confirmed"]


@dataclass(frozen=True)
class Confirmed:
    command: str  # the canonical text the token names


class ConfirmTokens:
    def __init__(self, key: bytes, *, minutes: int = 10) -> None:
        self._key = key
        self._seconds = minutes * 60
        self._spent: dict[str, float] = {}  # nonce -> expiry
        self._lock = threading.Lock()

    @classmethod
    def from_environment(
        cls, variable: str, *, minutes: int, environ: Mapping[str, str] | None = None
    ) -> ConfirmTokens:
        value = (os.environ if environ is None else environ).get(variable, "")
        key = value.encode() if value.strip() else secrets.token_bytes(32)
        return cls(key, minutes=minutes)

    def _mac(self, body: str, user: str) -> str:
        digest = hmac.new(self._key, f"{user}\n{body}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:15]).decode()

    def issue(self, command: str, user: str, *, now: float | None = None) -> str:
        expiry = int((time.time() if now is None else now) + self._seconds)
        body = f"{expiry:x}|{secrets.token_urlsafe(6)}|{command}"
        return f"{body}.{self._mac(body, user)}"

    def redeem(self, token: str, user: str, *, now: float | None = None) -> Confirmed:
        """The command ``token`` names, spent; InputError when it is forged, someone else's,
        expired or used."""
        now = time.time() if now is None else now
        body, _, mac = token.rpartition(".")
        if not body or not hmac.compare_digest(mac.encode(), self._mac(body, user).encode()):
            raise InputError("this confirmation is not valid (or is someone else's to press)")
        expiry_hex, nonce, command = body.split("|", 2)
        expiry = int(expiry_hex, 16)
        if now > expiry:
            raise InputError("this confirmation has expired: ask again")
        with self._lock:
            for old in [n for n, e in self._spent.items() if e < now]:
                del self._spent[old]
            if nonce in self._spent:
                raise InputError("this confirmation was used already")
            self._spent[nonce] = expiry
        return Confirmed(command)
