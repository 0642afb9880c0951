"""``terry serve``'s chat routes: Slack's slash commands and buttons, Discord's interactions.

```
POST /api/v1/chat/slack/commands        a slash command (/terry ...)
POST /api/v1/chat/slack/interactions    a button pressed (block_actions)
POST /api/v1/chat/discord/interactions  PING, /terry, a button pressed
```

These routes authenticate by signature, as ``/api/v1/github`` does: Slack's signing secret
(``terry.chat.slack.authentic``), Discord's Ed25519 key (``terry.chat.discord.verified``). An
unsigned, wrongly signed, stale or replayed request is answered 401 and nothing is done.
Slack's retries (``X-Slack-Retry-Num``: the same body, signed afresh) and any second
delivery of a body are answered 200 and nothing runs again; Slack's certificate check
(``ssl_check=1``) is answered 200.

Both platforms want an answer within 3 seconds. The command runs in a thread of its own; if
it is done within ``INLINE_SECONDS`` its answer is the response, else the response says
"working on it" (Slack: an ephemeral message; Discord: a deferred response, type 5 or 6)
and the answer follows when it is ready (Slack: POSTed to the request's ``response_url``;
Discord: the interaction's webhook, ``PATCH .../messages/@original``). A button's answer
replaces the message the button was on, so the message shows the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from terry.chat import discord, slack
from terry.chat.actions import ChatActions
from terry.chat.answer import Answer
from terry.config import Config
from terry.errors import InputError
from terry.pipeline import Pipeline
from terry.service.bodies import read_body
from terry.store import Store

__all__ = ["INLINE_SECONDS", "ChatRoutes"]

log = logging.getLogger("terry.chat")

INLINE_SECONDS = 2.0  # answered in the response when done by then; followed up otherwise
_MAX_BODY = 64 * 1024
WORKING = "Working on it…"


class _Handoff:
    """One answer, given either in the response or, once the response said "working on
    it", by ``send`` (never both, never neither)."""

    def __init__(self, send: Callable[[Answer], None]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._answer: Answer | None = None
        self._deferred = False

    def finish(self, answer: Answer) -> None:
        with self._lock:
            if not self._deferred:
                self._answer = answer
                return
        self._send(answer)

    def defer(self) -> Answer | None:
        """The answer if it is ready; else None, and ``send`` will carry it."""
        with self._lock:
            if self._answer is None:
                self._deferred = True
            return self._answer


def _refused(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class ChatRoutes:
    def __init__(
        self,
        config: Config,
        store: Store,
        pipeline_factory: Callable[[], Pipeline],
        *,
        environ: Mapping[str, str] | None = None,
        threads: int = 2,
    ) -> None:
        self.config = config
        self._env = os.environ if environ is None else environ
        self._store = store
        self._factory = pipeline_factory
        self._actions: ChatActions | None = None
        self._made = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="terry-chat")
        self._replays = slack.Replays()  # signatures (Slack's and Discord's) seen
        self._deliveries = slack.Replays()  # digests of Slack bodies run

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/chat/slack/commands", self.slack_command, methods=["POST"]),
            Route("/api/v1/chat/slack/interactions", self.slack_interaction, methods=["POST"]),
            Route("/api/v1/chat/discord/interactions", self.discord_interaction, methods=["POST"]),
        ]

    def close(self) -> None:
        """Let answers in hand finish; take no more."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- plumbing -------------------------------------------------------------------------
    def actions(self) -> ChatActions:
        with self._made:
            if self._actions is None:
                self._actions = ChatActions(
                    self.config, self._store, self._factory, environ=self._env
                )
            return self._actions

    async def _answer(
        self, work: Callable[[], Answer], send: Callable[[Answer], None]
    ) -> Answer | None:
        """``work``'s answer if done within INLINE_SECONDS; else None, and ``send`` gets it."""
        handoff = _Handoff(send)

        def run() -> None:
            try:
                answer = work()
            except Exception:  # a crash is logged in full, answered in a line
                log.exception("chat: a command crashed")
                answer = Answer("Terry failed; its log has the details.", ok=False)
            handoff.finish(answer)

        future = asyncio.get_running_loop().run_in_executor(self._pool, run)
        with contextlib.suppress(TimeoutError):  # then it follows up
            await asyncio.wait_for(asyncio.shield(future), INLINE_SECONDS)
        return handoff.defer()

    def _post(self, method: str, url: str, body: dict[str, Any]) -> None:
        import httpx  # only when following up

        where = urlsplit(url).hostname
        try:
            response = httpx.request(method, url, json=body, timeout=10.0)
        except httpx.HTTPError as exc:
            log.warning("chat: the follow-up to %s failed: %s", where, type(exc).__name__)
            return
        if response.status_code >= 400:
            log.warning("chat: the follow-up to %s was refused (%d)", where, response.status_code)

    # -- Slack ----------------------------------------------------------------------------
    async def _slack(self, request: Request) -> slack.SlackRequest | Response:
        body = await read_body(request, _MAX_BODY)
        if body is None:
            return _refused(413, "body too large")
        if slack.ssl_check(body):  # Slack checking the certificate: nothing to do
            return Response(status_code=200)
        variable = self.config.chat.slack.signing_secret_env
        secret = self._env.get(variable, "")
        if not secret:
            log.error("Slack request refused: $%s is not set", variable)
        if not slack.authentic(secret, body, request.headers):
            return _refused(401, "missing, wrong, stale or replayed Slack signature")
        retry = request.headers.get("x-slack-retry-num")
        if not self._replays.first(request.headers.get("x-slack-signature", "")):
            if retry is None:  # the very request again, and not as Slack retries
                return _refused(401, "missing, wrong, stale or replayed Slack signature")
            return self._again(retry, request)
        if not self._deliveries.first(slack.digest(body)):
            return self._again(retry, request)
        try:
            asked = slack.parse_request(self.config.chat, body)
        except InputError as exc:
            return _refused(400, str(exc))
        if not asked.response_url.startswith(tuple(self.config.chat.slack.response_urls)):
            return _refused(
                400, "response_url is not one Terry posts to (chat.slack.response_urls)"
            )
        return asked

    @staticmethod
    def _again(retry: str | None, request: Request) -> Response:
        """A body already run (a Slack retry, or delivered twice): acknowledged, not run."""
        why = request.headers.get("x-slack-retry-reason") or "-"
        log.info(
            "chat: Slack delivered a request again (retry %s, %s); it runs once",
            retry if retry and retry.isdigit() and len(retry) < 4 else "-",
            why if why.isascii() and why.replace("_", "").isalnum() and len(why) < 40 else "-",
        )
        return Response(status_code=200)

    async def slack_command(self, request: Request) -> Response:
        asked = await self._slack(request)
        if isinstance(asked, Response):
            return asked
        if asked.action is not None:
            return _refused(400, "button presses go to /api/v1/chat/slack/interactions")
        url = asked.response_url
        answer = await self._answer(
            lambda: self.actions().say(asked.user, asked.text),
            lambda a: self._post("POST", url, slack.blocks(a)),
        )
        if answer is None:
            return JSONResponse({"response_type": "ephemeral", "text": WORKING})
        return JSONResponse(slack.blocks(answer))

    async def slack_interaction(self, request: Request) -> Response:
        asked = await self._slack(request)
        if isinstance(asked, Response):
            return asked
        if asked.action is None:
            return _refused(400, "slash commands go to /api/v1/chat/slack/commands")
        action, value, url = asked.action, asked.value, asked.response_url

        def work() -> None:
            answer = self.actions().press(asked.user, action, value)
            self._post("POST", url, slack.blocks(answer, replace=True))

        self._pool.submit(work)  # Slack reads nothing from this response but the 200
        return Response(status_code=200)

    # -- Discord --------------------------------------------------------------------------
    async def discord_interaction(self, request: Request) -> Response:
        body = await read_body(request, _MAX_BODY)
        if body is None:
            return _refused(413, "body too large")
        settings = self.config.chat.discord
        key = settings.public_key or self._env.get(settings.public_key_env, "")
        if not key:
            log.error("Discord interaction refused: no public key (chat.discord.public_key)")
        if not discord.verified(key, body, request.headers, self._replays):
            return _refused(401, "missing, wrong, stale or replayed Discord signature")
        try:
            asked = discord.parse_interaction(self.config.chat, json.loads(body))
        except (InputError, ValueError) as exc:
            return _refused(400, f"not an interaction Terry handles: {exc}"[:300])
        if asked.kind == discord.PING:
            return JSONResponse({"type": discord.PONG})
        assert asked.user is not None
        user = asked.user
        hook = f"{settings.api_url.rstrip('/')}/webhooks/{asked.application_id}/{asked.token}"

        def send(answer: Answer) -> None:
            self._post("PATCH", f"{hook}/messages/@original", discord.message(answer))
            if answer.public and asked.kind == discord.COMMAND:  # the channel sees the outcome
                self._post("POST", hook, discord.message(answer))

        if asked.kind == discord.COMMAND:
            answer = await self._answer(lambda: self.actions().say(user, asked.text), send)
            if answer is None:
                deferred = {"type": discord.DEFERRED_MESSAGE, "data": {"flags": discord.EPHEMERAL}}
                return JSONResponse(deferred)
            return JSONResponse({"type": discord.CHANNEL_MESSAGE, "data": discord.message(answer)})
        action, value = asked.action or "", asked.value
        answer = await self._answer(lambda: self.actions().press(user, action, value), send)
        if answer is None:
            return JSONResponse({"type": discord.DEFERRED_UPDATE})
        return JSONResponse({"type": discord.UPDATE_MESSAGE, "data": discord.message(answer)})
