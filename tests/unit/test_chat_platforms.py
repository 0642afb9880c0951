"""The chat routes against requests shaped and signed as Slack and Discord send them.

Each request is signed here with the platforms' own libraries (``slack_sdk.signature``'s
``SignatureVerifier.generate_signature``: the ``v0`` HMAC over ``v0:{timestamp}:{body}``;
``nacl.signing``: Ed25519 over ``timestamp + body``) and sent through the real routes
(``terry.service.chat_routes``, Starlette's test client). What a command does is not the
subject: a recording stand-in takes the place of ``ChatActions``.

- Slack re-sends a request it counts as failed, signed afresh (a new
  ``X-Slack-Request-Timestamp``), with ``X-Slack-Retry-Num`` and ``X-Slack-Retry-Reason``
  (https://docs.slack.dev/apis/events-api/#retries); the command runs once.
- Slack checks a command URL's certificate with ``ssl_check=1`` and wants a 200
  (slash commands docs, "SSL"; slack_bolt's ``SslCheck`` answers it before verifying).
- Slack sends text with ``&``, ``<``, ``>`` as ``&amp;``, ``&lt;``, ``&gt;`` ("All text in
  Slack uses the same system of escaping", message formatting docs).
- Discord's options are named (``/terry rollback host:web-01 to:1h-ago``; type 1
  subcommands nest theirs; string 3, integer 4); ``member.user`` in a guild, ``user`` in a DM
  (receiving-and-responding, "Interaction Object").
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from nacl.signing import SigningKey
from slack_sdk.signature import SignatureVerifier
from starlette.applications import Starlette
from starlette.testclient import TestClient

from terry.chat import discord, slack
from terry.chat.answer import Answer
from terry.chat.identity import ChatUser
from terry.config import Config
from terry.service.chat_routes import ChatRoutes

pytestmark = pytest.mark.unit

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # the shape of Slack's signing secrets
TEAM, ALICE = "T0123ABC", "U0456DEF"
BOB = "812345678901234567"
APP = "1099000000000000001"
HOOK = "https://hooks.slack.com/commands/T0123ABC/1234567890/abcdefABCDEF0123"


@dataclass
class Recorder:
    """Stands in for ``ChatActions``: what was said and pressed, answered at once."""

    said: list[tuple[ChatUser, str]] = field(default_factory=list)
    pressed: list[tuple[ChatUser, str, str]] = field(default_factory=list)
    answer: str = "done"

    def say(self, user: ChatUser, text: str) -> Answer:
        self.said.append((user, text))
        return Answer(self.answer)

    def press(self, user: ChatUser, action: str, value: str) -> Answer:
        self.pressed.append((user, action, value))
        return Answer(self.answer, public=True)


@dataclass
class Doors:
    client: TestClient
    actions: Recorder
    key: SigningKey
    posted: list[tuple[str, str, dict[str, Any]]]


@pytest.fixture
def doors(tmp_path: Path) -> Iterator[Doors]:
    yield from _doors(tmp_path)


def _doors(tmp_path: Path, slack_config: dict[str, Any] | None = None) -> Iterator[Doors]:
    key = SigningKey.generate()
    config = Config.model_validate(
        {
            "repo": tmp_path,
            "chat": {
                "users": {f"slack:{TEAM}/{ALICE}": "alice", f"discord:{BOB}": "bob"},
                "writers": ["alice", "bob"],
                "discord": {"public_key": key.verify_key.encode().hex()},
                "slack": slack_config or {},
            },
        }
    )
    routes = ChatRoutes(
        config, store=None, pipeline_factory=None, environ={"TERRY_SLACK_SIGNING_SECRET": SECRET}
    )  # type: ignore[arg-type]  # neither is reached: the actions are a recorder
    actions = Recorder()
    routes._actions = actions  # type: ignore[assignment]
    posted: list[tuple[str, str, dict[str, Any]]] = []
    routes._post = lambda method, url, body: posted.append((method, url, body))  # type: ignore[method-assign]
    with TestClient(Starlette(routes=routes.routes()), raise_server_exceptions=False) as client:
        yield Doors(client, actions, key, posted)
    routes.close()


def _slack_signed(body: bytes, *, stamp: int | None = None) -> dict[str, str]:
    timestamp = str(int(time.time()) if stamp is None else stamp)
    signature = SignatureVerifier(SECRET).generate_signature(timestamp=timestamp, body=body)
    assert signature is not None
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }


def _slash(text: str, trigger: str = "13345224609.738474920.8088930838d88f008e0") -> bytes:
    """A slash command's form body, field for field as Slack's docs show it."""
    return urlencode(
        {
            "token": "gIkuvaNzQIHg97ATvDxqgjtO",
            "team_id": TEAM,
            "team_domain": "example",
            "enterprise_id": "E0001",
            "enterprise_name": "Globular Construct Inc",
            "channel_id": "C2147483705",
            "channel_name": "test",
            "user_id": ALICE,
            "user_name": "Steve",
            "command": "/terry",
            "text": text,
            "api_app_id": "A123456",
            "is_enterprise_install": "false",
            "response_url": HOOK,
            "trigger_id": trigger,
        }
    ).encode()


def _discord_signed(key: SigningKey, body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    return {
        "X-Signature-Ed25519": key.sign(stamp.encode() + body).signature.hex(),
        "X-Signature-Timestamp": stamp,
        "Content-Type": "application/json",
    }


def _interaction(kind: int, data: dict[str, Any], *, dm: bool = False) -> dict[str, Any]:
    person = {"id": BOB, "username": "bob", "discriminator": "0", "global_name": "Bob"}
    who = {"user": person} if dm else {"member": {"user": person, "roles": [], "nick": None}}
    return {
        "type": kind,
        "id": "1100000000000000100",
        "application_id": APP,
        "token": "aW50ZXJhY3Rpb246MTEwMDAwMDAwMDAwMDAwMDEwMDp0b2tlbg",
        "version": 1,
        **({} if dm else {"guild_id": "290926798626357999"}),
        "channel_id": "645027906669510667",
        **who,
        "data": data,
    }


# -- Slack ----------------------------------------------------------------------------------
def test_a_slack_retry_signed_afresh_does_not_run_the_command_again(doors: Doors) -> None:
    body = _slash("approve 12")
    first = doors.client.post(
        "/api/v1/chat/slack/commands", content=body, headers=_slack_signed(body)
    )
    assert first.status_code == 200 and first.json()["text"] == "done"
    retry = {
        **_slack_signed(body, stamp=int(time.time()) + 1),
        "X-Slack-Retry-Num": "1",
        "X-Slack-Retry-Reason": "http_timeout",
    }
    again = doors.client.post("/api/v1/chat/slack/commands", content=body, headers=retry)
    assert again.status_code == 200
    # the very request again, marked as a retry: acknowledged, not run either
    again = doors.client.post("/api/v1/chat/slack/commands", content=body, headers=retry)
    assert again.status_code == 200
    assert [text for _, text in doors.actions.said] == ["approve 12"]
    # the very request again, not marked as a retry: a replay, 401
    bare = {k: v for k, v in retry.items() if not k.startswith("X-Slack-Retry")}
    replayed = doors.client.post("/api/v1/chat/slack/commands", content=body, headers=bare)
    assert replayed.status_code == 401
    # another invocation of the same words (its own trigger_id) runs
    other = _slash("approve 12", trigger="13345224609.738474920.0000000000000000000")
    doors.client.post("/api/v1/chat/slack/commands", content=other, headers=_slack_signed(other))
    assert [text for _, text in doors.actions.said] == ["approve 12", "approve 12"]


def test_a_workspace_chat_slack_workspaces_does_not_name_is_refused_before_anything_runs(
    tmp_path: Path,
) -> None:
    """One app, one signing secret, several workspaces: a request from a workspace the
    operator did not list is refused (400, named), slash command or button alike; an
    Enterprise Grid org listed by its id lets its workspaces in."""
    for doors in _doors(tmp_path, {"workspaces": [TEAM, "E0002"]}):
        url = "/api/v1/chat/slack/commands"
        ours = _slash("approve 12")
        assert doors.client.post(url, content=ours, headers=_slack_signed(ours)).status_code == 200
        theirs = ours.replace(f"team_id={TEAM}".encode(), b"team_id=T0THEIRS")
        refused = doors.client.post(url, content=theirs, headers=_slack_signed(theirs))
        assert refused.status_code == 400
        assert "workspace T0THEIRS is not one Terry answers" in refused.json()["error"]
        grid = theirs.replace(b"enterprise_id=E0001", b"enterprise_id=E0002")
        assert doors.client.post(url, content=grid, headers=_slack_signed(grid)).status_code == 200
        press = _press("T0THEIRS")
        refused = doors.client.post(
            "/api/v1/chat/slack/interactions", content=press, headers=_slack_signed(press)
        )
        assert refused.status_code == 400 and "T0THEIRS" in refused.json()["error"]
        assert [text for _, text in doors.actions.said] == ["approve 12", "approve 12"]
        assert doors.actions.pressed == [] and doors.posted == []
    with pytest.raises(ValueError, match="workspaces"):
        Config.model_validate({"repo": tmp_path, "chat": {"slack": {"workspaces": ["t-1"]}}})


def _press(team: str = TEAM) -> bytes:
    """A button press's form body (``block_actions``), as Slack's docs show one."""
    payload = {
        "type": "block_actions",
        "user": {"id": ALICE, "username": "alice", "name": "alice", "team_id": team},
        "api_app_id": "A02",
        "token": "Shh_its_a_seekrit",
        "container": {"type": "message", "message_ts": "1548261231.000200", "is_ephemeral": False},
        "trigger_id": "12466734323.1395872398",
        "team": {"id": team, "domain": "example"},
        "channel": {"id": "C2147483705", "name": "test"},
        "response_url": "https://hooks.slack.com/actions/T0123ABC/1234/abcdef",
        "actions": [
            {
                "action_id": "terry:approve:0",
                "block_id": "bXu",
                "text": {"type": "plain_text", "text": "Approve 12", "emoji": True},
                "value": "12",
                "type": "button",
                "action_ts": "1548426417.840180",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def test_a_retried_button_press_runs_once(doors: Doors) -> None:
    body = _press()
    url = "/api/v1/chat/slack/interactions"
    assert doors.client.post(url, content=body, headers=_slack_signed(body)).status_code == 200
    retry = _slack_signed(body, stamp=int(time.time()) + 2) | {
        "X-Slack-Retry-Num": "2",
        "X-Slack-Retry-Reason": "http_error",
    }
    assert doors.client.post(url, content=body, headers=retry).status_code == 200
    deadline = time.monotonic() + 5
    while not doors.posted and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # a second run, were there one, would be in by now
    assert doors.actions.pressed == [(doors.actions.pressed[0][0], "approve", "12")]
    assert len(doors.posted) == 1


def test_slacks_certificate_check_is_answered_200_and_nothing_runs(doors: Doors) -> None:
    body = b"ssl_check=1&token=gIkuvaNzQIHg97ATvDxqgjtO"
    for url in ("/api/v1/chat/slack/commands", "/api/v1/chat/slack/interactions"):
        response = doors.client.post(
            url, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert response.status_code == 200 and response.content == b""
        assert doors.client.post(url, content=body, headers=_slack_signed(body)).status_code == 200
    assert doors.actions.said == [] and doors.actions.pressed == []


def test_slash_text_arrives_html_escaped_and_is_read_as_typed(doors: Doors) -> None:
    doors.actions.answer = "Refused: <!channel> & @here"
    body = _slash("reject 12 load &lt;&lt; 2 &amp;&amp; &lt;!channel&gt; &amp;lt;")
    response = doors.client.post(
        "/api/v1/chat/slack/commands", content=body, headers=_slack_signed(body)
    )
    assert [text for _, text in doors.actions.said] == ["reject 12 load << 2 && <!channel> &lt;"]
    said = response.json()
    assert said["text"] == "Refused: &lt;!channel&gt; &amp; @\u200bhere"  # and escaped again


def test_unicode_bodies_are_verified_and_read(doors: Doors) -> None:
    body = _slash("reject 12 — pas pendant la mise à jour 🚫 日本")
    response = doors.client.post(
        "/api/v1/chat/slack/commands", content=body, headers=_slack_signed(body)
    )
    assert response.status_code == 200
    assert doors.actions.said[-1][1] == "reject 12 — pas pendant la mise à jour 🚫 日本"


@pytest.mark.parametrize(
    "headers",
    [
        {},  # unsigned
        {"X-Slack-Request-Timestamp": "1531420618", "X-Slack-Signature": "v0=" + "a" * 64},
        {"X-Slack-Request-Timestamp": "now", "X-Slack-Signature": "v0=abc"},
        {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": b"v0=\xe9"},
        {"X-Slack-Request-Timestamp": str(int(time.time()))},
    ],
)
def test_wrong_missing_or_odd_slack_signatures_are_401(
    doors: Doors, headers: dict[str, str | bytes]
) -> None:
    for body in (_slash("help"), b"text=\xff\xfe&user_id=U1"):  # the second is not UTF-8
        response = doors.client.post("/api/v1/chat/slack/commands", content=body, headers=headers)
        assert response.status_code == 401, (headers, body)
    assert doors.actions.said == []


def test_an_old_slack_signature_is_401(doors: Doors) -> None:
    body = _slash("help")
    old = _slack_signed(body, stamp=int(time.time()) - 5 * 60 - 30)
    response = doors.client.post("/api/v1/chat/slack/commands", content=body, headers=old)
    assert response.status_code == 401 and doors.actions.said == []


# -- Discord --------------------------------------------------------------------------------
def _command(doors: Doors, data: dict[str, Any], *, dm: bool = False) -> Any:
    body = json.dumps(_interaction(2, data, dm=dm), ensure_ascii=False).encode()
    return doors.client.post(
        "/api/v1/chat/discord/interactions", content=body, headers=_discord_signed(doors.key, body)
    )


def test_discord_named_options_are_read_as_the_grammar_names_them(doors: Doors) -> None:
    rollback = {
        "id": "1",
        "name": "terry",
        "type": 1,
        "options": [
            {
                "name": "rollback",
                "type": 1,
                "options": [
                    {"name": "host", "type": 3, "value": "web-01"},
                    {"name": "to", "type": 3, "value": "1h-ago"},
                ],
            }
        ],
    }
    incidents = {
        "id": "1",
        "name": "terry",
        "type": 1,
        "options": [
            {
                "name": "incidents",
                "type": 1,
                "options": [
                    {"name": "since", "type": 3, "value": "last-week"},
                    {"name": "severity", "type": 3, "value": "critical"},
                ],
            }
        ],
    }
    approve = {
        "id": "1",
        "name": "terry",
        "type": 1,
        "options": [
            {"name": "approve", "type": 1, "options": [{"name": "id", "type": 4, "value": 12}]}
        ],
    }
    for data in (rollback, incidents, approve):
        answer = _command(doors, data).json()
        assert answer["type"] == 4 and answer["data"]["allowed_mentions"] == {"parse": []}
    assert [text for _, text in doors.actions.said] == [
        "rollback web-01 --to=1h-ago",
        "incidents --since=last-week --severity=critical",
        "approve 12",
    ]


def test_discord_guild_member_and_dm_user_are_the_same_person(doors: Doors) -> None:
    data = {"id": "1", "name": "terry", "type": 1}
    data["options"] = [{"name": "text", "type": 3, "value": "status web-01 ✓ ünï"}]
    _command(doors, data)
    _command(doors, data, dm=True)
    [(guild, text), (direct, _)] = doors.actions.said
    assert guild == direct and guild.key == f"discord:{BOB}" and guild.name == "bob"
    assert text == "status web-01 ✓ ünï"


def test_discord_answers_render_mentions_inert(doors: Doors) -> None:
    doors.actions.answer = "drift @everyone @here <@81234> <@&4242> <#645027906669510667>"
    data = {"id": "1", "name": "terry", "type": 1}
    data["options"] = [{"name": "text", "type": 3, "value": "status web-01"}]
    message = _command(doors, data).json()["data"]
    assert message["allowed_mentions"] == {"parse": []}
    content = message["content"]
    for live in ("@everyone", "@here", "<@81234>", "<@&4242>", "<#645027906669510667>"):
        assert live not in content, content
    shown = content.replace("\\", "").replace("\u200b", "")
    assert shown == doors.actions.answer  # still readable


def test_discord_ping_and_bad_signatures(doors: Doors) -> None:
    body = json.dumps({"type": 1, "id": "1", "application_id": APP, "token": "t", "version": 1})
    raw = body.encode()
    url = "/api/v1/chat/discord/interactions"
    assert doors.client.post(url, content=raw, headers=_discord_signed(doors.key, raw)).json() == {
        "type": 1
    }
    wrong = _discord_signed(SigningKey.generate(), raw)
    assert doors.client.post(url, content=raw, headers=wrong).status_code == 401
    assert doors.client.post(url, content=raw).status_code == 401
    odd = {"X-Signature-Ed25519": b"\xe9" * 4, "X-Signature-Timestamp": str(int(time.time()))}
    assert doors.client.post(url, content=raw, headers=odd).status_code == 401


def test_message_shapes_stay_as_documented() -> None:
    # Discord: a message's content holds 2000 characters, even once escaped
    long = discord.message(Answer("*" * 1990 + " @everyone"))
    assert len(long["content"]) <= 2000
    # Slack: the broadcast words are broken up, markup escaped, nothing else touched
    assert slack.escape("a <b> & @Channel é") == "a &lt;b&gt; &amp; @\u200bChannel é"
