"""What the services' traces say about an incident: evidence for its diagnosis.

When an alert carries a trace id (a label or annotation ``trace_id``, ``traceID``...) or
names a service (``service``), Terry reads that trace, or the service's recent error traces,
from Jaeger or Tempo (``traces.jaeger_url`` / ``traces.tempo_url``), and the service graph
(Jaeger's dependencies; otherwise the calls the traces themselves show). It keeps:

- the slowest spans (by the time spent in the span itself, not in what it called),
- the failing spans, and the service where failure starts (a failing span none of whose
  children failed): the *guilty* service; without failures, the one holding the most time,
- upstream suspects: the services the alerting service calls, directly or through others,
  those seen failing first.

The evidence is kept on the incident (``incidents.trace_evidence``), shown by ``terry
incidents show``, given to Claude as fenced data and to reviewers in the pull request. It
can route an incident to the inventory host labelled ``service=<guilty>`` (``traces.route``).
Whatever goes wrong reading traces is evidence too ("trace unavailable: ..."), never a
failed diagnosis. Everything read is untrusted text and bounded.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from terry.durations import format_duration
from terry.store.models import IncidentRow
from terry.traces.model import Dependency, Span, Trace, TraceUnavailable

if TYPE_CHECKING:
    from terry.config import TracesConfig
    from terry.inventory.hosts import Host, Inventory
    from terry.store import Store

__all__ = [
    "SpanNote",
    "TraceEvidence",
    "analyse",
    "consider",
    "evidence_of",
    "gather",
    "guilty_host",
]

log = logging.getLogger("terry.traces")

_TRACE_ID = re.compile(r"^[0-9a-fA-F]{16,32}$")
_SERVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
_KEEP = 3  # slowest and failing spans kept
_SUSPECTS = 5
_TEXT = 300


def _text(value: str, limit: int = _TEXT) -> str:
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class SpanNote:
    """One span worth a person's attention."""

    service: str
    operation: str
    duration_ms: float
    self_ms: float
    error: bool = False
    message: str = ""
    trace_id: str = ""


@dataclass(frozen=True)
class TraceEvidence:
    backend: str  # jaeger | tempo
    asked: str  # what was asked: a trace, or a service's recent error traces
    trace_ids: tuple[str, ...] = ()
    slowest: tuple[SpanNote, ...] = ()
    failing: tuple[SpanNote, ...] = ()
    guilty: str | None = None  # the service where failure (or time) starts
    suspects: tuple[str, ...] = ()  # upstream: services the alerting one calls
    unavailable: str | None = None  # why traces could not be read
    routed_to: str | None = None  # the inventory host the incident was routed to
    services: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TraceEvidence:
        notes = ("slowest", "failing")
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in notes:
            values[key] = tuple(SpanNote(**n) for n in values.get(key) or ())
        for key in ("trace_ids", "suspects", "services"):
            values[key] = tuple(values.get(key) or ())
        return cls(**values)

    def lines(self) -> list[str]:
        """The evidence for people, one fact a line (untrusted text, bounded)."""
        out = [f"{self.backend}: {self.asked}"]
        if self.unavailable:
            return [*out, f"trace unavailable: {self.unavailable}"]
        if self.trace_ids:
            out.append("traces: " + ", ".join(self.trace_ids[:5]))
        for note in self.failing:
            said = f": {note.message}" if note.message else ""
            out.append(f"failing: {note.service} {note.operation} ({note.duration_ms:g} ms){said}")
        for note in self.slowest:
            out.append(
                f"slowest: {note.service} {note.operation} {note.duration_ms:g} ms "
                f"({note.self_ms:g} ms in itself)"
            )
        if self.guilty:
            out.append(f"guilty service: {self.guilty}")
        if self.suspects:
            out.append("upstream suspects: " + ", ".join(self.suspects))
        if self.routed_to:
            out.append(f"routed to host {self.routed_to} (inventory label service={self.guilty})")
        return out

    def view(self) -> dict[str, Any]:
        """What Claude is shown (inside the fenced incident data)."""
        data = self.to_json()
        data.pop("routed_to", None)
        return data


class TraceSource(Protocol):
    name: str

    def trace(self, trace_id: str) -> Trace: ...

    def error_traces(self, service: str, *, lookback: float, limit: int) -> tuple[Trace, ...]: ...

    def dependencies(self, *, lookback: float) -> tuple[Dependency, ...]: ...

    def close(self) -> None: ...


def _self_us(trace: Trace) -> dict[str, int]:
    """Each span's time not spent in its children (children clipped to the span)."""
    spent: dict[str, int] = {}
    by_id = {s.span_id: s for s in trace.spans}
    for span in trace.spans:
        spent.setdefault(span.span_id, span.duration_us)
    for span in trace.spans:
        parent = by_id.get(span.parent_id or "")
        if parent is not None:
            spent[parent.span_id] -= min(span.duration_us, parent.duration_us)
    return {k: max(0, v) for k, v in spent.items()}


def _note(span: Any, own_us: int, trace_id: str) -> SpanNote:
    return SpanNote(
        service=_text(span.service, 128),
        operation=_text(span.operation, 200),
        duration_ms=round(span.duration_us / 1000, 3),
        self_ms=round(own_us / 1000, 3),
        error=span.error,
        message=_text(span.message),
        trace_id=trace_id,
    )


def _upstream(service: str | None, edges: tuple[Dependency, ...]) -> list[str]:
    """Services ``service`` calls, nearest first (breadth first over the graph)."""
    if not service:
        return []
    calls: dict[str, list[str]] = {}
    for edge in edges:
        calls.setdefault(edge.parent, []).append(edge.child)
    seen, order, queue = {service}, [], [service]
    while queue:
        current = queue.pop(0)
        for callee in sorted(calls.get(current, [])):
            if callee not in seen:
                seen.add(callee)
                order.append(callee)
                queue.append(callee)
    return order


def _roots(trace: Trace) -> list[Span]:
    """The spans at the top of what was read: no parent, or a parent the trace lacks (a
    span not sent, or dropped: Jaeger warns "invalid parent span IDs"), earliest first."""
    ids = {s.span_id for s in trace.spans}
    tops = [s for s in trace.spans if s.parent_id is None or s.parent_id not in ids]
    return sorted(tops, key=lambda s: (s.parent_id is not None, s.start_us))


def _edges_of(traces: tuple[Trace, ...]) -> tuple[Dependency, ...]:
    """The calls between services the traces show (a span whose parent is another's)."""
    found: Counter[tuple[str, str]] = Counter()
    for trace in traces:
        by_id = {s.span_id: s for s in trace.spans}
        for span in trace.spans:
            parent = by_id.get(span.parent_id or "")
            if parent is not None and parent.service != span.service:
                found[(parent.service, span.service)] += 1
    return tuple(Dependency(p, c, n) for (p, c), n in found.items())


def analyse(
    traces: tuple[Trace, ...],
    edges: tuple[Dependency, ...],
    *,
    backend: str,
    asked: str,
    service: str | None,
) -> TraceEvidence:
    """The slowest and failing spans, the guilty service and the upstream suspects."""
    slow: list[SpanNote] = []
    failing: list[SpanNote] = []
    origins: Counter[str] = Counter()
    time_by_service: Counter[str] = Counter()
    for trace in traces:
        own = _self_us(trace)
        for span in trace.spans:
            time_by_service[span.service] += own[span.span_id]
            slow.append(_note(span, own[span.span_id], trace.trace_id))
            if span.error:
                failing.append(_note(span, own[span.span_id], trace.trace_id))
                if not any(c.error for c in trace.children(span.span_id)):
                    origins[span.service] += 1
    alerting = service or next((s.service for t in traces for s in _roots(t)), None)
    if origins:
        guilty = _text(origins.most_common(1)[0][0], 128)
    elif time_by_service:
        guilty = _text(time_by_service.most_common(1)[0][0], 128)
    else:
        guilty = None
    upstream = _upstream(alerting, edges or _edges_of(traces))
    failed = {n.service for n in failing}
    ranked = sorted(upstream, key=lambda s: (s != guilty, s not in failed, upstream.index(s)))
    failing.sort(key=lambda n: (origins[n.service] == 0, -n.duration_ms))
    return TraceEvidence(
        backend=backend,
        asked=_text(asked),
        trace_ids=tuple(_text(t.trace_id, 64) for t in traces[:10]),
        slowest=tuple(sorted(slow, key=lambda n: -n.self_ms)[:_KEEP]),
        failing=tuple(failing[:_KEEP]),
        guilty=guilty,
        suspects=tuple(_text(s, 128) for s in ranked[:_SUSPECTS]),
        services=tuple(sorted({_text(s.service, 128) for t in traces for s in t.spans}))[:20],
    )


def _named(keys: list[str], labels: Mapping[str, Any], annotations: Mapping[str, Any]) -> str:
    for key in keys:
        for table in (labels, annotations):
            value = table.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return ""


def _source(config: TracesConfig) -> TraceSource | None:
    if config.jaeger_url:
        from terry.traces.jaeger import JaegerClient

        return JaegerClient(config.jaeger_url, timeout=config.timeout)
    if config.tempo_url:
        from terry.traces.tempo import TempoClient

        return TempoClient(config.tempo_url, timeout=config.timeout)
    return None


def gather(
    config: TracesConfig,
    labels: Mapping[str, Any],
    annotations: Mapping[str, Any],
    *,
    source: TraceSource | None = None,
) -> TraceEvidence | None:
    """The evidence for an alert, or None when no backend is configured or the alert names
    neither a trace nor a service. Never raises for what the backend does."""
    trace_id = _named(config.trace_labels, labels, annotations)
    service = _named(config.service_labels, labels, annotations)
    if trace_id and not _TRACE_ID.match(trace_id):
        trace_id = ""  # not an id Jaeger or Tempo could have given: never put in a URL
    if service and not _SERVICE.match(service):
        service = ""
    if not (trace_id or service):
        return None
    client = source or _source(config)
    if client is None:
        return None
    asked = (
        f"trace {trace_id}"
        if trace_id
        else f"error traces of {service} in the last {format_duration(config.lookback)}"
    )
    try:
        if trace_id:
            traces: tuple[Trace, ...] = (client.trace(trace_id.lower()),)
        else:
            traces = client.error_traces(service, lookback=config.lookback, limit=config.max_traces)
        try:
            edges = client.dependencies(lookback=config.lookback)
        except TraceUnavailable as exc:  # the traces alone still tell a lot
            log.info("service graph left out: %s", exc)
            edges = ()
    except TraceUnavailable as exc:
        return TraceEvidence(client.name, _text(asked), unavailable=_text(str(exc)))
    finally:
        if source is None:
            client.close()
    if not traces:
        return TraceEvidence(client.name, _text(asked), unavailable="no traces found")
    return analyse(traces, edges, backend=client.name, asked=asked, service=service or None)


def guilty_host(evidence: TraceEvidence, inventory: Inventory) -> Host | None:
    """The one inventory host labelled ``service=<guilty service>``, if exactly one is."""
    if not evidence.guilty:
        return None
    hosts = [h for h in inventory.hosts.values() if h.labels.get("service") == evidence.guilty]
    return hosts[0] if len(hosts) == 1 else None


def consider(
    config: TracesConfig,
    store: Store,
    incident_id: int,
    *,
    labels: Mapping[str, Any],
    annotations: Mapping[str, Any],
    inventory: Inventory,
    host_labels: list[str],
) -> dict[str, Any]:
    """Gather the incident's trace evidence, keep it on the incident, and return the labels
    diagnosis should read: the alert's own, or, routed (``traces.route``), with the host
    label naming the host that runs the guilty service."""
    evidence = gather(config, labels, annotations)
    if evidence is None:
        return dict(labels)
    named = any(labels.get(k) for k in host_labels)
    routed = dict(labels)
    if config.route == "always" or (config.route == "unlabelled" and not named):
        host = guilty_host(evidence, inventory)
        if host is not None and host_labels:
            routed = {k: v for k, v in labels.items() if k not in host_labels}
            routed[host_labels[0]] = host.name
            evidence = replace(evidence, routed_to=host.name)
    with store.session() as session:
        row = session.get(IncidentRow, incident_id)
        if row is not None:
            row.trace_evidence = evidence.to_json()
    return routed


def evidence_of(store: Store, incident_id: int) -> TraceEvidence | None:
    """The trace evidence kept on the incident, if any."""
    with store.session() as session:
        row = session.get(IncidentRow, incident_id)
        data = row.trace_evidence if row is not None else None
    return TraceEvidence.from_json(data) if data else None
