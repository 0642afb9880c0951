"""A local Anthropic API for tests: ``POST /v1/messages`` as Anthropic's public API
documentation describes it, for the real ``anthropic`` client.

- Authentication: the key in ``x-api-key`` or as ``Authorization: Bearer`` (how the
  current documentation and the anthropic 2.x client send it), compared in constant time;
  a wrong or missing key is ``401 authentication_error``. ``anthropic-version`` is
  required.
- The request is validated (model, max_tokens, messages, system, tools, tool_choice,
  unknown top-level fields); a bad one is ``400 invalid_request_error`` saying what.
- Errors have the documented body ``{"type": "error", "error": {"type", "message"},
  "request_id"}`` and a ``request-id`` header.
- Answers are real Message objects (``msg_...`` id, content blocks, ``stop_reason``,
  ``usage``); a tool call is a ``tool_use`` block with a ``toolu_...`` id.

Tests script what comes next (``answer``, ``reply``, ``error``, ``rate_limit``,
``overloaded``, ``server_error``, ``stall``, ``malformed``) and read what arrived
(``requests``). With nothing scripted the fake answers 400, which the client does not retry.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.local_server import LocalServer

__all__ = ["FakeAnthropic", "Received"]

DOCS = "https://docs.anthropic.com/en/api/messages"
# Top-level fields of a Messages API request (others are refused, as the API does).
_FIELDS = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_k",
        "top_p",
        "thinking",
        "service_tier",
        "container",
        "output_config",
        "cache_control",
        "inference_geo",
        "speed",
        "diagnostics",
        "mcp_servers",
        "context_management",
    }
)
_TOOL_FIELDS = frozenset(
    {
        "name",
        "description",
        "input_schema",
        "type",
        "cache_control",
        "strict",
        "input_examples",
        "allowed_callers",
        "defer_loading",
        "eager_input_streaming",
    }
)
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_BLOCK_TYPES = frozenset({"text", "image", "document", "tool_use", "tool_result"})


def _id(prefix: str) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(24))


@dataclass(frozen=True)
class Received:
    """One request as it arrived: lower-case headers and the JSON body (None if not JSON)."""

    headers: dict[str, str]
    body: Any
    status: int = 0


@dataclass
class _Step:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    stall: float = 0.0
    raw: bytes | None = None


class _Invalid(Exception):
    pass


class FakeAnthropic(LocalServer):
    label = "fake Anthropic API"

    def __init__(self, *, api_key: str = "sk-ant-test-CANARY-0000") -> None:
        super().__init__()
        self.api_key = api_key
        self.requests: list[Received] = []
        self._script: list[_Step] = []
        self._lock = threading.Lock()

    # -- test controls ----------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._script.clear()

    def answer(
        self,
        tool_input: Any,
        *,
        text: str | None = None,
        name: str = "propose_fix",
        stop_reason: str = "tool_use",
    ) -> None:
        """Next: Claude calls tool ``name`` with ``tool_input`` (after ``text``, if given)."""
        blocks: list[dict[str, Any]] = []
        if text is not None:
            blocks.append({"type": "text", "text": text})
        blocks.append({"type": "tool_use", "id": _id("toolu_"), "name": name, "input": tool_input})
        self.reply(blocks, stop_reason=stop_reason)

    def reply(self, content: list[dict[str, Any]], *, stop_reason: str = "end_turn") -> None:
        """Next: a message with these content blocks, exactly."""
        self._push(_Step(body={"content": content, "stop_reason": stop_reason}))

    def error(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        count: int = 1,
    ) -> None:
        """The next ``count`` requests fail with this documented error."""
        body = {"type": "error", "error": {"type": error_type, "message": message}}
        for _ in range(count):
            self._push(_Step(status=status, body=body, headers=dict(headers or {})))

    def rate_limit(self, *, retry_after: int = 1, count: int = 1) -> None:
        headers = {
            "retry-after": str(retry_after),
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
        }
        message = "Number of request tokens has exceeded your per-minute rate limit"
        self.error(429, "rate_limit_error", message, headers=headers, count=count)

    def overloaded(self, *, count: int = 1) -> None:
        self.error(529, "overloaded_error", "Overloaded", count=count)

    def server_error(self, *, count: int = 1) -> None:
        self.error(500, "api_error", "Internal server error", count=count)

    def stall(self, seconds: float, *, count: int = 1) -> None:
        """The next ``count`` requests get no answer for ``seconds`` (client timeouts)."""
        for _ in range(count):
            self._push(_Step(stall=seconds))

    def malformed(self, raw: bytes = b'{"id": "msg_broken", "content": [') -> None:
        """Next: a 200 whose body is not JSON."""
        self._push(_Step(raw=raw))

    def _push(self, step: _Step) -> None:
        with self._lock:
            self._script.append(step)

    # -- the API ----------------------------------------------------------------------------
    def _app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/messages", self._messages, methods=["POST"])])

    async def _messages(self, request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        response, stall = self._respond(headers, body)
        with self._lock:
            self.requests.append(Received(headers, body, response.status_code))
        if stall:
            await asyncio.sleep(stall)
        return response

    def _authenticated(self, headers: dict[str, str]) -> bool:
        """The key as ``x-api-key`` or as a bearer token (``Authorization: Bearer``, how the
        current API documentation and the anthropic 2.x client send it)."""
        given = headers.get("x-api-key")
        if given is None:
            scheme, _, token = headers.get("authorization", "").partition(" ")
            given = token.strip() if scheme.lower() == "bearer" else ""
        return hmac.compare_digest(given.encode(), self.api_key.encode())

    def _respond(self, headers: dict[str, str], body: Any) -> tuple[Response, float]:
        """The response, and how long to sit on it first."""
        if not self._authenticated(headers):
            return _error(401, "authentication_error", "invalid x-api-key"), 0.0
        if not headers.get("anthropic-version"):
            message = "anthropic-version: header is required"
            return _error(400, "invalid_request_error", message), 0.0
        if not headers.get("content-type", "").startswith("application/json"):
            message = "content-type must be application/json"
            return _error(400, "invalid_request_error", message), 0.0
        try:
            _validate(body)
        except _Invalid as exc:
            return _error(400, "invalid_request_error", str(exc)), 0.0
        with self._lock:
            step = self._script.pop(0) if self._script else None
        if step is None:
            message = "fake Anthropic: no answer scripted"
            return _error(400, "invalid_request_error", message), 0.0
        if step.stall:
            return _error(500, "api_error", "stalled"), step.stall
        if step.raw is not None:
            return Response(step.raw, 200, media_type="application/json"), 0.0
        if step.status != 200:
            error = step.body["error"]
            response = _error(step.status, error["type"], error["message"], headers=step.headers)
            return response, 0.0
        return _message(body, step.body["content"], step.body["stop_reason"]), 0.0


def _error(
    status: int, error_type: str, message: str, *, headers: dict[str, str] | None = None
) -> JSONResponse:
    request_id = _id("req_")
    body = {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    }
    return JSONResponse(body, status, headers={"request-id": request_id, **(headers or {})})


def _message(request: dict[str, Any], content: list[dict[str, Any]], stop: str) -> JSONResponse:
    request_id = _id("req_")
    body = {
        "id": _id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": request["model"],
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {
            "input_tokens": max(1, len(json.dumps(request)) // 4),
            "output_tokens": max(1, len(json.dumps(content)) // 4),
        },
    }
    return JSONResponse(body, 200, headers={"request-id": request_id})


def _validate(body: Any) -> None:
    """Raise _Invalid with the API's kind of message when the request is malformed."""
    if not isinstance(body, dict):
        raise _Invalid("the request body must be a JSON object")
    for key in body:
        if key not in _FIELDS:
            raise _Invalid(f"{key}: Extra inputs are not permitted")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _Invalid("model: Field required")
    tokens = body.get("max_tokens")
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise _Invalid("max_tokens: must be a positive integer")
    if body.get("stream"):
        raise _Invalid("stream: the fake answers only non-streaming requests")
    _validate_system(body.get("system"))
    _validate_messages(body.get("messages"))
    names = _validate_tools(body.get("tools"))
    _validate_tool_choice(body.get("tool_choice"), names)


def _validate_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list) or not all(
        isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        for b in system
    ):
        raise _Invalid("system: must be a string or a list of text blocks")


def _validate_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise _Invalid("messages: at least one message is required")
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise _Invalid(f"{where}.role: Input should be 'user' or 'assistant'")
        if set(message) - {"role", "content"}:
            raise _Invalid(f"{where}: Extra inputs are not permitted")
        content = message.get("content")
        if isinstance(content, str):
            if not content:
                raise _Invalid(f"{where}: content must be non-empty")
            continue
        if not isinstance(content, list) or not content:
            raise _Invalid(f"{where}.content: must be a string or a non-empty list of blocks")
        for block_index, block in enumerate(content):
            if not isinstance(block, dict) or block.get("type") not in _BLOCK_TYPES:
                raise _Invalid(f"{where}.content.{block_index}.type: unknown block type")
            if block["type"] == "text" and not isinstance(block.get("text"), str):
                raise _Invalid(f"{where}.content.{block_index}.text: Field required")
    if messages[0]["role"] != "user":
        raise _Invalid("messages: the first message must use the user role")


def _validate_tools(tools: Any) -> set[str]:
    if tools is None:
        return set()
    if not isinstance(tools, list):
        raise _Invalid("tools: Input should be a valid list")
    names: set[str] = set()
    for index, tool in enumerate(tools):
        where = f"tools.{index}"
        if not isinstance(tool, dict):
            raise _Invalid(f"{where}: Input should be an object")
        if extra := set(tool) - _TOOL_FIELDS:
            raise _Invalid(f"{where}.{sorted(extra)[0]}: Extra inputs are not permitted")
        name = tool.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
            raise _Invalid(f"{where}.name: String should match pattern '{_TOOL_NAME.pattern}'")
        if name in names:
            raise _Invalid(f"tools: Tool names must be unique ({name})")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise _Invalid(f"{where}.input_schema.type: Input should be 'object'")
        if "description" in tool and not isinstance(tool["description"], str):
            raise _Invalid(f"{where}.description: Input should be a valid string")
        names.add(name)
    return names


def _validate_tool_choice(choice: Any, names: set[str]) -> None:
    if choice is None:
        return
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        raise _Invalid("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    if choice["type"] in ("any", "tool") and not names:
        raise _Invalid("tool_choice: may only be specified while providing tools")
    if choice["type"] == "tool" and choice.get("name") not in names:
        raise _Invalid(f"tool_choice.name: no tool named {choice.get('name')!r} in tools")
    if "disable_parallel_tool_use" in choice and not isinstance(
        choice["disable_parallel_tool_use"], bool
    ):
        raise _Invalid("tool_choice.disable_parallel_tool_use: Input should be a valid boolean")
