"""Terry's own spans, through OpenTelemetry's SDK, exported over OTLP/HTTP.

Off unless configured (``traces.otlp_endpoint`` in terry.yml, or the standard
``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``): then ``Tracer.span`` is a shared null context and
the SDK is never imported, so a command pays nothing for tracing it does not use.

The provider is this process's (one per exporter setting, never OpenTelemetry's global one,
so no library Terry uses starts exporting spans of its own). What runs inside a span finds
it through OpenTelemetry's context (a context variable, so per thread): ``current_ids`` for
the log filter and the incident record, ``traceparent`` (W3C trace context) for the
environment of ansible runs, and ``child`` for the ansible run's own span.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

__all__ = [
    "OFF",
    "Exporting",
    "SpanIds",
    "TraceIdFilter",
    "Tracer",
    "child",
    "current_ids",
    "exporting_from",
    "parse_traceparent",
    "traceparent",
    "tracer_for",
]

_NULL: contextlib.nullcontext[None] = contextlib.nullcontext()
Attributes = Mapping[str, str | int | float | bool]


@dataclass(frozen=True)
class SpanIds:
    """A span's identity in W3C form: 32 and 16 lowercase hex digits."""

    trace_id: str
    span_id: str
    sampled: bool = True

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"


_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")


def parse_traceparent(value: str | None) -> SpanIds | None:
    """A W3C ``traceparent`` header's span (Trace Context, level 1): version ``00`` exactly,
    a later version by its first four fields; None for anything else (version ``ff``, an
    all-zero trace or span id, upper case, a value too long to be one)."""
    if not value or len(value) > 256:
        return None
    found = _TRACEPARENT.fullmatch(value.strip())
    if found is None:
        return None
    version, trace_id, span_id, flags, rest = found.groups()
    if version == "ff" or (version == "00" and rest) or set(trace_id) == {"0"}:
        return None
    if set(span_id) == {"0"}:
        return None
    return SpanIds(trace_id, span_id, sampled=bool(int(flags, 16) & 1))


@dataclass(frozen=True)
class Exporting:
    """Where spans go. ``endpoint``: the OTLP/HTTP base URL (``/v1/traces`` is added), or
    None for what the ``OTEL_EXPORTER_OTLP_*`` environment says."""

    endpoint: str | None
    service: str = "terry"
    timeout: float = 5.0
    # Milliseconds a finished span may wait to be sent with others (the SDK's batch delay).
    delay_ms: int = 1000
    # A digest of the OTEL_* environment the SDK reads when the exporter is made (endpoint,
    # headers, resource attributes...): another environment is another provider, never one
    # still sending to the collector of before. A digest, so no header value is kept here.
    environment: str = field(default="", repr=False)


def _environment(env: Mapping[str, str]) -> str:
    items = sorted((k, v) for k, v in env.items() if k.startswith("OTEL_"))
    return hashlib.sha256(repr(items).encode()).hexdigest()[:16] if items else ""


def _resource_service(env: Mapping[str, str]) -> str | None:
    """``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES`` (``k=v,...``, percent-encoded)."""
    for item in env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, _, value = item.partition("=")
        if key.strip() == "service.name" and unquote(value).strip():
            return unquote(value).strip()
    return None


def exporting_from(
    endpoint: str | None,
    *,
    service: str = "terry",
    timeout: float = 5.0,
    environ: Mapping[str, str] | None = None,
) -> Exporting | None:
    """The export a configuration asks for, or None (tracing off): terry.yml's endpoint, or
    the standard OTEL_ environment (``OTEL_SDK_DISABLED=true`` and
    ``OTEL_TRACES_EXPORTER=none`` switch it off; ``OTEL_SERVICE_NAME``, else ``service.name``
    in ``OTEL_RESOURCE_ATTRIBUTES``, names the service)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    named = env.get("OTEL_SERVICE_NAME") or _resource_service(env) or service
    settings = _environment(env)
    if endpoint:
        return Exporting(endpoint, named, timeout, environment=settings)
    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return Exporting(None, named, timeout, environment=settings)
    return None


class Tracer:
    """Spans of one process (``OFF``: none, every call free)."""

    def __init__(self, sdk_tracer: Any = None, provider: Any = None) -> None:
        self._tracer = sdk_tracer
        self._provider = provider

    @property
    def on(self) -> bool:
        return self._tracer is not None

    def span(
        self,
        name: str,
        attributes: Attributes | None = None,
        *,
        parent: SpanIds | None = None,
        links: tuple[SpanIds, ...] = (),
    ) -> contextlib.AbstractContextManager[SpanIds | None]:
        """A span around the block, a child of the current one (or of ``parent``, a span of
        another process: the incident's trace continued), linked to ``links`` (spans of
        other traces it follows from: Alertmanager's notification). It records an exception
        that leaves the block and lets it go on."""
        if self._tracer is None:
            return _NULL
        return self._span(name, attributes, parent, links)

    @contextlib.contextmanager
    def _span(
        self,
        name: str,
        attributes: Attributes | None,
        parent: SpanIds | None,
        links: tuple[SpanIds, ...],
    ) -> Iterator[SpanIds | None]:
        from opentelemetry import trace

        def remote(ids: SpanIds) -> Any:
            flags = trace.TraceFlags.SAMPLED if ids.sampled else trace.TraceFlags.DEFAULT
            return trace.SpanContext(
                int(ids.trace_id, 16),
                int(ids.span_id, 16),
                is_remote=True,
                trace_flags=trace.TraceFlags(flags),
            )

        context = None
        if parent is not None:
            context = trace.set_span_in_context(trace.NonRecordingSpan(remote(parent)))
        with self._tracer.start_as_current_span(
            name,
            context=context,
            attributes=dict(attributes or {}),
            links=[trace.Link(remote(ids)) for ids in links],
        ):
            yield current_ids()

    def outcome(self, attributes: Attributes, *, error: str | None = None) -> None:
        """Say on the current span what its block came to: ``attributes``, and an error
        status with ``error`` as its description when it failed (an outcome, not an
        exception: a failed dry run or apply returns rather than raises)."""
        if self._tracer is None:
            return
        from opentelemetry import trace

        span = trace.get_current_span()
        span.set_attributes(dict(attributes))
        if error is not None:
            span.set_status(trace.Status(trace.StatusCode.ERROR, error[:500]))

    def flush(self, timeout_ms: int = 5000) -> bool:
        """Send the spans waiting in the batch now (tests; a command about to exit)."""
        return bool(self._provider.force_flush(timeout_ms)) if self._provider else True


OFF = Tracer()

# The tracer this process exports with (``child`` uses it); set by ``tracer_for``.
_active: list[Tracer] = [OFF]


def tracer_for(exporting: Exporting | None) -> Tracer:
    """This process's tracer for ``exporting`` (None: ``OFF``); one provider per setting,
    shut down (its last spans sent) when the process exits."""
    if exporting is None:
        return OFF
    made = _provider(exporting)
    _active[0] = made
    return made


@functools.lru_cache(maxsize=4)
def _provider(exporting: Exporting) -> Tracer:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # before the exporter reads the headers: the SDK logs a malformed one as it is
    _hide_header_values(os.environ)
    endpoint = exporting.endpoint
    exporter = OTLPSpanExporter(
        endpoint=f"{endpoint.rstrip('/')}/v1/traces" if endpoint else None,
        timeout=exporting.timeout,
    )
    provider = TracerProvider(resource=Resource.create({"service.name": exporting.service}))
    provider.add_span_processor(
        BatchSpanProcessor(exporter, schedule_delay_millis=exporting.delay_ms)
    )
    install_log_filter()
    return Tracer(provider.get_tracer("terry"), provider)


# The SDK's loggers that can echo an OTLP header (a malformed one, an export error).
_SDK_LOGGERS = (
    "opentelemetry.util.re",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.sdk.trace",
    "opentelemetry.sdk.trace.export",
)
_HEADER_ENV = ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS")
_HIDDEN = "[redacted]"


def _header_values(env: Mapping[str, str]) -> set[str]:
    """The values of the OTLP headers (an API key): each ``name=value`` (or malformed
    ``name: value``) item whole, its value as written and percent-decoded, and the value's
    long words (``Bearer <token>``: the token, however an error message quotes the rest)."""
    found: set[str] = set()
    for name in _HEADER_ENV:
        for item in env.get(name, "").split(","):
            item = item.strip()
            _, sep, value = item.partition("=") if "=" in item else item.partition(":")
            values = {value.strip(), unquote(value).strip()} if sep else {item}
            words = {w for v in values for w in re.split(r"\s+", v) if len(w) >= 8}
            found |= {item} | values | words
    return {v for v in found if len(v) >= 4}


class _HeaderValuesFilter(logging.Filter):
    """Replaces the OTLP header values in the SDK's own records (message and exception),
    before any handler, the test's or the CLI's, sees them."""

    def __init__(self, values: Iterable[str]) -> None:
        super().__init__()
        ordered = sorted(set(values), key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def filter(self, record: logging.LogRecord) -> bool:
        if self._pattern is None:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format: logging reports it itself
            return True
        record.msg, record.args = self._pattern.sub(_HIDDEN, message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._pattern.sub(_HIDDEN, record.exc_text)
            record.exc_info = None
        return True


def _hide_header_values(env: Mapping[str, str]) -> None:
    """The OTLP headers' values out of the SDK's log records (one filter a logger, the
    values of the environment the latest exporter read)."""
    hiding = _HeaderValuesFilter(_header_values(env))
    for name in _SDK_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, _HeaderValuesFilter)]:
            logger.removeFilter(old)
        logger.addFilter(hiding)


def current_ids() -> SpanIds | None:
    """The current span's ids (this thread's), or None outside any span."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:  # never imported: no span can be open
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return SpanIds(
        format(context.trace_id, "032x"),
        format(context.span_id, "016x"),
        bool(context.trace_flags & trace.TraceFlags.SAMPLED),
    )


def traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, for a child process to join the trace
    (``TRACEPARENT`` in its environment, as OpenTelemetry-aware tools read it)."""
    ids = current_ids()
    return ids.traceparent if ids else None


def child(
    name: str, attributes: Attributes | None = None
) -> contextlib.AbstractContextManager[SpanIds | None]:
    """A child span of the current one with this process's tracer; free outside a span."""
    tracer = _active[0]
    if not tracer.on or current_ids() is None:
        return _NULL
    return tracer.span(name, attributes)


class TraceIdFilter(logging.Filter):
    """Puts the current trace id on each record (``record.trace_id``, "" outside a trace)
    and at the end of its message, so a log line leads to its trace."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = current_ids()
        record.trace_id = ids.trace_id if ids else ""
        if ids and not getattr(record, "_terry_traced", False):
            try:
                message = record.getMessage()
            except Exception:  # a bad format: logging reports it itself
                return True
            record.msg, record.args = f"{message} trace_id={ids.trace_id}", None
            record._terry_traced = True
        return True


def install_log_filter() -> None:
    """Trace ids on every record that reaches the root logger's handlers (once each)."""
    root = logging.getLogger()
    for target in (root, *root.handlers):
        if not any(isinstance(f, TraceIdFilter) for f in target.filters):
            target.addFilter(TraceIdFilter())
