"""Grafana Tempo's HTTP API.

- ``GET /api/traces/{id}``: the trace as OTLP JSON, ``{"batches": [{"resource":
  {"attributes": [...]}, "scopeSpans": [{"spans": [...]}]}]}`` (older versions say
  ``instrumentationLibrarySpans``; ``/api/v2/traces`` wraps ``resourceSpans`` in
  ``trace``; both are read). Span and trace ids are base64 (protobuf's JSON mapping) or
  hex; times are ``startTimeUnixNano``/``endTimeUnixNano`` strings; ``status.code``
  ``STATUS_CODE_ERROR`` (or 2) marks a failed span. A missing trace is a 404.
- ``GET /api/search?q={TraceQL}&start=&end=&limit=``: ``{"traces": [{"traceID",
  "rootServiceName", "durationMs", ...}]}``; each is then read by id. The ids are hex, and
  older Tempos trim their leading zeros (``util.TraceIDToHexString``; newer ones pad them
  back, ``PadTraceIDString``): Terry shows them as 32 digits. A trace found but not read
  (404, 5xx: not flushed yet, a querier down) is left out; a timeout ends the reading.

Tempo has no dependency endpoint (its service graph is metrics in Prometheus); the
callers a trace shows are its graph.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from typing import Any

import httpx

from terry.traces.http import TraceAPI
from terry.traces.model import Dependency, Span, Trace, TraceTimedOut, TraceUnavailable

__all__ = ["TempoClient", "parse_otlp_trace"]

_HEX = re.compile(r"^[0-9a-fA-F]+$")


def _id(value: Any, size: int) -> str:
    """An OTLP JSON id (base64 of ``size`` bytes, or hex) as lowercase hex."""
    text = str(value or "")
    if len(text) == size * 2 and _HEX.match(text):
        return text.lower()
    try:
        return base64.b64decode(text, validate=True).hex()
    except (binascii.Error, ValueError):
        return text.lower()


def _attribute(attributes: list[Any], key: str) -> str | None:
    for item in attributes or []:
        if isinstance(item, dict) and item.get("key") == key:
            value = item.get("value") or {}
            for kind in ("stringValue", "intValue", "boolValue", "doubleValue"):
                if kind in value:
                    return str(value[kind])
    return None


def _span(raw: dict[str, Any], service: str) -> Span:
    status = raw.get("status") or {}
    code = status.get("code")
    start = int(raw.get("startTimeUnixNano") or 0)
    end = int(raw.get("endTimeUnixNano") or start)
    parent = raw.get("parentSpanId")
    message = str(status.get("message") or "")
    for event in raw.get("events") or []:
        if not message and isinstance(event, dict) and event.get("name") == "exception":
            message = _attribute(event.get("attributes") or [], "exception.message") or ""
    return Span(
        span_id=_id(raw.get("spanId"), 8),
        parent_id=_id(parent, 8) if parent else None,
        service=service,
        operation=str(raw.get("name", "")),
        start_us=start // 1000,
        duration_us=max(0, end - start) // 1000,
        error=code in ("STATUS_CODE_ERROR", 2, "2"),
        message=message,
    )


def _trace_id(text: str) -> str:
    """A trace id as 32 lowercase hex digits (Tempo's search may trim leading zeros)."""
    text = text.strip().lower()
    return text.rjust(32, "0") if len(text) <= 32 and _HEX.match(text) else text


def parse_otlp_trace(raw: dict[str, Any], trace_id: str) -> Trace:
    """Tempo's answer (``batches``, ``resourceSpans`` or ``trace.resourceSpans``)."""
    resources = (
        raw.get("batches")
        or raw.get("resourceSpans")
        or (raw.get("trace") or {}).get("resourceSpans")
        or []
    )
    spans: list[Span] = []
    for resource in resources:
        if not isinstance(resource, dict):
            continue
        attributes = (resource.get("resource") or {}).get("attributes") or []
        service = _attribute(attributes, "service.name") or "unknown"
        scopes = resource.get("scopeSpans") or resource.get("instrumentationLibrarySpans") or []
        for scope in scopes:
            for span in (scope or {}).get("spans") or []:
                if isinstance(span, dict):
                    spans.append(_span(span, service))
    return Trace(trace_id=_trace_id(trace_id), spans=tuple(spans))


def _quoted(text: str) -> str:
    """A TraceQL string literal."""
    return json.dumps(text)


class TempoClient(TraceAPI):
    """Reads traces; every failure is ``TraceUnavailable``."""

    name = "tempo"

    def __init__(self, url: str, *, timeout: float, transport: httpx.BaseTransport | None = None):
        super().__init__(
            url, timeout=timeout, transport=transport, headers={"Accept": "application/json"}
        )

    def refusal(self, response: httpx.Response, body: Any) -> str:
        if response.status_code == 404:
            return "tempo: trace not found"
        said = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
        return f"tempo answered {response.status_code}" + (f": {said}" if said else "")

    def trace(self, trace_id: str) -> Trace:
        found = parse_otlp_trace(self._get(f"/api/traces/{trace_id}"), trace_id)
        if not found.spans:
            raise TraceUnavailable(f"tempo has no spans for trace {trace_id}")
        return found

    def error_traces(self, service: str, *, lookback: float, limit: int) -> tuple[Trace, ...]:
        end = int(time.time())
        found = self._get(
            "/api/search",
            {
                "q": f"{{ resource.service.name = {_quoted(service)} && status = error }}",
                "start": str(end - int(lookback)),
                "end": str(end),
                "limit": str(limit),
            },
        ).get("traces")
        ids = [str(t["traceID"]) for t in found or [] if isinstance(t, dict) and t.get("traceID")]
        traces: list[Trace] = []
        missed: TraceUnavailable | None = None
        for trace_id in ids[:5]:
            try:
                traces.append(self.trace(trace_id))
            except TraceTimedOut:
                if traces:
                    break  # what was read already tells; more would only wait longer
                raise
            except TraceUnavailable as exc:  # found by the search, not readable: left out
                missed = missed or exc
        if missed is not None and not traces:
            raise missed
        return tuple(traces)

    def dependencies(self, *, lookback: float) -> tuple[Dependency, ...]:
        return ()
