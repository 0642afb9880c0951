"""The services' traces as Terry reads them: spans with their service, parent, timing and
error, whichever backend (Jaeger, Tempo) they came from. Built once, at the client's
boundary, from each backend's JSON; the analysis (``terry.traces.evidence``) reads only
these."""

from __future__ import annotations

from dataclasses import dataclass

from terry.errors import TerryError

__all__ = ["Dependency", "Span", "Trace", "TraceTimedOut", "TraceUnavailable"]


class TraceUnavailable(TerryError):
    """Jaeger or Tempo could not answer (not found, an error, too slow, not JSON): evidence
    that says so, never a failed diagnosis."""


class TraceTimedOut(TraceUnavailable):
    """The backend did not answer in time: asking it more would only wait longer."""


@dataclass(frozen=True)
class Span:
    span_id: str
    parent_id: str | None
    service: str
    operation: str
    start_us: int  # microseconds since the epoch
    duration_us: int
    error: bool
    message: str = ""  # the error's message (status message, an error log's), when any


@dataclass(frozen=True)
class Trace:
    trace_id: str
    spans: tuple[Span, ...]

    def children(self, span_id: str) -> tuple[Span, ...]:
        return tuple(s for s in self.spans if s.parent_id == span_id)


@dataclass(frozen=True)
class Dependency:
    """One edge of the service graph: ``parent`` calls ``child``."""

    parent: str
    child: str
    calls: int = 0
