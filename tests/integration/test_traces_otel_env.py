"""Terry's spans configured by the standard OTEL_* environment alone, as an operator sets it
for a collector that wants an API key: the spans reach the collector the environment names
now (not one named before in the same process), with the header, the service and the
resource attributes it says; and a process that exits sends its last spans first."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from terry.traces.spans import exporting_from, tracer_for
from tests.fakes.local_server import LocalServer

pytestmark = pytest.mark.integration

KEY = "Bearer k3y-0f-the-collector"


class Collector(LocalServer):
    """``POST /v1/traces`` (OTLP/HTTP protobuf); answers 401 without the API key."""

    label = "OTLP collector"

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[dict[str, Any]] = []
        self.refused = 0
        self._lock = threading.Lock()

    def _app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/traces", self._export, methods=["POST"])])

    async def _export(self, request: Request) -> Response:
        if request.headers.get("authorization") != KEY:
            self.refused += 1
            return Response(status_code=401)
        export = ExportTraceServiceRequest.FromString(await request.body())
        with self._lock:
            for resource in export.resource_spans:
                attributes = {a.key: a.value.string_value for a in resource.resource.attributes}
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        self.spans.append({"name": span.name, "resource": attributes})
        answer = ExportTraceServiceResponse().SerializeToString()
        return Response(answer, media_type="application/x-protobuf")

    def named(self, name: str, timeout: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = [s for s in self.spans if s["name"] == name]
            if found:
                return found
            time.sleep(0.05)
        return []


@pytest.fixture
def collectors() -> Iterator[tuple[Collector, Collector]]:
    first, second = Collector(), Collector()
    first.start()
    second.start()
    yield first, second
    first.stop()
    second.stop()


def _env(collector: Collector) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.base_url,
        "OTEL_EXPORTER_OTLP_HEADERS": f"authorization={KEY.replace(' ', '%20')}",
        "OTEL_RESOURCE_ATTRIBUTES": "service.name=terry-eu,deployment.environment.name=prod",
    }


def test_spans_go_where_the_environment_says_now(
    collectors: tuple[Collector, Collector], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = collectors
    for collector, name in ((first, "to the first"), (second, "to the second")):
        for key, value in _env(collector).items():
            monkeypatch.setenv(key, value)
        tracer = tracer_for(exporting_from(None))
        with tracer.span(name):
            pass
        tracer.flush()
    [span] = second.named("to the second")
    assert not first.named("to the second", timeout=0.5)
    assert span["resource"]["service.name"] == "terry-eu"
    assert span["resource"]["deployment.environment.name"] == "prod"
    assert first.named("to the first") and not first.refused and not second.refused


def test_a_command_sends_its_last_spans_before_it_exits(
    collectors: tuple[Collector, Collector],
) -> None:
    first, _ = collectors
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env |= _env(first) | {"OTEL_SERVICE_NAME": "terry-cli"}
    code = (
        "from terry.traces.spans import exporting_from, tracer_for\n"
        "with tracer_for(exporting_from(None)).span('last words'):\n"
        "    pass\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    [span] = first.named("last words", timeout=2)  # sent at exit, not a batch later
    assert span["resource"]["service.name"] == "terry-cli"
    assert KEY.split()[1] not in done.stderr
