"""Traces: Terry's own (``spans``: one trace per incident, exported over OTLP/HTTP when
configured) and the traces of the services an alert is about (``jaeger``, ``tempo``,
``evidence``: the slowest and failing spans, upstream suspects, in the diagnosis).

``spans`` sits at the bottom of the layers, beside ``terry.redact`` (the ansible runner
uses it); the rest is domain. Nothing here imports OpenTelemetry's SDK unless tracing is
configured.
"""
