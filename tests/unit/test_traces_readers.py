"""Reading the services' traces (Jaeger, Tempo) as the real backends answer: Tempo's search
ids without their leading zeros, a trace the search found but Tempo cannot return, a trace
whose top spans were never stored, and the W3C ``traceparent`` on the requests Terry makes
inside its own span."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider

from terry.traces.evidence import analyse
from terry.traces.jaeger import JaegerClient
from terry.traces.model import Span, Trace, TraceUnavailable
from terry.traces.tempo import TempoClient

# a trace id whose first byte is zero: old Tempos' search shows it as 31 digits
TRACE = "0af7651916cd43dd8448eb211c80319c"
OTHER = "4bf92f3577b34da6a3ce929d0e0e4736"


def _b64(hex_id: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_id)).decode()


def _otlp(trace_id: str) -> dict[str, object]:
    """Tempo's ``/api/traces/{id}``: OTLP JSON, ids base64 (gogo jsonpb)."""
    span = {
        "traceId": _b64(trace_id),
        "spanId": _b64("00f067aa0ba902b7"),
        "name": "charge",
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000040000000",
        "status": {"code": "STATUS_CODE_ERROR", "message": "connection refused"},
    }
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "payments"}}]}
    return {"batches": [{"resource": resource, "scopeSpans": [{"spans": [span]}]}]}


def _tempo(answer: Callable[[httpx.Request], httpx.Response]) -> TempoClient:
    return TempoClient("http://tempo:3200", timeout=1, transport=httpx.MockTransport(answer))


def _search(*ids: str) -> httpx.Response:
    return httpx.Response(200, json={"traces": [{"traceID": i} for i in ids]})


def test_tempo_search_ids_without_leading_zeros_read_as_32_digits() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/search":
            return _search(TRACE.lstrip("0"))  # util.TraceIDToHexString trims them
        assert request.url.path.startswith("/api/traces/")
        return httpx.Response(200, json=_otlp(TRACE))

    [trace] = _tempo(answer).error_traces("payments", lookback=3600, limit=20)
    assert trace.trace_id == TRACE


def test_a_trace_tempo_found_but_cannot_return_is_left_out_not_the_evidence() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/search":
            return _search(OTHER, TRACE)
        if request.url.path == f"/api/traces/{OTHER}":
            return httpx.Response(404)  # found by the search, not flushed to a block yet
        return httpx.Response(200, json=_otlp(TRACE))

    [trace] = _tempo(answer).error_traces("payments", lookback=3600, limit=20)
    assert trace.trace_id == TRACE and trace.spans[0].error

    def broken(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/search":
            return _search(OTHER, TRACE)
        if request.url.path == f"/api/traces/{TRACE}":
            return httpx.Response(500, text="querier unavailable")
        return httpx.Response(200, json=_otlp(OTHER))

    [trace] = _tempo(broken).error_traces("payments", lookback=3600, limit=20)
    assert trace.trace_id == OTHER


def test_tempo_unable_to_return_any_found_trace_is_unavailable() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/search":
            return _search(OTHER, TRACE)
        return httpx.Response(404)

    with pytest.raises(TraceUnavailable, match="trace not found"):
        _tempo(answer).error_traces("payments", lookback=3600, limit=20)


def test_a_slow_tempo_is_asked_no_more_after_a_timeout() -> None:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if request.url.path == "/api/search":
            return _search(OTHER, TRACE, "1" * 32)
        if request.url.path == f"/api/traces/{OTHER}":
            return httpx.Response(200, json=_otlp(OTHER))
        raise httpx.ReadTimeout("slow", request=request)

    [trace] = _tempo(answer).error_traces("payments", lookback=3600, limit=20)
    assert trace.trace_id == OTHER
    assert asked == ["/api/search", f"/api/traces/{OTHER}", f"/api/traces/{TRACE}"]


def _span(span_id: str, parent: str | None, service: str, start: int, error: bool = False):
    return Span(span_id, parent, service, "op", start, 1000, error)


def test_a_trace_missing_its_root_span_still_names_upstream_suspects() -> None:
    # frontend's span was never stored: checkout's parent is not in the trace
    trace = Trace(
        OTHER,
        (
            _span("b" * 16, "f" * 16, "checkout", 10, error=True),
            _span("c" * 16, "b" * 16, "payments", 20, error=True),
            _span("d" * 16, "b" * 16, "inventory", 30),
        ),
    )
    found = analyse((trace,), (), backend="jaeger", asked=f"trace {OTHER}", service=None)
    assert found.guilty == "payments"
    assert found.suspects[:2] == ("payments", "inventory")


def test_requests_made_inside_terrys_span_carry_its_traceparent() -> None:
    seen: list[httpx.Request] = []
    body = {
        "data": [
            {
                "traceID": OTHER,
                "spans": [
                    {
                        "traceID": OTHER,
                        "spanID": "00f067aa0ba902b7",
                        "operationName": "GET /",
                        "references": [],
                        "startTime": 1,
                        "duration": 5,
                        "tags": [],
                        "logs": [],
                        "processID": "p1",
                    }
                ],
                "processes": {"p1": {"serviceName": "frontend", "tags": []}},
            }
        ],
        "errors": None,
    }

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=json.dumps(body))

    client = JaegerClient("http://jaeger:16686", timeout=1, transport=httpx.MockTransport(answer))
    client.trace(OTHER)  # outside any span: nothing to propagate
    assert "traceparent" not in seen[-1].headers
    tracer = TracerProvider(shutdown_on_exit=False).get_tracer("test")
    with tracer.start_as_current_span("diagnose") as span:
        client.trace(OTHER)
        ids = span.get_span_context()
    expected = f"00-{ids.trace_id:032x}-{ids.span_id:016x}-01"
    assert seen[-1].headers["traceparent"] == expected
