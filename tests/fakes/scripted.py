"""A local server answering from a script, for client tests that need answers no fake of a
whole service gives on cue (a 429 then a 201, a page linking back to itself, HTML where
JSON was asked for): ``on("GET /api/v2/jobs/7/", first, second)`` queues responses (the
last one repeated), or one callable answers from the request. Every request is recorded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.local_server import LocalServer

__all__ = ["Answer", "Scripted"]

Answer = Callable[[Request], Response]


class Scripted(LocalServer):
    """Answers each ``METHOD /path`` from its script; ``missing`` answers the others (the
    service's own 404)."""

    def __init__(self, label: str, missing: Callable[[], Response]) -> None:
        super().__init__()
        self.label = label
        self._missing = missing
        self.script: dict[str, Answer | list[Response]] = {}
        self.requests: list[dict[str, Any]] = []

    def on(self, route: str, *answers: Response | Answer) -> None:
        if len(answers) == 1 and callable(answers[0]) and not isinstance(answers[0], Response):
            self.script[route] = answers[0]
        else:
            self.script[route] = [a for a in answers if isinstance(a, Response)]

    def hits(self, route: str) -> list[dict[str, Any]]:
        """The requests made to ``route`` (``"POST /path"``), in order."""
        return [r for r in self.requests if f"{r['method']} {r['path']}" == route]

    def _app(self) -> Starlette:
        async def answer(request: Request) -> Response:
            body = await request.body()
            self.requests.append(
                {
                    "method": request.method,
                    "path": request.url.path,
                    "query": dict(request.query_params),
                    "body": body.decode(errors="replace"),
                    "authorization": request.headers.get("authorization", ""),
                }
            )
            found = self.script.get(f"{request.method} {request.url.path}")
            if found is None:
                return self._missing()
            if isinstance(found, list):
                return found.pop(0) if len(found) > 1 else found[0]
            return found(request)

        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        return Starlette(routes=[Route("/{rest:path}", answer, methods=methods)])
