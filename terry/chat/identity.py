"""Who is asking from chat, and what they may do.

A chat user is known by the platform's ids (``slack:T123/U456``: the workspace and the user;
``discord:81234``: the user), which ``chat.users`` in ``terry.yml`` maps to a Terry identity.
An unmapped user may do nothing. A mapped one reads; writing (approve, reject, roll back,
prevent) needs the identity in ``chat.writers``. ``refusal`` is the one permission check
(the tenancy issue replaces the allow-list with roles there, and ``hosts_for`` with the
hosts of the person's tenants).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from terry.config import ChatConfig

__all__ = ["ChatUser", "hosts_for", "refusal"]


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
    def actor(self) -> str:
        """How the audit trail names them: ``slack:U456 (alice)``."""
        return f"{self.platform}:{self.user_id} ({self.name or 'unmapped'})"

    @classmethod
    def known(cls, config: ChatConfig, platform: str, user_id: str, team_id: str = "") -> ChatUser:
        user = cls(platform, user_id, team_id)
        return cls(platform, user_id, team_id, config.users.get(user.key))


def refusal(config: ChatConfig, user: ChatUser, *, writes: bool) -> str | None:
    """Why ``user`` may not run a command (that ``writes``, or only reads); None when they may."""
    if user.name is None:
        return (
            f"you are not a Terry user: ask an administrator to map {user.key} to your "
            "Terry identity under chat.users in terry.yml"
        )
    if writes and user.name not in config.writers:
        return (
            f"{user.name} may read but not change anything: approving, rejecting, rolling "
            "back and preventing are for the identities in chat.writers"
        )
    return None


def hosts_for(user: ChatUser, inventory_hosts: Collection[str]) -> frozenset[str]:
    """The hosts ``user`` may ask about and act on: with the allow-list, the inventory's."""
    return frozenset(str(h) for h in inventory_hosts) if user.name is not None else frozenset()
