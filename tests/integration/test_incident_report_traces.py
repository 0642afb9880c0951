"""The Traces section of ``terry incidents report INC`` (issue 21): an alert that names a
trace is diagnosed with the evidence read from Jaeger (a local server speaking its query
API), and the report shows the trace id, the failing and slowest spans, the guilty service
and the upstream suspects, in Markdown, HTML and JSON; span names that are hostile text stay
text in all three. An incident without traces has no such section."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from terry.gitops.repo import Repo
from tests.conftest import Cli, alert, make_cli, payload
from tests.fakes.jaeger_api import FakeJaeger, SpanSpec

pytestmark = pytest.mark.integration

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
EVIL_OP = "<script>alert(1)</script> [x](http://evil.example) `rm` | {{ 7*7 }}"
EVIL_SERVICE = "pay<b>ments"
SPANS = [
    SpanSpec("00f067aa0ba902b7", None, "frontend", "GET /checkout", 0, 1200, True, "502"),
    SpanSpec("00f067aa0ba902b8", "00f067aa0ba902b7", "checkout", "POST /orders", 5, 1150, True),
    SpanSpec(
        "00f067aa0ba902b9",
        "00f067aa0ba902b8",
        EVIL_SERVICE,
        EVIL_OP,
        10,
        40,
        True,
        "refused <img src=x onerror=alert(2)>",
    ),
    SpanSpec("00f067aa0ba902ba", "00f067aa0ba902b8", "inventory", "reserve", 60, 1000),
]


@pytest.fixture(scope="module")
def jaeger() -> Iterator[FakeJaeger]:
    server = FakeJaeger()
    server.add_trace(TRACE, SPANS)
    server.edges = [
        {"parent": "frontend", "child": "checkout", "callCount": 40},
        {"parent": "checkout", "child": EVIL_SERVICE, "callCount": 38},
        {"parent": "checkout", "child": "inventory", "callCount": 39},
    ]
    server.start()
    yield server
    server.stop()


def _cli(gitops: Path, jaeger: FakeJaeger) -> Cli:
    config = yaml.safe_load((gitops / "terry.yml").read_text())
    config["traces"] = {"jaeger_url": jaeger.base_url, "timeout": 2}
    (gitops / "terry.yml").write_text(yaml.safe_dump(config))
    Repo(gitops).commit_paths(["terry.yml"], "read the services' traces from Jaeger")
    return make_cli(gitops)


def _ingest(cli: Cli, fingerprint: str, annotations: dict[str, str]) -> str:
    firing = alert(
        "CheckoutErrors", fingerprint=fingerprint, host="ghost-01", annotations=annotations
    )
    out = cli.json("alert", "ingest", "-", input=payload([firing]))
    return str(out["alerts"][0]["incident_id"])


def _report(cli: Cli, key: str, fmt: str) -> str:
    result = cli("incidents", "report", key, "--format", fmt)
    assert result.exit_code == 0, result.stderr
    return str(result.stdout)


def test_the_report_shows_what_the_trace_said_as_inert_text(
    gitops: Path, jaeger: FakeJaeger
) -> None:
    cli = _cli(gitops, jaeger)
    key = _ingest(cli, "traced", {"summary": "checkout fails", "trace_id": TRACE})

    data: dict[str, Any] = json.loads(_report(cli, key, "json"))["traces"]
    assert data["backend"] == "jaeger" and data["trace_ids"] == [TRACE]
    assert data["guilty"] == EVIL_SERVICE  # where failure starts, exactly as it came
    assert data["failing"][0]["operation"] == EVIL_OP
    assert data["suspects"][0] == EVIL_SERVICE and "inventory" in data["suspects"]
    assert data["slowest"][0]["service"] == "inventory"

    md = _report(cli, key, "md")
    section = md.split("## Traces", 1)[1].split("\n## ", 1)[0]
    assert f"- traces: {TRACE}" in section
    assert "- guilty service: pay\\<b\\>ments" in section
    assert "- upstream suspects: pay\\<b\\>ments, checkout, inventory" in section
    assert "- slowest: inventory reserve" in section
    assert "\\<script\\>alert(1)\\</script\\> \\[x\\](http://evil.example) \\`rm\\` \\|" in section
    assert re.search(r"(?<!\\)[<>]", section) is None  # no tag anywhere in it
    assert "{{ 7\\*7 }}" in section  # a template stays text

    html = _report(cli, key, "html")
    traces = html.split('id="traces"', 1)[1].split("</div>", 1)[0]
    assert "<script>" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in traces
    assert "pay&lt;b&gt;ments" in traces and "<a " not in traces
    assert TRACE in traces


def test_an_incident_without_traces_has_no_traces_section(gitops: Path, jaeger: FakeJaeger) -> None:
    cli = _cli(gitops, jaeger)
    key = _ingest(cli, "untraced", {"summary": "no trace named"})
    assert json.loads(_report(cli, key, "json"))["traces"] is None
    assert "## Traces" not in _report(cli, key, "md")
    assert 'id="traces"' not in _report(cli, key, "html")
