"""Terry's own spans and the standard OTEL_* environment: the provider follows the
environment it was made with, ``service.name`` from ``OTEL_RESOURCE_ATTRIBUTES`` is
honoured, and an OTLP header's value (an API key) never reaches a log record."""

from __future__ import annotations

import logging

import pytest

from terry.traces import spans
from terry.traces.spans import SpanIds, exporting_from, parse_traceparent, tracer_for


def test_another_otel_environment_is_another_export() -> None:
    first = exporting_from(None, environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318"})
    second = exporting_from(None, environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://b:4318"})
    assert first is not None and second is not None
    assert first != second  # never the provider still sending to the first collector
    headers = {"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20sekrit-1"}
    keyed = exporting_from("http://a:4318", environ=headers)
    assert keyed != exporting_from("http://a:4318", environ={})
    assert "sekrit" not in repr(keyed)
    same = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318"}
    assert exporting_from(None, environ=same) == exporting_from(None, environ=dict(same))


def test_service_name_comes_from_the_resource_attributes_unless_named_on_its_own() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,service.name=terry%2Deu",
    }
    found = exporting_from(None, service="terry", environ=env)
    assert found is not None and found.service == "terry-eu"
    named = exporting_from(None, environ={**env, "OTEL_SERVICE_NAME": "terry-us"})
    assert named is not None and named.service == "terry-us"  # the spec: it wins
    plain = exporting_from(None, service="ops", environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "x"})
    assert plain is not None and plain.service == "ops"


def test_an_otlp_header_value_never_reaches_the_log(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # the second header is malformed (":" for "="): the SDK warns, quoting it
    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_HEADERS", "x-scope-orgid=tenant-1,authorization: Bearer s3cr3t-v4lue"
    )
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(spans, "_active", [spans.OFF])  # this process's tracer, as it was
    with caplog.at_level(logging.DEBUG):
        tracer = tracer_for(exporting_from(None, service="terry-headers-test"))
    assert tracer.on
    assert "Header format invalid" in caplog.text  # the SDK did speak
    assert "s3cr3t-v4lue" not in caplog.text
    assert all("s3cr3t-v4lue" not in r.getMessage() for r in caplog.records)


TRACE_ID, SPAN_ID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"00-{TRACE_ID}-{SPAN_ID}-01", SpanIds(TRACE_ID, SPAN_ID, sampled=True)),
        (f"00-{TRACE_ID}-{SPAN_ID}-00", SpanIds(TRACE_ID, SPAN_ID, sampled=False)),
        (f" 00-{TRACE_ID}-{SPAN_ID}-01 ", SpanIds(TRACE_ID, SPAN_ID, sampled=True)),
        # a later version is read by its first four fields (Trace Context, "Versioning")
        (f"cc-{TRACE_ID}-{SPAN_ID}-09-what-comes", SpanIds(TRACE_ID, SPAN_ID, sampled=True)),
        (f"00-{TRACE_ID}-{SPAN_ID}-01-more", None),  # version 00 has exactly four
        (f"ff-{TRACE_ID}-{SPAN_ID}-01", None),  # ff is never a version
        (f"00-{TRACE_ID.upper()}-{SPAN_ID}-01", None),
        (f"00-{'0' * 32}-{SPAN_ID}-01", None),
        (f"00-{TRACE_ID}-{'0' * 16}-01", None),
        (f"00-{TRACE_ID[:-1]}-{SPAN_ID}-01", None),
        (f"00-{TRACE_ID}-{SPAN_ID}", None),
        (f"cc-{TRACE_ID}-{SPAN_ID}-01-" + "x" * 300, None),
        ("", None),
        (None, None),
    ],
)
def test_a_traceparent_header_is_read_as_w3c_trace_context_says(
    header: str | None, expected: SpanIds | None
) -> None:
    assert parse_traceparent(header) == expected
