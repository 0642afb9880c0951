"""Discord: verifying its interactions, reading commands and button presses, answering.

Every interaction is verified as Discord documents: the Ed25519 signature
(``X-Signature-Ed25519``) of ``X-Signature-Timestamp`` + body, checked with PyNaCl against the
application's public key. Terry also refuses a timestamp more than five minutes away and a
signature seen before (a replay). A PING (type 1) is answered with a PONG (type 1).

An application command (type 2) is ``/terry`` with one string option (``text``: ``approve 12``,
or a sentence), or with subcommands (type 1, their options nested) whose options are read in
order (``/terry approve id:12`` is ``approve 12``), but for those named as the grammar's
options (``to``, ``since``, ``severity``, ``environment``, ``state``):
``/terry rollback host:web-01 to:1h-ago`` is ``rollback web-01 --to=1h-ago``. A button (a
message component, type 3) carries ``terry:<action>:<value>`` as its ``custom_id``. Slow
answers are deferred (type 5 for a command, type 6 for a button) and finished through the
interaction's webhook: ``PATCH {api_url}/webhooks/{application_id}/{token}/messages/@original``.

Mentions are neutralised: every message says ``allowed_mentions: {"parse": []}``, so nobody is
notified, and the text shows none either: ``@everyone``/``@here`` are broken up and ``<`` is
escaped (no ``<@id>``, ``<@&role>`` or ``<#channel>`` renders). The text escapes Discord's
markdown too, so alert text cannot format or hide itself.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from terry.chat.answer import Answer, ButtonAction
from terry.chat.identity import ChatUser
from terry.chat.slack import WINDOW, Replays
from terry.config import ChatConfig
from terry.errors import InputError

__all__ = [
    "PING",
    "DiscordRequest",
    "message",
    "parse_interaction",
    "verified",
]

PING, COMMAND, COMPONENT = 1, 2, 3
PONG, CHANNEL_MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE = 1, 4, 5, 6, 7
EPHEMERAL = 1 << 6
PREFIX = "terry:"
_MAX_CONTENT = 1990  # a message holds 2000 characters
_SNOWFLAKE = re.compile(r"[0-9]{1,24}")
_TOKEN = re.compile(r"[A-Za-z0-9_.\-]{1,500}")
_MARKDOWN = re.compile(r"([\\*_~`|<>#\[\]()-])")
_BROADCAST = re.compile(r"@(here|everyone)\b", re.IGNORECASE)
_FLAGS = frozenset({"to", "since", "severity", "environment", "env", "state"})  # grammar's


def verified(public_key: str, body: bytes, headers: Any, replays: Replays) -> bool:
    """Whether Discord signed ``body`` with the application's key, recently, once."""
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    signature = headers.get("x-signature-ed25519") or ""
    timestamp = headers.get("x-signature-timestamp") or ""
    if not public_key or not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    if abs(time.time() - int(timestamp)) > WINDOW:
        return False
    try:
        VerifyKey(bytes.fromhex(public_key)).verify(
            timestamp.encode() + body, bytes.fromhex(signature)
        )
    except (BadSignatureError, ValueError):
        return False
    return replays.first(signature)


@dataclass(frozen=True)
class DiscordRequest:
    kind: int  # PING, COMMAND or COMPONENT
    application_id: str = ""
    token: str = ""
    user: ChatUser | None = None
    text: str = ""
    action: str | None = None
    value: str = ""


def _words(options: Any, depth: int = 0) -> list[str]:
    """A command's options, in order: subcommand names and option values."""
    words: list[str] = []
    if not isinstance(options, list) or depth > 2:
        return words
    for option in options[:25]:
        if not isinstance(option, dict):
            continue
        if option.get("type") in (1, 2):  # a subcommand (group): its name, then its options
            words.append(str(option.get("name", "")))
            words.extend(_words(option.get("options"), depth + 1))
        elif "value" in option and str(option.get("name", "")).lower() in _FLAGS:
            words.append(f"--{str(option['name']).lower()}={option['value']}")
        elif "value" in option:
            words.append(str(option["value"]))
    return words


def parse_interaction(config: ChatConfig, payload: Any) -> DiscordRequest:
    """What a (verified) interaction asks; InputError when it is not one Terry handles."""
    if not isinstance(payload, dict):
        raise InputError("the interaction is not a JSON object")
    kind = payload.get("type")
    if kind == PING:
        return DiscordRequest(PING)
    if kind not in (COMMAND, COMPONENT):
        raise InputError(f"interaction type {str(kind)[:10]} is not handled")
    application_id = str(payload.get("application_id") or "")
    token = str(payload.get("token") or "")
    if not _SNOWFLAKE.fullmatch(application_id) or not _TOKEN.fullmatch(token):
        raise InputError("no application id or token")
    if config.discord.application_id and application_id != config.discord.application_id:
        raise InputError("another application's interaction")
    member = payload.get("member") if isinstance(payload.get("member"), dict) else {}
    person = member.get("user") if isinstance(member.get("user"), dict) else payload.get("user")
    user_id = str(person.get("id") or "") if isinstance(person, dict) else ""
    if not _SNOWFLAKE.fullmatch(user_id):
        raise InputError("no user id")
    user = ChatUser.known(config, "discord", user_id)
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    if kind == COMMAND:
        words = _words(data.get("options"))
        if words[:1] == ["text"]:
            words = words[1:]
        return DiscordRequest(COMMAND, application_id, token, user, text=" ".join(words)[:2000])
    custom_id = str(data.get("custom_id") or "")
    if not custom_id.startswith(PREFIX):
        raise InputError("not one of Terry's buttons")
    action, _, value = custom_id[len(PREFIX) :].partition(":")
    if action not in {a.value for a in ButtonAction}:
        raise InputError("not one of Terry's buttons")
    return DiscordRequest(COMPONENT, application_id, token, user, action=action, value=value)


def escape(text: str) -> str:
    """Text for Discord: its markdown characters (``<`` of a mention too) escaped,
    broadcasts broken up (mentions are off anyway)."""
    return _BROADCAST.sub(lambda m: "@\u200b" + m[1], _MARKDOWN.sub(r"\\\1", text))


def message(answer: Answer) -> dict[str, Any]:
    """A message (an interaction response's ``data``, or a webhook edit) for ``answer``."""
    text = escape(answer.text)
    text = text if len(text) <= _MAX_CONTENT else text[: _MAX_CONTENT - 1] + "…"
    out: dict[str, Any] = {"content": text, "allowed_mentions": {"parse": []}}
    if not answer.public:
        out["flags"] = EPHEMERAL
    buttons = [
        {
            "type": 2,
            "style": 4 if b.danger else 1,
            "label": b.label[:80],
            "custom_id": f"{PREFIX}{b.action.value}:{b.value}"[:100],
        }
        for b in answer.buttons[:25]
    ]
    out["components"] = [
        {"type": 1, "components": buttons[at : at + 5]} for at in range(0, len(buttons), 5)
    ]
    return out
