"""A local Grafana Tempo for tests: its HTTP query API as Tempo's api_docs describe it.

- ``GET /api/traces/{traceID}``: the trace in OTLP JSON as Tempo answers it, ``{"batches":
  [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue"}}]},
  "scopeSpans": [{"scope": {"name"}, "spans": [...]}]}]}``; span fields are protobuf's JSON
  mapping: ``traceId``, ``spanId`` and ``parentSpanId`` in base64, ``startTimeUnixNano`` and
  ``endTimeUnixNano`` as strings, ``kind`` ``SPAN_KIND_SERVER``, ``status`` ``{"code":
  "STATUS_CODE_ERROR", "message"}``. An unknown trace is 404 with the text body
  ``trace not found``; a malformed id is 400.
- ``GET /api/search?q=<TraceQL>&start=&end=&limit=`` (seconds): ``{"traces": [{"traceID",
  "rootServiceName", "rootTraceName", "startTimeUnixNano", "durationMs"}], "metrics": {...}}``.
  This fake understands the TraceQL Terry writes, ``{ resource.service.name = "S" && status
  = error }``; anything else is 400, as a parse error is.

Faults: ``fail_next`` (500s with a text body), ``delay`` (a slow Tempo).
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.fakes.jaeger_api import SpanSpec
from tests.fakes.local_server import LocalServer

__all__ = ["FakeTempo"]

_QUERY = re.compile(
    r'^\{\s*resource\.service\.name\s*=\s*"((?:[^"\\]|\\.)*)"\s*&&\s*status\s*=\s*error\s*\}$'
)


def _b64(hex_id: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_id)).decode()


class FakeTempo(LocalServer):
    label = "fake Tempo"

    def __init__(self) -> None:
        super().__init__()
        self.traces: dict[str, list[tuple[SpanSpec, int]]] = {}
        self.fail_next = 0
        self.delay = 0.0
        self.requests: list[tuple[str, dict[str, str]]] = []

    def add_trace(self, trace_id: str, spans: list[SpanSpec], *, start_ns: int | None = None):
        begin = start_ns if start_ns is not None else time.time_ns() - 60 * 10**9
        self.traces[trace_id.lower()] = [(s, begin) for s in spans]

    def _otlp(self, trace_id: str) -> dict[str, Any]:
        by_service: dict[str, list[dict[str, Any]]] = {}
        for s, begin in self.traces[trace_id]:
            start = begin + int(s.start_ms * 1_000_000)
            span: dict[str, Any] = {
                "traceId": _b64(trace_id),
                "spanId": _b64(s.span_id),
                "name": s.operation,
                "kind": "SPAN_KIND_SERVER",
                "startTimeUnixNano": str(start),
                "endTimeUnixNano": str(start + int(s.duration_ms * 1_000_000)),
                "attributes": [{"key": "http.method", "value": {"stringValue": "GET"}}],
                "status": ({"code": "STATUS_CODE_ERROR", "message": s.message} if s.error else {}),
            }
            if s.parent_id:
                span["parentSpanId"] = _b64(s.parent_id)
            by_service.setdefault(s.service, []).append(span)
        return {
            "batches": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": name}}]
                    },
                    "scopeSpans": [{"scope": {"name": "app"}, "spans": spans}],
                }
                for name, spans in by_service.items()
            ]
        }

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/traces/{trace_id}", self._trace),
                Route("/api/search", self._search),
            ]
        )

    async def _fault(self, request: Request) -> Response | None:
        self.requests.append((request.url.path, dict(request.query_params)))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_next:
            self.fail_next -= 1
            return PlainTextResponse("internal error: querier unavailable\n", status_code=500)
        return None

    async def _trace(self, request: Request) -> Response:
        if failed := await self._fault(request):
            return failed
        trace_id = request.path_params["trace_id"].lower()
        if not re.fullmatch(r"[0-9a-f]{1,32}", trace_id):
            return PlainTextResponse("invalid trace id\n", status_code=400)
        trace_id = trace_id.rjust(32, "0")
        if trace_id not in self.traces:
            return PlainTextResponse("trace not found\n", status_code=404)
        return JSONResponse(self._otlp(trace_id))

    async def _search(self, request: Request) -> Response:
        if failed := await self._fault(request):
            return failed
        query = request.query_params
        matched = _QUERY.match((query.get("q") or "").strip())
        if matched is None:
            return PlainTextResponse("invalid TraceQL query: parse error\n", status_code=400)
        service = matched.group(1)
        start = int(query.get("start") or 0) * 10**9
        end = int(query.get("end") or 2**31) * 10**9
        limit = int(query.get("limit") or 20)
        found = []
        for trace_id, spans in self.traces.items():
            if not any(s.service == service and s.error for s, _ in spans):
                continue
            begin = spans[0][1]
            if not start <= begin <= end:
                continue
            root = next((s for s, _ in spans if s.parent_id is None), spans[0][0])
            found.append(
                {
                    "traceID": trace_id,
                    "rootServiceName": root.service,
                    "rootTraceName": root.operation,
                    "startTimeUnixNano": str(begin),
                    "durationMs": int(max(s.start_ms + s.duration_ms for s, _ in spans)),
                }
            )
        return JSONResponse(
            {"traces": found[:limit], "metrics": {"inspectedTraces": len(self.traces)}}
        )
