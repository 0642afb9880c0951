"""An incident report's "Traces" section: what the services' traces said (issue 21).

Two things are kept on the incident (``IncidentRow``): ``trace_id``, Terry's own trace of
its work on the incident (``terry.traces.incident``), and ``trace_evidence``, what the
services' traces in Jaeger or Tempo said when it was diagnosed (``terry.traces.evidence``):
the traces read, the slowest and failing spans, the guilty service, the upstream suspects.

The evidence is read from the stored JSON into this section's own typed values (the report
asks no trace backend, and a row written by an older version still reads). Every string in
it came from a service's spans (untrusted): bounded again here, rendered inert by the
formats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from terry.store import Store
from terry.store.models import IncidentRow

__all__ = ["TraceSpan", "TracesSection", "traces_section"]

_KEEP = 5  # spans of each kind, trace ids, suspects
_TEXT = 300


@dataclass(frozen=True)
class TraceSpan:
    """A slow or failing span (untrusted: service, operation, message)."""

    service: str
    operation: str
    duration_ms: float
    self_ms: float
    error: bool
    message: str
    trace_id: str


@dataclass(frozen=True)
class TracesSection:
    own_trace_id: str | None  # Terry's trace of its work on the incident
    backend: str | None  # jaeger | tempo, when the services' traces were read
    asked: str  # what was asked of it
    trace_ids: tuple[str, ...]
    slowest: tuple[TraceSpan, ...]
    failing: tuple[TraceSpan, ...]
    guilty: str | None  # the service where failure (or time) starts
    suspects: tuple[str, ...]  # upstream: services the alerting one calls
    unavailable: str | None  # why the traces could not be read
    routed_to: str | None  # the host the incident was routed to by the guilty service


def _text(value: Any, limit: int = _TEXT) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(value: Any) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else 0.0


def _texts(value: Any, limit: int = 128) -> tuple[str, ...]:
    items = value if isinstance(value, list | tuple) else ()
    return tuple(_text(v, limit) for v in items[:_KEEP])


def _spans(value: Any) -> tuple[TraceSpan, ...]:
    items = value if isinstance(value, list | tuple) else ()
    return tuple(
        TraceSpan(
            service=_text(s.get("service"), 128),
            operation=_text(s.get("operation"), 200),
            duration_ms=_number(s.get("duration_ms")),
            self_ms=_number(s.get("self_ms")),
            error=s.get("error") is True,
            message=_text(s.get("message")),
            trace_id=_text(s.get("trace_id"), 64),
        )
        for s in items[:_KEEP]
        if isinstance(s, Mapping)
    )


def _optional(value: Any, limit: int = 128) -> str | None:
    return _text(value, limit) if isinstance(value, str) and value else None


def traces_section(store: Store, incident_id: int) -> TracesSection | None:
    """The incident's traces, or None when it has neither a trace of its own nor evidence."""
    with store.session() as session:
        row = session.get(IncidentRow, incident_id)
        own = row.trace_id if row is not None else None
        kept = row.trace_evidence if row is not None else None
    evidence: Mapping[str, Any] = kept if isinstance(kept, Mapping) else {}
    if not own and not evidence:
        return None
    return TracesSection(
        own_trace_id=_text(own, 64) if own else None,
        backend=_optional(evidence.get("backend"), 32),
        asked=_text(evidence.get("asked") or ""),
        trace_ids=_texts(evidence.get("trace_ids"), 64),
        slowest=_spans(evidence.get("slowest")),
        failing=_spans(evidence.get("failing")),
        guilty=_optional(evidence.get("guilty")),
        suspects=_texts(evidence.get("suspects")),
        unavailable=_optional(evidence.get("unavailable"), _TEXT),
        routed_to=_optional(evidence.get("routed_to")),
    )
