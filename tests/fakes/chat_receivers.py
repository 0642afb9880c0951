"""Chat receivers on loopback, following the services' documented incoming-webhook shapes.

- Slack (https://api.slack.com/messaging/webhooks): ``POST /services/T.../B.../X...`` with
  JSON ``{"text": ...}`` (or ``blocks``); answers ``200 ok``, or ``400 no_text`` /
  ``400 invalid_payload``.
- Discord (https://discord.com/developers/docs/resources/webhook#execute-webhook):
  ``POST /api/webhooks/ID/TOKEN`` with JSON ``{"content": ...}`` (at most 2000 characters)
  or ``embeds``; answers ``204`` (no ``?wait=true``), or ``400`` with a JSON error.
- Generic JSON: ``POST /hook/...`` with any JSON object; answers ``200``.

``mode`` makes every receiver fail the way real ones do: a status (``"500"``, ``"404"``,
``"409"``) answers it, ``"hang"`` never answers (until ``release()`` or the test's end).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.fakes.local_server import LocalServer

__all__ = ["ChatReceivers"]

SLACK_PATH = "/services/T0TERRY01/B0TERRY02/s3cr3tSlackT0ken"
DISCORD_PATH = "/api/webhooks/1234567890/s3cr3t-Discord-T0ken"
JSON_PATH = "/hook/s3cr3t-json-t0ken"


class ChatReceivers(LocalServer):
    label = "chat receivers"

    def __init__(self) -> None:
        super().__init__()
        self.mode = "ok"  # ok | a status ("500", "404", ...) | hang
        self.received: list[tuple[str, dict[str, Any]]] = []  # (slack|discord|json, body)
        self.refused: list[tuple[str, str]] = []  # (kind, why): bodies that broke the shape
        self.attempts = 0
        self._release = threading.Event()
        self._lock = threading.Lock()

    # -- what tests read ------------------------------------------------------------------
    @property
    def slack_url(self) -> str:
        return self.base_url + SLACK_PATH

    @property
    def discord_url(self) -> str:
        return self.base_url + DISCORD_PATH

    @property
    def json_url(self) -> str:
        return self.base_url + JSON_PATH

    def bodies(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [body for k, body in self.received if k == kind]

    def texts(self, kind: str) -> list[str]:
        field = {"slack": "text", "discord": "content", "json": "message"}[kind]
        return [str(b.get(field, "")) for b in self.bodies(kind)]

    def release(self) -> None:
        """Let hanging requests go (they then answer 500: too late to count)."""
        self._release.set()

    def stop(self) -> None:
        self.release()
        super().stop()

    def wait_for(self, kind: str, count: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.bodies(kind)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{kind}: {len(self.bodies(kind))} of {count} message(s)")
            time.sleep(0.05)
        return self.bodies(kind)

    # -- the services -------------------------------------------------------------------
    async def _failure(self) -> Response | None:
        with self._lock:
            self.attempts += 1
        if self.mode.isdigit():
            status = int(self.mode)
            return PlainTextResponse("internal error" if status == 500 else "no_service", status)
        if self.mode == "hang":
            while not self._release.is_set():
                await asyncio.sleep(0.05)
            return PlainTextResponse("too late", status_code=500)
        return None

    async def _json(self, request: Request) -> dict[str, Any] | None:
        if request.headers.get("content-type", "").split(";")[0] != "application/json":
            return None
        try:
            body = json.loads(await request.body())
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _keep(self, kind: str, body: dict[str, Any]) -> None:
        with self._lock:
            self.received.append((kind, body))

    async def slack(self, request: Request) -> Response:
        if (failed := await self._failure()) is not None:
            return failed
        body = await self._json(request)
        if body is None:
            self.refused.append(("slack", "invalid_payload"))
            return PlainTextResponse("invalid_payload", status_code=400)
        if not (isinstance(body.get("text"), str) and body["text"]) and not body.get("blocks"):
            self.refused.append(("slack", "no_text"))
            return PlainTextResponse("no_text", status_code=400)
        self._keep("slack", body)
        return PlainTextResponse("ok")

    async def discord(self, request: Request) -> Response:
        if (failed := await self._failure()) is not None:
            return failed
        body = await self._json(request)
        content = body.get("content") if body is not None else None
        if body is None or (not content and not body.get("embeds")):
            self.refused.append(("discord", "empty"))
            return JSONResponse(
                {"message": "Cannot send an empty message", "code": 50006}, status_code=400
            )
        if isinstance(content, str) and len(content) > 2000:
            self.refused.append(("discord", "too long"))
            return JSONResponse({"message": "Invalid Form Body", "code": 50035}, status_code=400)
        self._keep("discord", body)
        return Response(status_code=204)

    async def generic(self, request: Request) -> Response:
        if (failed := await self._failure()) is not None:
            return failed
        body = await self._json(request)
        if body is None:
            return PlainTextResponse("expected a JSON object", status_code=400)
        self._keep("json", body)
        return JSONResponse({"ok": True})

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/services/{a}/{b}/{c}", self.slack, methods=["POST"]),
                Route("/api/webhooks/{id}/{token}", self.discord, methods=["POST"]),
                Route("/hook/{rest:path}", self.generic, methods=["POST"]),
            ]
        )
