"""A local Slack Web API (``chat.postMessage``) and ``response_url``, as Slack documents them.

- ``POST /api/chat.postMessage`` (https://api.slack.com/methods/chat.postMessage): the token
  in ``Authorization: Bearer xoxb-...``; the arguments as a form body
  (``application/x-www-form-urlencoded``, ``blocks`` a JSON string) or as JSON. Slack
  answers HTTP 200 with ``{"ok": true, "channel": ..., "ts": ..., "message": {...}}``, and
  refusals with HTTP 200 too: ``{"ok": false, "error": "not_authed" | "invalid_auth" |
  "channel_not_found" | "not_in_channel" | "no_text" | "invalid_blocks"}``. Rate limits
  are HTTP 429 with ``Retry-After`` (seconds) (https://api.slack.com/apis/rate-limits).
  A ``thread_ts`` makes the message a reply;
  ``reply_broadcast`` also shows it in the channel.
- ``POST /actions/{n}``: a button's ``response_url``; a JSON message whose
  ``replace_original`` replaces the message the button was on (same ``ts``).
  https://api.slack.com/interactivity/handling#message_responses

``script`` plays what goes wrong, one entry per request: ``"429:2"`` (rate limited,
``Retry-After: 2``), ``"500"``, or an ``ok: false`` error name.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.fakes.local_server import LocalServer

__all__ = ["FakeSlackApi", "Posted"]

TOKEN = "xoxb-1111-2222-s3cr3tB0tT0kenOfTheTests"


@dataclass
class Posted:
    """One message in a channel, as Slack keeps it (replaced in place by a response_url)."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str = ""
    broadcast: bool = False
    replaced: list[dict[str, Any]] = field(default_factory=list)  # response_url messages

    @property
    def buttons(self) -> list[dict[str, Any]]:
        return [
            e
            for b in self.blocks
            if b.get("type") == "actions"
            for e in b.get("elements", [])
            if e.get("type") == "button"
        ]


class FakeSlackApi(LocalServer):
    label = "fake Slack Web API"

    def __init__(
        self,
        *,
        channels: tuple[str, ...] = ("C0TERRY01",),
        member_of: tuple[str, ...] | None = None,
    ) -> None:
        super().__init__()
        self.token = TOKEN
        self.channels = set(channels)
        self.member_of = set(channels if member_of is None else member_of)
        self.script: list[str] = []
        self.messages: list[Posted] = []
        self.requests: list[tuple[str, str]] = []  # (auth header seen, what was answered)
        self._clock = 1_700_000_000.0
        self._lock = threading.Lock()

    @property
    def api_url(self) -> str:
        return self.base_url + "/api/"

    def response_url(self, n: int) -> str:
        return f"{self.base_url}/actions/{n}"

    # -- what tests read ------------------------------------------------------------------
    def top(self) -> list[Posted]:
        with self._lock:
            return [m for m in self.messages if not m.thread_ts]

    def replies(self, ts: str) -> list[Posted]:
        with self._lock:
            return [m for m in self.messages if m.thread_ts == ts]

    def wait(self, predicate: Any, *, timeout: float = 120, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = predicate()
            if found:
                return found
            time.sleep(0.1)
        raise AssertionError(f"the fake Slack never saw {what} within {timeout}s: {self.messages}")

    # -- the API --------------------------------------------------------------------------
    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/chat.postMessage", self._post_message, methods=["POST"]),
                Route("/actions/{n}", self._respond, methods=["POST"]),
            ]
        )

    @staticmethod
    async def _arguments(request: Request) -> dict[str, Any]:
        raw = await request.body()
        kind = request.headers.get("content-type", "")
        if kind.startswith("application/json"):
            found = json.loads(raw or b"{}")
            return found if isinstance(found, dict) else {}
        form = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
        if isinstance(form.get("blocks"), str):
            form["blocks"] = json.loads(form["blocks"])
        return form

    def _answer(self, auth: str, error: str) -> JSONResponse:
        with self._lock:
            self.requests.append((auth, error or "ok"))
        return JSONResponse({"ok": False, "error": error})

    async def _post_message(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        with self._lock:
            scripted = self.script.pop(0) if self.script else ""
        if scripted.startswith("429"):
            wait = scripted.partition(":")[2] or "1"
            with self._lock:
                self.requests.append((auth, "429"))
            return JSONResponse(
                {"ok": False, "error": "ratelimited"},
                status_code=429,
                headers={"Retry-After": wait},
            )
        if scripted == "500":
            with self._lock:
                self.requests.append((auth, "500"))
            return PlainTextResponse("upstream trouble", status_code=500)
        if scripted:
            return self._answer(auth, scripted)
        if not auth.startswith("Bearer "):
            return self._answer(auth, "not_authed")
        if auth.removeprefix("Bearer ") != self.token:
            return self._answer(auth, "invalid_auth")
        args = await self._arguments(request)
        channel = str(args.get("channel") or "")
        if channel not in self.channels:
            return self._answer(auth, "channel_not_found")
        if channel not in self.member_of:
            return self._answer(auth, "not_in_channel")
        text, blocks = str(args.get("text") or ""), args.get("blocks") or []
        if not text and not blocks:
            return self._answer(auth, "no_text")
        if not isinstance(blocks, list) or not all(
            isinstance(b, dict) and b.get("type") in ("section", "actions") for b in blocks
        ):
            return self._answer(auth, "invalid_blocks")
        thread_ts = str(args.get("thread_ts") or "")
        with self._lock:
            self._clock += 1
            ts = f"{self._clock:.6f}"
            broadcast = str(args.get("reply_broadcast")).lower() == "true"
            self.messages.append(Posted(channel, ts, text, blocks, thread_ts, broadcast))
            self.requests.append((auth, "ok"))
        message = {"type": "message", "text": text, "ts": ts, "blocks": blocks}
        return JSONResponse({"ok": True, "channel": channel, "ts": ts, "message": message})

    async def _respond(self, request: Request) -> Response:
        """A response_url: the answer replaces the message whose button was pressed (the
        test names it in ``?ts=``); Slack answers ``ok``."""
        body = json.loads(await request.body())
        ts = request.query_params.get("ts", "")
        with self._lock:
            for m in self.messages:
                if m.ts == ts:
                    m.replaced.append(body)
                    if body.get("replace_original"):
                        m.text, m.blocks = body.get("text", ""), body.get("blocks", [])
        return PlainTextResponse("ok")
