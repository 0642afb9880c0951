"""A local Jaeger query service for tests: the JSON API the Jaeger UI reads (``/api``), in
the shapes of Jaeger's ``structuredResponse`` (``{"data", "total", "limit", "offset",
"errors"}``) and its UI model (cmd/query/app/apiv3 and model/json in jaegertracing/jaeger):

- ``GET /api/traces/{traceID}``: ``data`` holds one trace, ``{"traceID", "spans",
  "processes", "warnings"}``; each span has ``traceID``, ``spanID``, ``operationName``,
  ``references`` (``refType`` ``CHILD_OF`` with the parent's ``traceID`` and ``spanID``),
  ``startTime`` and ``duration`` (microseconds), ``tags`` (``{"key", "type", "value"}``,
  ``error`` a bool tag), ``logs`` (``{"timestamp", "fields"}``), ``processID``. An unknown
  trace is 404 with ``errors: [{"code": 404, "msg": "trace not found"}]``.
- ``GET /api/traces?service=&tags=&start=&end=&lookback=&limit=``: the service's traces in
  the window, those with a span matching every tag (``tags`` is JSON); a missing service
  is 400 ``{"code": 400, "msg": "parameter 'service' is required"}``.
- ``GET /api/dependencies?endTs=&lookback=`` (milliseconds): ``data`` is
  ``[{"parent", "child", "callCount"}]``.

Faults: ``fail_next`` (that many 500s with Jaeger's error body) and ``delay`` (seconds every
answer waits: a slow Jaeger). ``requests`` keeps what arrived (path and query).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.local_server import LocalServer

__all__ = ["FakeJaeger", "SpanSpec"]


@dataclass(frozen=True)
class SpanSpec:
    """A span, independent of any backend's JSON (tests describe traces with these)."""

    span_id: str  # 16 hex digits
    parent_id: str | None
    service: str
    operation: str
    start_ms: float  # after the trace's start
    duration_ms: float
    error: bool = False
    message: str = ""


def _answer(data: Any, *, status: int = 200, errors: list[dict[str, Any]] | None = None):
    body = {"data": data, "total": 0, "limit": 0, "offset": 0, "errors": errors}
    if isinstance(data, list):
        body["total"] = len(data)
    return JSONResponse(body, status_code=status)


class FakeJaeger(LocalServer):
    label = "fake Jaeger"

    def __init__(self) -> None:
        super().__init__()
        self.traces: dict[str, dict[str, Any]] = {}
        self.edges: list[dict[str, Any]] = []
        self.fail_next = 0
        self.delay = 0.0
        self.requests: list[tuple[str, dict[str, str]]] = []

    def add_trace(self, trace_id: str, spans: list[SpanSpec], *, start_us: int | None = None):
        """A trace as Jaeger stores it: one process per service, ids as hex strings."""
        begin = start_us if start_us is not None else int(time.time() * 1_000_000) - 60_000_000
        services = sorted({s.service for s in spans})
        processes = {
            f"p{i + 1}": {
                "serviceName": name,
                "tags": [{"key": "hostname", "type": "string", "value": f"{name}-pod"}],
            }
            for i, name in enumerate(services)
        }
        process_of = {p["serviceName"]: pid for pid, p in processes.items()}
        out = []
        for s in spans:
            tags = [{"key": "span.kind", "type": "string", "value": "server"}]
            logs = []
            if s.error:
                tags.append({"key": "error", "type": "bool", "value": True})
                logs.append(
                    {
                        "timestamp": begin + int(s.start_ms * 1000),
                        "fields": [
                            {"key": "event", "type": "string", "value": "error"},
                            {"key": "message", "type": "string", "value": s.message},
                        ],
                    }
                )
            out.append(
                {
                    "traceID": trace_id,
                    "spanID": s.span_id,
                    "operationName": s.operation,
                    "references": (
                        [{"refType": "CHILD_OF", "traceID": trace_id, "spanID": s.parent_id}]
                        if s.parent_id
                        else []
                    ),
                    "startTime": begin + int(s.start_ms * 1000),
                    "duration": int(s.duration_ms * 1000),
                    "tags": tags,
                    "logs": logs,
                    "processID": process_of[s.service],
                    "warnings": None,
                }
            )
        self.traces[trace_id] = {
            "traceID": trace_id,
            "spans": out,
            "processes": processes,
            "warnings": None,
        }

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/traces/{trace_id}", self._trace),
                Route("/api/traces", self._search),
                Route("/api/dependencies", self._dependencies),
            ]
        )

    async def _fault(self, request: Request) -> JSONResponse | None:
        self.requests.append((request.url.path, dict(request.query_params)))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_next:
            self.fail_next -= 1
            return _answer(None, status=500, errors=[{"code": 500, "msg": "storage error"}])
        return None

    async def _trace(self, request: Request) -> JSONResponse:
        if failed := await self._fault(request):
            return failed
        trace = self.traces.get(request.path_params["trace_id"].lower())
        if trace is None:
            return _answer(None, status=404, errors=[{"code": 404, "msg": "trace not found"}])
        return _answer([trace])

    async def _search(self, request: Request) -> JSONResponse:
        if failed := await self._fault(request):
            return failed
        query = request.query_params
        service = query.get("service")
        if not service:
            return _answer(
                None, status=400, errors=[{"code": 400, "msg": "parameter 'service' is required"}]
            )
        try:
            wanted = json.loads(query.get("tags") or "{}")
        except json.JSONDecodeError:
            return _answer(None, status=400, errors=[{"code": 400, "msg": "malformed tags"}])
        start = int(query.get("start") or 0)
        end = int(query.get("end") or 2**62)
        limit = int(query.get("limit") or 20)
        found = []
        for trace in self.traces.values():
            services = {p["serviceName"] for p in trace["processes"].values()}
            if service not in services:
                continue
            if not any(start <= s["startTime"] <= end for s in trace["spans"]):
                continue
            if all(
                any(
                    t["key"] == key and str(t["value"]).lower() == str(value).lower()
                    for s in trace["spans"]
                    for t in s["tags"]
                )
                for key, value in wanted.items()
            ):
                found.append(trace)
        return _answer(found[:limit])

    async def _dependencies(self, request: Request) -> JSONResponse:
        if failed := await self._fault(request):
            return failed
        if not request.query_params.get("endTs"):
            return _answer(
                None, status=400, errors=[{"code": 400, "msg": "parameter 'endTs' is required"}]
            )
        return _answer(list(self.edges))
