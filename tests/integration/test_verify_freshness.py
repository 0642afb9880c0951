"""Verification judges data scraped after the fix (terry.verify.freshness), against a real
Prometheus (Debian's binary on loopback) scraping a small exporter whose value the test sets.

Prometheus scrapes every 3 s here, as a production one scrapes every 15-60 s: asked right
after the fix, it still answers with the sample from before it. Terry waits for the fixed
host's next scrape, then judges.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from terry.ports import free_port
from terry.remedies.catalogue import PrometheusVerify
from terry.verify.freshness import _slowest_interval, await_scrape, prometheus_seconds
from terry.verify.judge import Outcome, query_prometheus
from tests.prometheus_tsdb import running_prometheus

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.environ.get("CI") and shutil.which("prometheus") is None,
        reason="needs Debian's prometheus (scripts/test.sh installs it)",
    ),
]

INTERVAL = 3.0
CHECK = PrometheusVerify(query='disk_used_percent{host="{host}"}', below="80")


class _Exporter:
    """One gauge, ``disk_used_percent{host="web-01"}``, at the value the test sets."""

    def __init__(self) -> None:
        self.value = 95.0
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = f"disk_used_percent {exporter.value}\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, _Exporter]]:
    home: Path = tmp_path_factory.mktemp("fresh")
    exporter = _Exporter()
    port = free_port()
    config = (
        f"global: {{scrape_interval: {INTERVAL:g}s, evaluation_interval: {INTERVAL:g}s}}\n"
        "scrape_configs:\n  - job_name: node\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{exporter.port}'], "
        "labels: {host: web-01}}]\n"
        "  - job_name: self\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
        # a slow job on no host of the test's (a blackbox probe every few minutes)
        "  - job_name: slow\n    scrape_interval: 5m\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{exporter.port}'], "
        "labels: {probe: slow}}]\n"
    )
    try:
        with running_prometheus(
            home,
            config,
            port=port,
            ready=lambda url: _value(url) == 95.0,
            why="prometheus never scraped the exporter",
        ) as url:
            yield url, exporter
    finally:
        exporter.server.shutdown()


def _until(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def _value(url: str) -> float | None:
    try:
        result = httpx.get(
            f"{url}/api/v1/query", params={"query": 'disk_used_percent{host="web-01"}'}, timeout=2
        ).json()["data"]["result"]
    except (httpx.HTTPError, KeyError, ValueError):
        return None
    return float(result[0]["value"][1]) if result else None


def _last_scrape(url: str) -> float:
    query = 'timestamp(up{job="node"})'
    answer = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=2).json()
    return float(answer["data"]["result"][0]["value"][1])


def _right_after_a_scrape(url: str) -> None:
    """Return just after Prometheus scraped: its next scrape is a whole interval away."""
    seen = _last_scrape(url)
    assert _until(lambda: _last_scrape(url) > seen, 3 * INTERVAL)


def _fix_right_after_a_scrape(url: str, exporter: _Exporter) -> None:
    """The disk full (95) as Prometheus last saw it, then fixed (10) just after a scrape."""
    exporter.value = 95.0
    assert _until(lambda: _value(url) == 95.0, 3 * INTERVAL)
    _right_after_a_scrape(url)
    exporter.value = 10.0  # the fix


def _named(labels: Mapping[str, str]) -> str | None:
    return labels.get("host")


def test_right_after_a_fix_prometheus_still_answers_the_old_sample(
    scraped: tuple[str, _Exporter],
) -> None:
    """Why the wait exists: the same check without it fails a fix that worked."""
    url, exporter = scraped
    _fix_right_after_a_scrape(url, exporter)
    stale = query_prometheus(url, CHECK, {"host": "web-01"}, timeout=5)
    assert stale.outcome is Outcome.FAILED, stale
    assert "= 95, not below 80" in stale.evidence[0]


def test_verification_waits_for_the_hosts_next_scrape_then_judges(
    scraped: tuple[str, _Exporter],
) -> None:
    url, exporter = scraped
    _fix_right_after_a_scrape(url, exporter)
    fresh = await_scrape(url, ["web-01"], _named, timeout=5)
    assert fresh.fresh and fresh.note == "", fresh
    assert 0.5 < fresh.waited <= 2 * INTERVAL + 1, fresh.waited  # it did wait, one scrape
    judged = query_prometheus(url, CHECK, {"host": "web-01"}, timeout=5)
    assert judged.outcome is Outcome.VERIFIED, judged
    assert judged.evidence == ('disk_used_percent{host="web-01"} = 10',)


def test_a_scrape_since_the_fix_was_done_is_fresh_without_another_wait(
    scraped: tuple[str, _Exporter],
) -> None:
    """A storm's verify tasks run for seconds after its fix: a scrape during them already
    shows the fix. Told when the fix was done (Terry's own clock), Terry judges at once; a
    scrape before that moment is never taken for one after it."""
    url, exporter = scraped
    _fix_right_after_a_scrape(url, exporter)
    done_at = time.monotonic()
    _right_after_a_scrape(url)  # the verify tasks' seconds: one scrape since the fix
    fresh = await_scrape(url, ["web-01"], _named, timeout=5, done_at=done_at)
    assert fresh.fresh and fresh.note == "", fresh
    assert fresh.waited < 0.5 * INTERVAL, fresh.waited  # no second scrape waited for
    judged = query_prometheus(url, CHECK, {"host": "web-01"}, timeout=5)
    assert judged.outcome is Outcome.VERIFIED, judged

    _fix_right_after_a_scrape(url, exporter)  # fixed again, no scrape since
    fresh = await_scrape(url, ["web-01"], _named, timeout=5, done_at=time.monotonic())
    assert fresh.fresh and 0.5 < fresh.waited <= 2 * INTERVAL + 1, fresh
    assert query_prometheus(url, CHECK, {"host": "web-01"}, timeout=5).outcome is (Outcome.VERIFIED)


def test_the_wait_is_bounded_by_the_hosts_targets_or_the_median_of_all(
    scraped: tuple[str, _Exporter],
) -> None:
    """Read from Prometheus' own targets API: web-01's one target scrapes every 3 s; db-09
    has no target, so every target stands in and the median interval (3 s) bounds the wait,
    not the 5-minute job's."""
    from prometheus_api_client import PrometheusConnect

    url, _exporter = scraped
    client = PrometheusConnect(url=url)
    assert _slowest_interval(client, {"web-01"}, _named) == INTERVAL
    assert _slowest_interval(client, {"db-09"}, _named) == INTERVAL
    slow = {"web-01"}  # the slow job's target, placed on web-01, would bound its wait
    assert _slowest_interval(client, slow, lambda labels: labels.get("host") or "web-01") == 300


def test_hosts_no_target_names_wait_for_every_target_within_that_bound(
    scraped: tuple[str, _Exporter],
) -> None:
    url, _exporter = scraped
    _right_after_a_scrape(url)
    fresh = await_scrape(url, ["db-09"], _named, timeout=2)  # no target says db-09
    bound = 2 * INTERVAL + 2
    assert fresh.waited < bound + 3, fresh  # never twice the 5-minute job's interval
    if fresh.fresh:  # the 5-minute job has not been scraped yet: it has no `up` to wait on
        assert fresh.waited > 0.5 and fresh.note == "", fresh
    else:  # it has: its next scrape is minutes away; the verdict says so
        assert fresh.waited >= bound, fresh
        assert fresh.note.endswith(
            f"newer than the change within {bound:g}s: judged the latest data"
        ), fresh.note


def test_a_prometheus_that_cannot_be_asked_is_said_not_waited_on() -> None:
    port = free_port()  # nothing listens
    started = time.monotonic()
    fresh = await_scrape(f"http://127.0.0.1:{port}", ["web-01"], _named, timeout=2)
    assert not fresh.fresh
    assert "could not tell whether Prometheus' data is newer than the change" in fresh.note
    assert "judged the latest data" in fresh.note
    assert time.monotonic() - started < 10


def test_prometheus_durations() -> None:
    assert prometheus_seconds("15s") == 15
    assert prometheus_seconds("1m30s") == 90
    assert prometheus_seconds("500ms") == 0.5
    assert prometheus_seconds("1h") == 3600
    for bad in ("", "15", "1.5s", "s", "15 s", None, 15):
        assert prometheus_seconds(bad) is None, bad
