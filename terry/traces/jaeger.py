"""Jaeger's query API (the HTTP JSON API the Jaeger UI reads, under ``/api``).

- ``GET /api/traces/{id}``: ``{"data": [{"traceID", "spans": [...], "processes": {...}}],
  "errors": null}``; each span names its process (``processID`` -> ``serviceName``), its
  parent through ``references`` (``refType`` ``CHILD_OF``), ``startTime`` and ``duration``
  in microseconds, ``tags`` (``error: true`` marks a failed span; OpenTelemetry's
  ``otel.status_code: ERROR`` too) and ``logs`` (an error's ``message`` or ``error.object``).
  A missing trace is a 404 with ``errors: [{"code": 404, "msg": "trace not found"}]``.
- ``GET /api/traces?service=S&tags={"error":"true"}&start=&end=&limit=N``: the same shape,
  the service's recent error traces.
- ``GET /api/dependencies?endTs=<ms>&lookback=<ms>``: ``{"data": [{"parent", "child",
  "callCount"}]}``, the service graph.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from terry.traces.http import TraceAPI
from terry.traces.model import Dependency, Span, Trace, TraceUnavailable

__all__ = ["JaegerClient", "parse_jaeger_trace"]

_ERROR_TAGS = {("error", "true"), ("otel.status_code", "ERROR")}


def _tag_value(tag: dict[str, Any]) -> str:
    value = tag.get("value")
    return str(value).lower() if isinstance(value, bool) else str(value)


def _span(raw: dict[str, Any], processes: dict[str, Any]) -> Span:
    tags = [t for t in raw.get("tags") or [] if isinstance(t, dict)]
    error = any(
        (str(t.get("key")), _tag_value(t)) in _ERROR_TAGS
        or (t.get("key") == "error" and _tag_value(t) == "true")
        for t in tags
    )
    message = next((_tag_value(t) for t in tags if t.get("key") == "otel.status_description"), "")
    for log in raw.get("logs") or []:
        for field in log.get("fields") or []:
            if field.get("key") in ("message", "error.object", "exception.message") and not message:
                message = _tag_value(field)
    parent = next(
        (
            str(r.get("spanID"))
            for r in raw.get("references") or []
            if r.get("refType") == "CHILD_OF" and r.get("spanID")
        ),
        None,
    )
    process = processes.get(str(raw.get("processID")), {}) or {}
    return Span(
        span_id=str(raw.get("spanID", "")),
        parent_id=parent,
        service=str(process.get("serviceName") or "unknown"),
        operation=str(raw.get("operationName", "")),
        start_us=int(raw.get("startTime") or 0),
        duration_us=int(raw.get("duration") or 0),
        error=error,
        message=message,
    )


def parse_jaeger_trace(raw: dict[str, Any]) -> Trace:
    """One element of Jaeger's ``data``."""
    processes = raw.get("processes") or {}
    spans = tuple(_span(s, processes) for s in raw.get("spans") or [] if isinstance(s, dict))
    return Trace(trace_id=str(raw.get("traceID", "")), spans=spans)


class JaegerClient(TraceAPI):
    """Reads traces and the service graph; every failure is ``TraceUnavailable``."""

    name = "jaeger"

    def __init__(self, url: str, *, timeout: float, transport: httpx.BaseTransport | None = None):
        super().__init__(url, timeout=timeout, transport=transport)

    def refusal(self, response: httpx.Response, body: Any) -> str:
        errors = body.get("errors") if isinstance(body, dict) else None
        said = errors[0].get("msg") if errors and isinstance(errors[0], dict) else ""
        return f"jaeger answered {response.status_code}" + (f": {str(said)[:200]}" if said else "")

    def trace(self, trace_id: str) -> Trace:
        data = self._get(f"/api/traces/{trace_id}").get("data") or []
        if not data or not isinstance(data[0], dict):
            raise TraceUnavailable(f"jaeger has no trace {trace_id}")
        return parse_jaeger_trace(data[0])

    def error_traces(self, service: str, *, lookback: float, limit: int) -> tuple[Trace, ...]:
        end_us = int(time.time() * 1_000_000)
        data = self._get(
            "/api/traces",
            {
                "service": service,
                "tags": json.dumps({"error": "true"}),
                # start and end (microseconds) decide; lookback is what the UI sends beside
                "start": str(end_us - int(lookback * 1_000_000)),
                "end": str(end_us),
                "lookback": f"{max(1, int(lookback))}s",
                "limit": str(limit),
            },
        ).get("data")
        return tuple(parse_jaeger_trace(t) for t in data or [] if isinstance(t, dict))

    def dependencies(self, *, lookback: float) -> tuple[Dependency, ...]:
        now_ms = int(time.time() * 1000)
        data = self._get(
            "/api/dependencies",
            {"endTs": str(now_ms), "lookback": str(int(lookback * 1000))},
        ).get("data")
        return tuple(
            Dependency(str(d["parent"]), str(d["child"]), int(d.get("callCount") or 0))
            for d in data or []
            if isinstance(d, dict) and d.get("parent") and d.get("child")
        )
