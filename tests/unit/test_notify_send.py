"""Sending one notification (terry.notify.send) to local receivers that answer as the
services document it:

- Slack incoming webhooks (https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks):
  ``200 ok``; errors as a text body (``400 invalid_payload``, ``404 no_service``, ``410
  channel_is_archived``); ``429`` with ``Retry-After`` (seconds).
- Discord's Execute Webhook (https://discord.com/developers/docs/resources/webhook): ``204``;
  ``400`` with a JSON ``message`` and ``code``; ``429`` with a JSON ``retry_after`` (seconds)
  and ``Retry-After``. ``content`` is Markdown; ``allowed_mentions`` decides who is pinged.
- a generic JSON endpoint (apprise's ``json://`` body), up, down or hanging;
- an SMTP server, for apprise's email plugin.
"""

from __future__ import annotations

import asyncio
import email
import json
import logging
import re
import socketserver
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message as Email
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from terry.config import RouteConfig
from terry.errors import ConfigError
from terry.notify.events import Event, EventKind
from terry.notify.message import Message, compose
from terry.notify.routes import Target, target_for
from terry.notify.send import DeliveryError, check, send
from terry.ports import free_port
from tests.fakes.local_server import LocalServer

SLACK = "/services/T0TERRY01/B0TERRY02/sl4ckS3cretT0ken"
DISCORD = "/api/webhooks/1234567890/d1scordS3cretT0ken"
JSON = "/hook/js0nS3cretT0ken"
SECRETS = ("sl4ckS3cretT0ken", "d1scordS3cretT0ken", "js0nS3cretT0ken")


class Receivers(LocalServer):
    """Slack-, Discord- and JSON-shaped receivers on loopback. ``script``: the answers to
    give next, in order (status, body, headers); after them each answers as its service
    does when all is well. ``delay``: seconds before answering."""

    label = "notification receivers"

    def __init__(self) -> None:
        super().__init__()
        self.script: list[tuple[int, Any, dict[str, str]]] = []
        self.received: list[tuple[str, dict[str, Any], float]] = []
        self.delay = 0.0

    def url(self, path: str) -> str:
        return self.base_url + path

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [body for p, body, _ in self.received if p == path]

    async def _answer(self, request: Request) -> Response:
        body = json.loads(await request.body())
        self.received.append((request.url.path, body, time.monotonic()))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.script:
            status, content, headers = self.script.pop(0)
            if isinstance(content, dict):
                return JSONResponse(content, status_code=status, headers=headers)
            return PlainTextResponse(content, status_code=status, headers=headers)
        if request.url.path.startswith("/services/"):
            return PlainTextResponse("ok")
        if request.url.path.startswith("/api/webhooks/"):
            return Response(status_code=204)
        return JSONResponse({"ok": True})

    def _app(self) -> Starlette:
        return Starlette(routes=[Route("/{rest:path}", self._answer, methods=["POST"])])


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    r = Receivers()
    r.start()
    yield r
    r.stop()


def _route(**fields: Any) -> RouteConfig:
    return RouteConfig.model_validate({"name": "oncall", "url_env": "HOOK", **fields})


def _target(url: str, format: str = "auto") -> Target:
    return target_for(_route(format=format), {"HOOK": url})


def _failure(target: Target, *, timeout: float = 5) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        send(target, Message("[Terry] test", "body"), timeout=timeout)
    for secret in SECRETS:
        assert secret not in str(caught.value) and secret not in caught.value.why
    return caught.value


def _hostile(title: str) -> Event:
    return Event(
        kind=EventKind.INCIDENT_OPENED,
        audit_id=1,
        at=datetime.now(UTC),
        actor="terry",
        reason="",
        incident_id=7,
        ref="INC-2026-12-04-007",
        title=title,
        host="db-01",
        environment="production",
    )


# -- what the services answer -----------------------------------------------------------


def test_slack_refusals_are_recorded_in_slacks_own_words(receivers: Receivers) -> None:
    target = _target(receivers.url(SLACK), "slack")
    receivers.script = [(400, "invalid_payload", {}), (404, "no_service", {})]
    assert _failure(target).why == "answered 400 (invalid_payload)"
    assert _failure(target).why == "answered 404 (no_service)"
    receivers.script = [(410, "channel_is_archived", {})]
    failed = _failure(target)
    assert str(failed) == (
        "route oncall (http://127.0.0.1) answered 410 (channel_is_archived)"
        " (not retried: mend the route, then retry it)"
    )
    assert failed.permanent


def test_discord_refusals_say_discords_message_and_code(receivers: Receivers) -> None:
    target = _target(receivers.url(DISCORD), "discord")
    receivers.script = [(400, {"message": "Invalid Form Body", "code": 50035}, {})]
    assert _failure(target).why == "answered 400 (Invalid Form Body (code 50035))"


def test_a_refusal_that_echoes_the_url_does_not_show_it(receivers: Receivers) -> None:
    target = _target(receivers.url(JSON), "json")
    receivers.script = [(404, f"no route for POST {JSON}", {})]
    failed = _failure(target)
    assert failed.why.startswith("answered 404 (no route for POST ") and "[redacted]" in failed.why


def test_a_429_that_fits_in_the_timeout_is_waited_out_once(receivers: Receivers) -> None:
    receivers.script = [(429, "rate_limited", {"Retry-After": "1"})]
    send(_target(receivers.url(SLACK), "slack"), Message("[Terry] hi", ""), timeout=5)
    [first, second] = [at for _, _, at in receivers.received]
    assert second - first >= 0.95
    assert [b["text"] for b in receivers.bodies(SLACK)] == ["[Terry] hi", "[Terry] hi"]


def test_a_longer_429_is_handed_to_the_outbox_with_its_wait(receivers: Receivers) -> None:
    # Discord: the JSON retry_after (seconds, a float) is the exact one.
    limited = {"message": "You are being rate limited.", "retry_after": 64.57, "global": False}
    receivers.script = [(429, limited, {"Retry-After": "65"})]
    failed = _failure(_target(receivers.url(DISCORD), "discord"))
    assert failed.retry_after == pytest.approx(64.57)
    assert failed.why == "answered 429 (rate limited, retry after 64.57s)"
    assert not failed.permanent  # tried again by the outbox, after the wait
    # Slack: Retry-After, in seconds or as a date.
    receivers.script = [(429, "rate_limited", {"Retry-After": "30"})]
    assert _failure(_target(receivers.url(SLACK), "slack"), timeout=2).retry_after == 30
    later = (datetime.now(UTC) + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    receivers.script = [(429, "rate_limited", {"Retry-After": later})]
    assert 80 < (_failure(_target(receivers.url(SLACK), "slack")).retry_after or 0) <= 90
    assert len(receivers.received) == 3  # none of them sent twice


def test_a_second_429_is_not_waited_for_again(receivers: Receivers) -> None:
    receivers.script = [(429, "rate_limited", {"Retry-After": "0"})] * 3
    failed = _failure(_target(receivers.url(SLACK), "slack"))
    assert failed.retry_after == 0 and len(receivers.received) == 2


def test_a_json_endpoint_that_is_down_fails_fast_and_says_so() -> None:
    started = time.monotonic()
    failed = _failure(_target(f"http://127.0.0.1:{free_port()}{JSON}"), timeout=5)
    assert failed.why.startswith("unreachable")
    assert time.monotonic() - started < 3


def test_a_receiver_that_does_not_answer_costs_one_timeout(receivers: Receivers) -> None:
    receivers.delay = 3
    started = time.monotonic()
    assert _failure(_target(receivers.url(JSON)), timeout=0.5).why == "did not answer within 0.5s"
    assert time.monotonic() - started < 2


def test_urls_never_reach_the_log(receivers: Receivers, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    send(_target(receivers.url(JSON)), Message("[Terry] hi", ""), timeout=5)
    receivers.script = [(500, "boom", {})]
    _failure(_target(receivers.url(SLACK), "slack"))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "HTTP Request: POST [redacted]" in logged  # httpx's own line, scrubbed
    for secret in SECRETS:
        assert secret not in logged


def test_the_generic_json_body_is_apprises(receivers: Receivers) -> None:
    send(_target(receivers.url(JSON) + "?team=ops"), Message("[Terry] t", "b"), timeout=5)
    [body] = receivers.bodies(JSON)
    assert body == {
        "version": "1.0",
        "title": "[Terry] t",
        "message": "b",
        "attachments": [],
        "type": "info",
    }


# -- untrusted text, rendered inert for each service ------------------------------------

# Alert titles (at most 120 characters are shown: one message each).
HOSTILE = (
    "Disk [click me](https://evil.example/login) **urgent** ||hidden|| __u__ ~~s~~",
    "Disk \\*x\\* @everyone @here <@123456> <@&987> `code`",
    "Disk <!channel> <@U123|boss> <http://evil.example|safe> @here",
)


def _sent(receivers: Receivers, url: str, format: str) -> list[dict[str, Any]]:
    target = _target(url, format)
    for title in HOSTILE:
        send(target, compose([_hostile(title)], markup=target.markup), timeout=5)
    return [b for p, b, _ in receivers.received]


def test_discord_gets_no_markdown_and_no_mentions_from_alert_text(receivers: Receivers) -> None:
    assert _target(receivers.url(DISCORD), "discord").markup == "discord"
    bodies = _sent(receivers, receivers.url(DISCORD), "discord")
    assert all(b["allowed_mentions"] == {"parse": []} for b in bodies)
    for body in bodies:
        assert body["content"].startswith("[Terry] INC-2026-12-04-007 incident opened: Disk ")
        assert body["content"].endswith(" on db-01 (production)")
    content = "\n".join(b["content"] for b in bodies)
    assert not re.search(r"(?<!\\)\[click me\]\(", content)
    assert "\\[click me](https://evil.example/login)" in content  # the URL itself still works
    assert "\\*\\*urgent\\*\\*" in content and "\\|\\|hidden\\|\\|" in content
    assert "\\_\\_u\\_\\_" in content and "\\~\\~s\\~\\~" in content
    assert not re.search(r"(?<!\\)[*|~_]", content.replace("\\\\", ""))
    assert "\\\\\\*x\\\\\\*" in content  # the text's own backslash cannot undo the escape
    for mention in ("@everyone", "@here", "<@123456>", "<@&987>"):
        assert mention not in content
    assert "`" not in content


def test_a_native_discord_url_is_escaped_for_discord_too() -> None:
    for url in (
        "https://discord.com/api/webhooks/1234567890/d1scordS3cretT0ken",
        "discord://1234567890/d1scordS3cretT0ken",
    ):
        assert _target(url).markup == "discord"
    assert _target("slack://T0/B0/sl4ckS3cretT0ken").markup == "slack"
    assert _target("mailto://ops.example.org").markup == "text"
    message = compose([_hostile(HOSTILE[0])], markup="text")
    assert "[click me](https://evil.example/login)" in message.text  # JSON: no markup


class _Answer:
    def __init__(self, status: int, content: bytes) -> None:
        self.status_code, self.content, self.headers = status, content, {}


def test_discord_and_slack_own_webhook_urls_through_apprise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """apprise posts these to discord.com and hooks.slack.com (fixed hosts), so its HTTP
    call is replaced here: Discord's content (Markdown, at most 2000 characters, else a 400)
    gets Terry's escapes and is cut to fit; Slack's text is escaped by apprise itself."""
    import apprise.plugins.discord
    import apprise.plugins.slack

    sent: list[dict[str, Any]] = []

    def discord_post(url: str, **kwargs: Any) -> _Answer:
        sent.append(json.loads(kwargs["data"]))
        return _Answer(204, b"")

    def slack_request(method: str, url: str, **kwargs: Any) -> _Answer:
        sent.append(json.loads(kwargs["data"]))
        return _Answer(200, b"ok")

    monkeypatch.setattr(apprise.plugins.discord.requests, "post", discord_post)
    monkeypatch.setattr(apprise.plugins.slack.requests, "request", slack_request)
    storm = [_hostile(f"{HOSTILE[0]} {n}") for n in range(30)]
    target = _target("https://discord.com/api/webhooks/1234567890/d1scordS3cretT0ken")
    send(target, compose(storm, markup=target.markup, max_items=30), timeout=5)
    [discord] = sent
    assert len(discord["content"]) <= 2000
    assert "\\*\\*urgent\\*\\*" in discord["content"] and "**urgent**" not in discord["content"]
    target = _target("https://hooks.slack.com/services/T0TERRY01/B0TERRY02/sl4ckS3cretT0ken")
    send(target, compose([_hostile(HOSTILE[2])], markup=target.markup), timeout=5)
    [attachment] = sent[1]["attachments"]
    assert "&lt;!channel&gt;" in attachment["title"] and "<!channel>" not in attachment["title"]
    assert "&lt;http://evil.example|safe&gt;" in attachment["title"]


def test_slack_gets_no_links_or_mentions_from_alert_text(receivers: Receivers) -> None:
    text = "\n".join(b["text"] for b in _sent(receivers, receivers.url(SLACK), "slack"))
    for live in ("<!channel>", "<@U123", "<http://evil.example|safe>", "<@123456>", "@here"):
        assert live not in text
    assert "<" not in text and ">" not in text
    assert "&lt;!channel&gt;" in text and "&lt;http://evil.example|safe&gt;" in text


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) for one message at a time."""

    def _say(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self._say("220 localhost ESMTP test")
        while line := self.rfile.readline():
            verb = line.decode().strip().split(" ")[0].upper()
            if verb == "EHLO":
                self._say("250-localhost")
                self._say("250 8BITMIME")
            elif verb == "DATA":
                self._say("354 go ahead")
                data = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk
                self.server.messages.append(email.message_from_bytes(data))  # type: ignore[attr-defined]
                self._say("250 queued")
            elif verb == "QUIT":
                self._say("221 bye")
                return
            else:  # HELO, MAIL, RCPT, RSET, NOOP
                self._say("250 ok")


@pytest.fixture
def smtp() -> Iterator[tuple[int, list[Email]]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    server.messages = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], server.messages  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def _parts(message: Email) -> dict[str, str]:
    return {
        part.get_content_type(): part.get_payload(decode=True).decode()
        for part in message.walk()
        if not part.is_multipart()
    }


def test_email_through_apprise_shows_html_in_alert_text_as_text(
    smtp: tuple[int, list[Email]],
) -> None:
    port, received = smtp
    base = f"mailto://127.0.0.1:{port}?from=terry@example.org&to=ops@example.org"
    title = "<b>Disk</b> <script>alert(1)</script> <a href='https://evil.example'>x</a>"
    for url in (base, base + "&format=html"):
        target = _target(url)
        send(target, compose([_hostile(title)], markup=target.markup), timeout=5)
    plain, html = received
    assert "<script>" in _parts(plain)["text/plain"]  # text/plain: shown as written
    shown = _parts(html)["text/html"]
    assert "<script>" not in shown and "<a href" not in shown and "<b>" not in shown
    assert "&lt;script&gt;" in shown


# -- secrets and bad URLs ---------------------------------------------------------------


def test_a_token_in_an_apprise_urls_host_is_never_shown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # Telegram's, Pushbullet's, PagerDuty's URLs hold the token where a host would be.
    telegram = _target("tgram://123456789:aah-b0t-s3cret-t0ken/-100123")
    assert telegram.where == "tgram://"
    assert "b0t-s3cret" not in telegram.redactor("tgram://123456789:aah-b0t-s3cret-t0ken")
    unknown = _target("nosuchservice://s3cret-h0st-t0ken/more")
    failed = _failure(unknown)
    assert "s3cret-h0st-t0ken" not in str(failed) and "nosuchservice://" in str(failed)
    assert "s3cret-h0st-t0ken" not in "\n".join(r.getMessage() for r in caplog.records)
    # A web host is a host: shown. Its user, password and query values are not.
    web = _target("https://bot:pa55word@hooks.example.org/in?key=qu3ry-s3cret", "slack")
    assert web.where == "https://hooks.example.org"
    hidden = web.redactor("pa55word qu3ry-s3cret key=qu3ry-s3cret")
    assert "pa55word" not in hidden and "qu3ry-s3cret" not in hidden


def test_basic_auth_in_a_webhook_url_is_sent_as_a_header(receivers: Receivers) -> None:
    url = receivers.url(JSON).replace("://", "://bot:pa55word@")
    send(_target(url), Message("[Terry] hi", ""), timeout=5)
    assert len(receivers.bodies(JSON)) == 1


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("", "$HOOK is not set"),
        ("hooks.example.org/x", "$HOOK is not a URL"),
        ("http://[oops/x", "$HOOK is not a URL that can be read"),
        ("https://hooks.example.org:port/x", "$HOOK is not a URL that can be read"),
        ("https:///only/a/path", "$HOOK has no host"),
    ],
)
def test_a_route_url_that_cannot_be_used_is_a_config_error(value: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error.replace("$", r"\$")):
        _target(value)
    assert error in (check(_route(), {"HOOK": value}) or "")


def test_check_names_what_is_wrong_without_sending() -> None:
    assert check(_route(), {"HOOK": "https://hooks.example.org/x"}) is None
    assert check(_route(), {"HOOK": "json://hooks.example.org/x"}) is None
    unknown = check(_route(), {"HOOK": "nosuchservice://s3cret-h0st-t0ken/x"})
    assert unknown == "route oncall: apprise does not know the URL in $HOOK (nosuchservice://)"
    wrong = check(_route(format="slack"), {"HOOK": "mailto://ops.example.org"})
    assert wrong and "format slack needs an http(s) URL in $HOOK" in wrong
