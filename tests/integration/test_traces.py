"""Terry traces itself: an OTLP/HTTP receiver in the test (decoding the export requests with
opentelemetry-proto's classes) checks that each incident is one trace, with a span per
step, the ansible runs as children, work done later (an apply) continuing the same trace,
the trace id on the incident, and ``TRACEPARENT`` in the ansible run's environment. And a
traced alert naming no host is routed to the host running the guilty service."""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import subprocess
import sys
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
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from terry.demo import example
from terry.gitops.repo import Repo
from terry.store import Store
from terry.store.models import IncidentRow
from terry.traces.spans import TraceIdFilter, exporting_from, tracer_for
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
                                "status": (span.status.code, span.status.message),
                                "attributes": {
                                    a.key: a.value.string_value or a.value.int_value
                                    for a in span.attributes
                                },
                                "links": [
                                    (link.trace_id.hex(), link.span_id.hex()) for link in span.links
                                ],
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
    tracer_for(exporting_from(server.base_url)).flush()  # nothing left to send at exit
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
    cli.ok("init", str(repo))
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
    # the example hosts' roots only: the dry runs need hosts to reach, not a converged fleet
    for host in example.example_hosts(config_for(repo)):
        for where in ("srv/data/log", "srv/data/tmp"):
            (repo / ".terry" / "hosts" / host / where).mkdir(parents=True, exist_ok=True)
    yield cli


def _spans(otlp: OtlpReceiver, trace_id: str, count: int) -> list[dict[str, Any]]:
    """The trace's spans once ``count`` have arrived (sent in batches, in the background)."""
    tracer_for(exporting_from(otlp.base_url)).flush()
    deadline = time.monotonic() + 10
    while len(found := otlp.of(trace_id)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def _chain(spans: list[dict[str, Any]], span: dict[str, Any]) -> list[str]:
    """The names of a span's ancestors, nearest first."""
    by_id = {s["span_id"]: s for s in spans}
    names = []
    while span["parent"] is not None:
        span = by_id[span["parent"]]
        names.append(span["name"])
    return names


def test_an_incident_is_one_trace_with_a_span_per_step(fleet: Cli, otlp: OtlpReceiver) -> None:
    body = payload(
        [alert("DiskUsageHigh", fingerprint="tr-1", host="db-01", mountpoint="/srv/data")]
    )
    [outcome] = fleet.json("alert", "ingest", "-", input=body)["proposals"]
    assert outcome["state"] == "awaiting_review", outcome  # production: a person decides
    pid, incident_id = str(outcome["proposal_id"]), str(outcome["incident_id"])
    # later, in another command: the rejection continues the incident's trace
    fleet.ok("proposals", "reject", pid, "--reason", "not now")

    story = fleet.json("incidents", "show", incident_id)
    trace_id = story["incident"]["trace_id"]
    assert trace_id and len(trace_id) == 32
    assert f"trace    {trace_id}" in fleet("incidents", "show", incident_id).stdout
    spans = _spans(otlp, trace_id, 9)
    named = {s["name"]: s for s in spans}
    assert {s["service"] for s in spans} == {"terry"}
    [root] = [s for s in spans if s["parent"] is None]  # one trace, one root
    assert root["name"].startswith("remediate INC-")
    assert root["attributes"]["terry.incident.id"] == int(incident_id)
    assert root["attributes"]["terry.incident.ref"] == root["name"].split(" ", 1)[1]
    names = {k for s in spans for k in s["attributes"]}
    # OpenTelemetry's attribute naming: no name is also the namespace of others
    assert not [n for n in names if any(o.startswith(f"{n}.") for o in names)], names
    for step in ("diagnose", "propose", "dry_run", "gate"):
        assert _chain(spans, named[step])[-1] == root["name"], step
    [check] = [s for s in spans if s["name"] == "ansible-playbook"]
    assert check["attributes"]["terry.run"] == "check"
    assert check["parent"] == named["dry_run"]["span_id"]
    # each step says where it left the proposal; none failed it
    assert named["dry_run"]["attributes"]["terry.proposal.state"] == "checked"
    assert named["gate"]["attributes"]["terry.proposal.state"] == "awaiting_review"
    assert named["dry_run"]["status"][0] != 2 and named["gate"]["status"][0] != 2
    later = next(s for s in spans if s["name"].startswith("reject INC-"))
    assert later["parent"] == root["span_id"]  # continued from the incident record
    assert named["review"]["parent"] == later["span_id"]

    # the ansible run got the W3C trace context of its own span
    detail = fleet.json("proposals", "show", pid)
    [run] = [r for r in detail["runs"] if r["kind"] == "check"]
    [command] = Path(run["artifact_dir"]).glob("**/command")
    env = json.loads(command.read_text())["env"]
    assert env["TRACEPARENT"] == f"00-{trace_id}-{check['span_id']}-01"

    # a log line inside a span names its trace
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    handler.addFilter(TraceIdFilter())
    logger = logging.getLogger("terry.test_traces")
    logger.addHandler(handler)
    try:
        with tracer_for(exporting_from(otlp.base_url)).span("log check") as ids:
            logger.warning("inside %s", "a span")
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    assert ids is not None
    assert records[0].getMessage() == f"inside a span trace_id={ids.trace_id}"
    assert records[1].getMessage() == "outside" and records[1].trace_id == ""


def test_an_incident_alertmanager_notified_in_a_trace_links_to_that_trace(
    fleet: Cli, otlp: OtlpReceiver
) -> None:
    """Alertmanager (0.28+, tracing on) sends its notification span's ``traceparent`` with
    the webhook: the incident it opens starts its own trace, whose first span links to
    Alertmanager's. A malformed header is ignored, never a refusal."""
    from tests.integration.test_server import CLEAN, Serve

    alertmanager = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    server = Serve(fleet.repo)
    try:
        sent = server.post(
            payload([alert("DiskUsageHigh", fingerprint="tr-am", host="db-01", mountpoint="/x")]),
            headers={"traceparent": f"00-{alertmanager[0]}-{alertmanager[1]}-01"},
        )
        odd = server.post(
            payload([alert("DiskUsageHigh", fingerprint="tr-odd", host="db-01", mountpoint="/y")]),
            headers={"traceparent": f"00-{alertmanager[0].upper()}-{alertmanager[1]}-01"},
        )
        assert (sent.status_code, odd.status_code) == (202, 202), (sent.text, odd.text)

        def traced() -> dict[str, str]:
            store = Store(config_for(fleet.repo).store_url)
            try:
                with store.session() as session:
                    found = dict(
                        session.execute(select(IncidentRow.fingerprint, IncidentRow.trace_id)).all()
                    )
            finally:
                store.dispose()
            return found if found.get("tr-am") and found.get("tr-odd") else {}

        def roots() -> dict[str, dict[str, Any]]:
            """Each incident's first span, once the server exported it (when it ended)."""
            found = {
                fingerprint: [s for s in otlp.of(trace_id) if s["parent"] is None]
                for fingerprint, trace_id in (traced() or {}).items()
            }
            return {f: spans[0] for f, spans in found.items() if len(spans) == 1}

        deadline = time.monotonic() + 120
        while len(first := roots()) < 2:
            assert time.monotonic() < deadline, f"the incidents' spans never came: {first}"
            time.sleep(0.5)
    finally:
        assert server.stop() in CLEAN
    root, plain = first["tr-am"], first["tr-odd"]
    assert root["trace_id"] != alertmanager[0]  # its own trace, linked, not joined
    assert root["name"].startswith("remediate INC-")
    assert root["links"] == [alertmanager]
    assert plain["name"].startswith("remediate INC-") and plain["links"] == []


def test_a_step_that_fails_its_proposal_has_an_error_status(fleet: Cli, otlp: OtlpReceiver) -> None:
    """A failed dry run returns (it is an outcome, not an exception): its span still says it
    failed, so a trace viewer shows where an incident's path broke."""
    data = fleet.repo / ".terry" / "hosts" / "web-01" / "srv" / "data"
    shutil.rmtree(data)
    data.write_text("not a directory")  # the cleanup's look at /srv/data fails
    try:
        body = payload(
            [alert("DiskUsageHigh", fingerprint="tr-fail", host="web-01", mountpoint="/srv/data")]
        )
        [outcome] = fleet.json("alert", "ingest", "-", input=body)["proposals"]
    finally:
        data.unlink()
        for where in ("log", "tmp"):
            (data / where).mkdir(parents=True, exist_ok=True)
    incident = fleet.json("incidents", "show", str(outcome["incident_id"]))["incident"]
    spans = _spans(otlp, incident["trace_id"], 6)
    [dry_run] = [s for s in spans if s["name"] == "dry_run"]
    code, message = dry_run["status"]
    assert code == 2 and message.startswith("dry run failed: web-01"), dry_run
    assert all(s["status"][0] != 2 for s in spans if s["name"] in ("diagnose", "propose"))


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


def test_tracing_is_off_and_free_unless_configured(tmp_path: Path) -> None:
    """Unconfigured, the SDK is never imported; the standard OTEL_ variables switch it on."""
    check = (
        "import sys; from terry.config import Config; from terry.traces.incident import "
        "tracer_of; t = tracer_of(Config()); "
        "print(t.on, 'opentelemetry.sdk.trace' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    off = subprocess.run(
        [sys.executable, "-c", check], env=env, capture_output=True, text=True, check=True
    )
    assert off.stdout.split() == ["False", "False"]
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:9"
    env["OTEL_SERVICE_NAME"] = "terry-eu"
    on = subprocess.run(
        [sys.executable, "-c", check], env=env, capture_output=True, text=True, check=True
    )
    assert on.stdout.split() == ["True", "True"]
