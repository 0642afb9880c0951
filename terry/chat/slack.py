"""Slack: verifying its requests, reading slash commands and button presses, and answering
in Block Kit.

Every request is verified as Slack documents (``slack_sdk``'s ``SignatureVerifier``: the
``v0`` HMAC-SHA256 of ``v0:{X-Slack-Request-Timestamp}:{body}`` with the app's signing
secret, compared in constant time; a timestamp more than five minutes away is refused),
and a signature seen before is refused too (a replay within those minutes). A body that is
not UTF-8, or a signature header that is not ASCII, is a wrong signature, never a crash.

Slack re-sends a request it counts as failed (``X-Slack-Retry-Num``, ``X-Slack-Retry-Reason``),
signed afresh: the same body under a new timestamp. The routes run a body once
(``Replays`` of its digest, ``digest``); a retry is acknowledged and nothing runs again.
Slack also checks a command URL's certificate with a body of ``ssl_check=1`` (``ssl_check``):
answered 200 and nothing else, as slack_bolt's ``SslCheck`` does.

A slash command is a form body (``team_id``, ``user_id``, ``text``, ``response_url``...); its
``text`` comes with ``&``, ``<``, ``>`` as ``&amp;``, ``&lt;``, ``&gt;`` (all text from Slack
is escaped so) and is read as typed. A button press is a form body whose ``payload`` field is
JSON (``type: block_actions``, the ``user``, the ``actions`` pressed, the ``response_url``).
Follow-ups go to that ``response_url`` only when it starts with one of
``chat.slack.response_urls``. An app installed in more than one workspace signs every
workspace's requests with the same secret, so ``chat.slack.workspaces``, when set, names the
ones Terry answers (by ``team_id``, or an Enterprise Grid org's ``enterprise_id``); any
other's request is refused before anything reads it.

Text Terry sends is escaped as Slack asks (``&``, ``<``, ``>``), so nothing in an alert can
make a link or a mention (``<!channel>``, ``<@U123>``); bare ``@here``/``@channel``/
``@everyone`` are broken up as well.
"""

from __future__ import annotations

import hashlib
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
    "authentic",
    "blocks",
    "digest",
    "escape",
    "parse_request",
    "ssl_check",
    "unescape",
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


def authentic(secret: str, body: bytes, headers: Any) -> bool:
    """Whether Slack signed ``body`` with ``secret`` within the last five minutes."""
    from slack_sdk.signature import SignatureVerifier  # only on Slack's requests

    timestamp = headers.get("x-slack-request-timestamp") or ""
    signature = headers.get("x-slack-signature") or ""
    if not secret.strip() or not timestamp.isascii() or not timestamp.isdigit():
        return False
    if len(timestamp) > 12 or not signature.isascii() or not signature.startswith("v0="):
        return False  # (compare_digest refuses non-ASCII text with a TypeError)
    try:
        body.decode("utf-8")  # SignatureVerifier decodes it: Slack's bodies are UTF-8
    except UnicodeDecodeError:
        return False
    return SignatureVerifier(secret).is_valid(body, timestamp, signature)


def digest(body: bytes) -> str:
    """What a delivery and Slack's retries of it share: the body (a retry's timestamp and
    signature are new; a slash command's ``trigger_id`` makes each invocation's its own)."""
    return hashlib.sha256(body).hexdigest()


def ssl_check(body: bytes) -> bool:
    """Whether this is Slack checking the URL's certificate (``ssl_check=1``): answer 200."""
    if len(body) > 1024:  # Slack's is ``ssl_check=1&token=...``
        return False
    form = parse_qs(body.decode("utf-8", "replace"))
    return "payload" not in form and _field(form, "ssl_check") == "1"


def unescape(text: str) -> str:
    """Text from Slack as it was typed: ``&lt;``, ``&gt;``, ``&amp;`` back to ``<``, ``>``,
    ``&`` (the only three Slack encodes; ``&amp;`` last, so ``&amp;lt;`` stays ``&lt;``)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


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


def _accepted(config: ChatConfig, *ids: Any) -> None:
    """InputError unless the request's workspace (or its org) is one ``workspaces`` names."""
    allowed = config.slack.workspaces
    if allowed and not any(isinstance(i, str) and i in allowed for i in ids):
        team = ids[0] if isinstance(ids[0], str) and _ID.fullmatch(ids[0]) else "?"
        raise InputError(f"workspace {team} is not one Terry answers (chat.slack.workspaces)")


def parse_request(config: ChatConfig, body: bytes) -> SlackRequest:
    """A slash command or a button press, from its (verified) form body; InputError when it
    is neither, or comes from a workspace ``chat.slack.workspaces`` does not name."""
    form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    if "payload" not in form:
        _accepted(config, _field(form, "team_id"), _field(form, "enterprise_id"))
        return SlackRequest(
            user=_user(config, _field(form, "team_id"), _field(form, "user_id")),
            response_url=_field(form, "response_url"),
            text=unescape(_field(form, "text")),
        )
    try:
        payload = json.loads(_field(form, "payload"))
    except ValueError:
        raise InputError("payload is not JSON") from None
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        raise InputError("only block_actions interactions are handled")
    user = payload.get("user") if isinstance(payload.get("user"), dict) else {}
    team = payload.get("team") if isinstance(payload.get("team"), dict) else {}
    grid = payload.get("enterprise") if isinstance(payload.get("enterprise"), dict) else {}
    _accepted(config, team.get("id") or user.get("team_id"), grid.get("id"))
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
