"""Slack: verifying its requests, reading slash commands and button presses, and answering
in Block Kit.

Every request is verified as Slack documents (``slack_sdk``'s ``SignatureVerifier``: the
``v0`` HMAC-SHA256 of ``v0:{X-Slack-Request-Timestamp}:{body}`` with the app's signing
secret, compared in constant time; a timestamp more than five minutes away is refused),
and a signature seen before is refused too (a replay within those minutes).

A slash command is a form body (``team_id``, ``user_id``, ``text``, ``response_url``...); a
button press is a form body whose ``payload`` field is JSON (``type: block_actions``, the
``user``, the ``actions`` pressed, the ``response_url``). Follow-ups go to that
``response_url`` only when it starts with one of ``chat.slack.response_urls``.

Text Terry sends is escaped as Slack asks (``&``, ``<``, ``>``), so nothing in an alert can
make a link or a mention (``<!channel>``, ``<@U123>``); bare ``@here``/``@channel``/
``@everyone`` are broken up as well.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from terry.chat.answer import Answer, ButtonAction
from terry.chat.identity import ChatUser
from terry.config import ChatConfig
from terry.errors import InputError

__all__ = [
    "ACTION_PREFIX",
    "Replays",
    "SlackRequest",
    "action_of",
    "blocks",
    "escape",
    "parse_request",
    "verified",
]

ACTION_PREFIX = "terry:"
WINDOW = 300  # seconds: Slack's and Discord's replay window
_MAX_TEXT = 2900  # a section's text holds 3000 characters
_ID = re.compile(r"[A-Z0-9]{1,32}")
_BROADCAST = re.compile(r"@(here|channel|everyone)\b", re.IGNORECASE)


class Replays:
    """Signatures seen in the last ``WINDOW`` seconds: the second delivery of one is refused."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first(self, signature: str, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        with self._lock:
            for old in [s for s, at in self._seen.items() if now - at > 2 * WINDOW]:
                del self._seen[old]
            if signature in self._seen:
                return False
            self._seen[signature] = now
            return True


def verified(secret: str, body: bytes, headers: Any, replays: Replays) -> bool:
    """Whether Slack signed ``body`` now, with ``secret``, for the first time."""
    from slack_sdk.signature import SignatureVerifier  # only on Slack's requests

    timestamp = headers.get("x-slack-request-timestamp") or ""
    signature = headers.get("x-slack-signature") or ""
    if not secret or not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    if not SignatureVerifier(secret).is_valid(body, timestamp, signature):
        return False
    return replays.first(signature)


@dataclass(frozen=True)
class SlackRequest:
    user: ChatUser
    response_url: str
    text: str = ""  # a slash command's text
    action: str | None = None  # a pressed button's action (approve, reject, confirm, cancel)
    value: str = ""


def _field(form: dict[str, list[str]], name: str) -> str:
    values = form.get(name) or [""]
    return values[0]


def _user(config: ChatConfig, team: Any, user: Any) -> ChatUser:
    if not isinstance(team, str) or not isinstance(user, str):
        raise InputError("no team or user id")
    if not _ID.fullmatch(team) or not _ID.fullmatch(user):
        raise InputError("malformed team or user id")
    return ChatUser.known(config, "slack", user, team)


def parse_request(config: ChatConfig, body: bytes) -> SlackRequest:
    """A slash command or a button press, from its (verified) form body; InputError when it
    is neither."""
    form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    if "payload" not in form:
        return SlackRequest(
            user=_user(config, _field(form, "team_id"), _field(form, "user_id")),
            response_url=_field(form, "response_url"),
            text=_field(form, "text"),
        )
    try:
        payload = json.loads(_field(form, "payload"))
    except ValueError:
        raise InputError("payload is not JSON") from None
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        raise InputError("only block_actions interactions are handled")
    user = payload.get("user") if isinstance(payload.get("user"), dict) else {}
    team = payload.get("team") if isinstance(payload.get("team"), dict) else {}
    actions = payload.get("actions")
    if not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], dict):
        raise InputError("expected one action")
    action_id = str(actions[0].get("action_id") or "")
    if not action_id.startswith(ACTION_PREFIX):
        raise InputError("not one of Terry's buttons")
    return SlackRequest(
        user=_user(config, team.get("id") or user.get("team_id"), user.get("id")),
        response_url=str(payload.get("response_url") or ""),
        action=action_of(action_id[len(ACTION_PREFIX) :]),
        value=str(actions[0].get("value") or "")[:2000],
    )


def escape(text: str) -> str:
    """Text for Slack: ``&``, ``<``, ``>`` escaped, broadcasts broken up."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub(lambda m: "@\u200b" + m[1], text)


def blocks(answer: Answer, *, replace: bool = False) -> dict[str, Any]:
    """The message for ``answer``: a section of escaped text and its buttons."""
    text = answer.text if len(answer.text) <= _MAX_TEXT else answer.text[: _MAX_TEXT - 1] + "…"
    shown = escape(text)
    message: dict[str, Any] = {
        "response_type": "in_channel" if answer.public else "ephemeral",
        "text": shown,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": shown, "verbatim": True}}
        ],
    }
    if replace:
        message["replace_original"] = True
    if answer.buttons:
        message["blocks"].append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": escape(b.label)[:75]},
                        "action_id": f"{ACTION_PREFIX}{b.action.value}:{i}",
                        "value": b.value,
                        **({"style": "danger"} if b.danger else {}),
                    }
                    for i, b in enumerate(answer.buttons)
                ],
            }
        )
    return message


def action_of(action: str) -> str:
    """``approve:3`` (the action id's tail: action ids are unique per message) -> ``approve``."""
    name = action.split(":", 1)[0]
    return name if name in {a.value for a in ButtonAction} else ""
