"""Terry traces itself: an OTLP/HTTP receiver in the test (decoding the export requests with
opentelemetry-proto's classes) checks that each incident is one trace, with a span per
step, the ansible runs as children, work done later (an apply) continuing the same trace,
the trace id on the incident, and ``TRACEPARENT`` in the ansible run's environment. And a
traced alert naming no host is routed to the host running the guilty service."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from terry.demo import example
from terry.gitops.repo import Repo
from terry.traces.spans import exporting_from, tracer_for
from tests.conftest import Cli, alert, config_for, make_cli, payload
from tests.fakes.jaeger_api import FakeJaeger, SpanSpec
from tests.fakes.local_server import LocalServer

pytestmark = pytest.mark.integration

TRACE = "5b8efff798038103d269b633813fc60c"


class OtlpReceiver(LocalServer):
    """``POST /v1/traces`` as the OTLP/HTTP specification has it: a protobuf
    ``ExportTraceServiceRequest`` in, an ``ExportTraceServiceResponse`` out."""

    label = "OTLP receiver"

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def _app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/traces", self._export, methods=["POST"])])

    async def _export(self, request: Request) -> Response:
        if request.headers.get("content-type") != "application/x-protobuf":
            return Response(status_code=415)
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest.FromString(body)
        with self._lock:
            for resource in export.resource_spans:
                service = next(
                    a.value.string_value
                    for a in resource.resource.attributes
                    if a.key == "service.name"
                )
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        self.spans.append(
                            {
                                "service": service,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent": span.parent_span_id.hex() or None,
                                "name": span.name,
                                "attributes": {
                                    a.key: a.value.string_value or a.value.int_value
                                    for a in span.attributes
                                },
                            }
                        )
        answer = ExportTraceServiceResponse().SerializeToString()
        return Response(answer, media_type="application/x-protobuf")

    def of(self, trace_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [s for s in self.spans if s["trace_id"] == trace_id]


@pytest.fixture(scope="module")
def otlp() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def jaeger() -> Iterator[FakeJaeger]:
    server = FakeJaeger()
    server.add_trace(
        TRACE,
        [
            SpanSpec("a1" * 8, None, "frontend", "GET /", 0, 300, True, "upstream 502"),
            SpanSpec("a2" * 8, "a1" * 8, "web", "GET /api", 2, 290, True, "bind: in use"),
        ],
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory, otlp: OtlpReceiver, jaeger: FakeJaeger
) -> Iterator[Cli]:
    repo = tmp_path_factory.mktemp("traces") / "ops"
    cli = make_cli(repo)
    assert cli("init", str(repo)).exit_code == 0
    config = yaml.safe_load((repo / "terry.yml").read_text())
    config["traces"] = {"otlp_endpoint": otlp.base_url, "jaeger_url": jaeger.base_url}
    (repo / "terry.yml").write_text(yaml.safe_dump(config))
    # web-02 runs the service "web" (the label routing reads)
    [inventory] = (repo / "inventories" / "example").glob("*.yml")
    hosts = yaml.safe_load(inventory.read_text())
    staging = hosts["all"]["children"]["staging"]["hosts"]
    staging["web-02"]["terry_labels"]["service"] = "web"
    inventory.write_text(yaml.safe_dump(hosts))
    Repo(repo).commit_paths(["terry.yml", str(inventory.relative_to(repo))], "trace Terry")
    assert cli("example", "up").exit_code == 0
    yield cli
    example.down(config_for(repo))


def _spans(otlp: OtlpReceiver, trace_id: str, count: int) -> list[dict[str, Any]]:
    """The trace's spans once ``count`` have arrived (sent in batches, in the background)."""
    tracer_for(exporting_from(otlp.base_url)).flush()
    deadline = time.monotonic() + 10
    while len(found := otlp.of(trace_id)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def test_an_incident_is_one_trace_with_a_span_per_step(fleet: Cli, otlp: OtlpReceiver) -> None:
    fleet("example", "break", "web-01", "disk")
    body = payload(
        [alert("DiskUsageHigh", fingerprint="tr-1", host="web-01", mountpoint="/srv/data")]
    )
    out = fleet.json("alert", "ingest", "-", "--no-apply", input=body)
    [outcome] = out["proposals"]
    assert outcome["state"] == "merged", outcome
    pid, incident_id = str(outcome["proposal_id"]), str(outcome["incident_id"])
    # later, in another command: the apply continues the incident's trace
    assert fleet.json("proposals", "apply", pid)["state"] == "verified"

    story = fleet.json("incidents", "show", incident_id)
    trace_id = story["incident"]["trace_id"]
    assert trace_id and len(trace_id) == 32
    assert f"trace    {trace_id}" in fleet("incidents", "show", incident_id).stdout
    spans = _spans(otlp, trace_id, 10)
    by_name = {s["name"]: s for s in spans}
    assert {s["service"] for s in spans} == {"terry"}
    [root] = [s for s in spans if s["parent"] is None]
    assert root["name"].startswith("remediate INC-")
    assert root["attributes"]["terry.incident.id"] == int(incident_id)
    for step in ("diagnose", "propose", "dry_run", "gate"):
        assert by_name[step]["parent"] == root["span_id"], (step, spans)
    later = next(s for s in spans if s["name"].startswith("apply INC-"))
    assert later["parent"] == root["span_id"]  # continued from the incident record
    assert by_name["apply"]["parent"] == later["span_id"]
    runs = {s["attributes"]["terry.run"]: s for s in spans if s["name"] == "ansible-playbook"}
    assert runs["check"]["parent"] == by_name["dry_run"]["span_id"]
    assert runs["apply"]["parent"] == by_name["apply"]["span_id"]
    assert any(s["name"] == "ansible-playbook" for s in otlp.of(trace_id))
    # no other incident's spans in this trace
    assert all(
        s["attributes"].get("terry.incident.id", int(incident_id)) == int(incident_id)
        for s in spans
    )

    # the ansible run got the W3C trace context of its own span
    detail = fleet.json("proposals", "show", pid)
    apply_run = next(r for r in detail["runs"] if r["kind"] == "apply")
    [command] = Path(apply_run["artifact_dir"]).glob("**/command")
    env = json.loads(command.read_text())["env"]
    assert env["TRACEPARENT"] == f"00-{trace_id}-{runs['apply']['span_id']}-01"


def test_a_traced_alert_naming_no_host_goes_to_the_host_of_the_guilty_service(
    fleet: Cli, otlp: OtlpReceiver
) -> None:
    body = payload(
        [
            alert(
                "ServiceDown",
                fingerprint="tr-2",
                service="web",
                annotations={"summary": "web is failing", "trace_id": TRACE},
            )
        ]
    )
    out = fleet.json("alert", "ingest", "-", "--no-apply", input=body)
    [outcome] = out["proposals"]
    assert outcome["proposal_id"], outcome
    detail = fleet.json("proposals", "show", str(outcome["proposal_id"]))
    assert detail["summary"]["hosts"] == ["web-02"]
    story = fleet.json("incidents", "show", str(outcome["incident_id"]))
    traces = story["traces"]
    assert traces["guilty"] == "web" and traces["routed_to"] == "web-02"
    assert traces["failing"][0]["message"] == "bind: in use"
    text = fleet("incidents", "show", str(outcome["incident_id"])).stdout
    assert "guilty service: web" in text and "routed to host web-02" in text
    # a second incident is a second trace
    assert story["incident"]["trace_id"] not in (None, "")
    first = fleet.json("incidents", "list")
    ids = {i["trace_id"] for i in first if i["trace_id"]}
    assert len(ids) == len([i for i in first if i["trace_id"]])
