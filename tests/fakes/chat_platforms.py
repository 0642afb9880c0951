"""The far sides of Slack and Discord for tests, as the platforms document them.

- ``SlackReceiver``: the ``response_url`` an app posts follow-ups to (a JSON message:
  ``text``, ``blocks``, ``response_type``, ``replace_original``); Slack answers ``ok``.
  https://api.slack.com/interactivity/handling#message_responses
- ``FakeDiscord``: the interaction webhook: ``PATCH /webhooks/{application_id}/{token}/
  messages/@original`` edits the first answer, ``POST /webhooks/{application_id}/{token}``
  sends a follow-up; both answer the message object.
  https://discord.com/developers/docs/interactions/receiving-and-responding
- ``slack_headers`` and ``discord_headers``: the signatures the platforms send, made with
  real keys (Slack's ``v0`` HMAC-SHA256 over ``v0:timestamp:body``; Discord's Ed25519 over
  ``timestamp + body``).

Either can be told to fail the next requests (``fail``: a status code) to play an outage.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.local_server import LocalServer

__all__ = ["Delivery", "FakeDiscord", "SlackReceiver", "discord_headers", "slack_headers"]


@dataclass(frozen=True)
class Delivery:
    method: str
    path: str
    body: Any


class _Recorder(LocalServer):
    def __init__(self) -> None:
        super().__init__()
        self.deliveries: list[Delivery] = []
        self._failures: list[int] = []
        self._lock = threading.Lock()

    def fail(self, status: int, *, count: int = 1) -> None:
        with self._lock:
            self._failures.extend([status] * count)

    async def _record(self, request: Request) -> int | None:
        """Record the request; the status to fail it with, if one is scripted."""
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with self._lock:
            self.deliveries.append(Delivery(request.method, request.url.path, body))
            return self._failures.pop(0) if self._failures else None

    def wait(self, path: str, *, timeout: float = 180, after: int = 0) -> list[Delivery]:
        """The deliveries to ``path`` (beyond the first ``after``), once there is one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = [d for d in self.deliveries if d.path == path][after:]
            if found:
                return found
            time.sleep(0.1)
        raise AssertionError(f"nothing delivered to {path} within {timeout}s")


class SlackReceiver(_Recorder):
    label = "Slack response_url receiver"

    def url(self, name: str) -> str:
        return f"{self.base_url}/actions/{name}"

    def _app(self) -> Starlette:
        return Starlette(routes=[Route("/actions/{name}", self._post, methods=["POST"])])

    async def _post(self, request: Request) -> Response:
        failed = await self._record(request)
        if failed:
            return JSONResponse({"ok": False, "error": "internal_error"}, failed)
        return JSONResponse({"ok": True})


class FakeDiscord(_Recorder):
    label = "fake Discord API"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/v10"

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(
                    "/api/v10/webhooks/{application}/{token}/messages/@original",
                    self._message,
                    methods=["PATCH"],
                ),
                Route("/api/v10/webhooks/{application}/{token}", self._message, methods=["POST"]),
            ]
        )

    async def _message(self, request: Request) -> Response:
        failed = await self._record(request)
        if failed:
            return JSONResponse({"message": "500: Internal Server Error", "code": 0}, failed)
        body = self.deliveries[-1].body
        content = body.get("content", "") if isinstance(body, dict) else ""
        return JSONResponse({"id": "1100000000000000001", "type": 0, "content": content})


def slack_headers(secret: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + stamp.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def discord_headers(
    signing_key: Any, body: bytes, *, timestamp: int | None = None
) -> dict[str, str]:
    """``signing_key``: a ``nacl.signing.SigningKey``."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = signing_key.sign(stamp.encode() + body).signature.hex()
    return {
        "X-Signature-Ed25519": signature,
        "X-Signature-Timestamp": stamp,
        "Content-Type": "application/json",
    }
