"""Verification against a real Prometheus (Debian's binary on loopback): unknown is not healthy.

An empty answer, NaN, a failed query or an unreachable server is ``unknown``: the proposal
is escalated to a human, never marked verified.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from terry.demo import example
from terry.gitops.init import init_repository
from terry.ports import free_port
from terry.remedies.catalogue import PrometheusVerify
from terry.verify.judge import Outcome, query_prometheus
from tests.conftest import alert, config_for, make_cli, payload
from tests.prometheus_tsdb import answers, running_prometheus, self_signed

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.environ.get("CI") and shutil.which("prometheus") is None,
        reason="needs Debian's prometheus (scripts/test.sh installs it)",
    ),
]


def _serve(home: Path, *, web_config: Path | None = None) -> Iterator[str]:
    """A real Prometheus scraping only itself, so ``up`` exists and node metrics do not;
    over TLS with ``web_config`` (its ``tls_server_config``)."""
    port = free_port()
    scheme = "https" if web_config else "http"
    config = (
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n  - job_name: self\n"
        f"    scheme: {scheme}\n    tls_config: {{insecure_skip_verify: true}}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
    with running_prometheus(
        home,
        config,
        port=port,
        scheme=scheme,
        extra=[f"--web.config.file={web_config}"] if web_config else [],
        ready=lambda url: answers(url, "up", verify=False),
    ) as url:
        yield url


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(tmp_path_factory.mktemp("prom"))


@pytest.fixture(scope="module")
def prometheus_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """Prometheus behind a certificate of its own (self-signed for 127.0.0.1): its URL and
    the certificate a client must trust."""
    home = tmp_path_factory.mktemp("prom-tls")
    cert, key = self_signed(home)
    web = home / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n")
    for url in _serve(home, web_config=web):
        yield url, cert


@pytest.mark.parametrize(
    ("query", "bound", "outcome", "evidence"),
    [
        ('max(up{job="self"})', {"above": "0.5"}, Outcome.VERIFIED, "= 1"),
        ('max(up{job="self"})', {"below": "0.5"}, Outcome.FAILED, "not below 0.5"),
        ('node_filesystem_avail_bytes{host="{host}"}', {}, Outcome.UNKNOWN, "no data"),
        ("vector(0) / 0", {}, Outcome.UNKNOWN, "NaN"),
        ("sum(rate(", {}, Outcome.UNKNOWN, "query failed"),
        ('max(up{job="self"})', {"above": "{threshold}"}, Outcome.VERIFIED, "= 1"),
    ],
)
def test_prometheus_answers_are_judged(
    prometheus: str, query: str, bound: dict[str, str], outcome: Outcome, evidence: str
) -> None:
    spec = PrometheusVerify(query=query, below=bound.get("below"), above=bound.get("above"))
    result = query_prometheus(prometheus, spec, {"host": "web-01", "threshold": 0}, timeout=5)
    assert result.outcome is outcome, result.evidence
    assert evidence in " ".join(result.evidence)


def test_prometheus_over_tls_is_trusted_only_with_its_certificate(
    prometheus_tls: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A verdict read from a server Terry cannot authenticate is no verdict: unknown, with
    the reason; trusted once its CA is given (``REQUESTS_CA_BUNDLE``, docs/configuration.md)."""
    url, cert = prometheus_tls
    spec = PrometheusVerify(query='max(up{job="self"})', above="0.5")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    refused = query_prometheus(url, spec, {}, timeout=5)
    assert refused.outcome is Outcome.UNKNOWN
    assert "CERTIFICATE_VERIFY_FAILED" in " ".join(refused.evidence)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    trusted = query_prometheus(url, spec, {}, timeout=5)
    assert trusted.outcome is Outcome.VERIFIED, trusted.evidence


def test_unreachable_prometheus_is_unknown() -> None:
    spec = PrometheusVerify(query="up")
    result = query_prometheus(f"http://127.0.0.1:{free_port()}", spec, {}, timeout=2)
    assert result.outcome is Outcome.UNKNOWN
    assert "query failed" in result.evidence[0]


def test_a_fix_prometheus_cannot_confirm_is_escalated_not_verified(
    prometheus: str, tmp_path: Path
) -> None:
    repo = init_repository(tmp_path / "ops").path
    cli = make_cli(repo)
    cli.env["TERRY_PROMETHEUS_URL"] = prometheus  # no node_exporter there: the query is empty
    try:
        cli.ok("example", "up")
        cli("example", "break", "web-01", "disk")
        out = cli.json(
            "alert",
            "ingest",
            "-",
            input=payload(
                [
                    alert(
                        "DiskUsageHigh",
                        fingerprint="prom-unknown",
                        host="web-01",
                        mountpoint="/srv/data",
                    )
                ]
            ),
        )
        [outcome] = out["proposals"]
        assert outcome["state"] == "escalated", outcome
        # before the apply, Prometheus could not tell that the problem had gone: it stands,
        # and no ansible run was spent re-checking it on the host
        runs = config_for(repo).state_dir / "runs"
        assert sorted(p.name for p in runs.glob("recheck-*")) == []
        assert len(list(runs.iterdir())) >= 2  # the dry run and the apply are there
        assert outcome["note"].startswith("unknown:")
        assert "no data" in outcome["note"]
        story = cli.json("incidents", "show", str(outcome["incident_id"]))
        assert story["incident"]["fixed_at"] is None  # never recorded as fixed
        assert "verification could not tell" in story["incident"]["attention"]
        # the disk itself was cleaned: it is the evidence that is missing, not the fix
        host = example.example_hosts(config_for(repo))["web-01"]
        assert example.disk_percent(host) < 80
    finally:
        example.down(config_for(repo))
