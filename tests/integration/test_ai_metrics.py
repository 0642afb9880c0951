"""What Claude is shown of a host's recent state: node metrics from a real Prometheus
(the backfilled TSDB of the forecast tests), summarised per series; a hostile host name
stays a PromQL string, and an unreachable Prometheus only leaves the metrics out."""

from __future__ import annotations

import os
import shutil

import pytest

from terry.ai.consult import host_metrics
from terry.ports import free_port
from tests.integration.test_forecast_prometheus import prometheus  # noqa: F401 (fixture)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.environ.get("CI")
        and (shutil.which("prometheus") is None or shutil.which("promtool") is None),
        reason="needs Debian's prometheus and promtool (scripts/test.sh installs them)",
    ),
]


def test_claude_is_shown_the_hosts_recent_metrics(prometheus: tuple[str, float]) -> None:  # noqa: F811
    url, _now = prometheus
    found = {m.name: m for m in host_metrics(url, "host", "web-01")}
    assert set(found) == {"memory used %", "filesystem used % /srv/data"}  # no tmpfs, no load
    disk = found["filesystem used % /srv/data"]
    assert len(disk.values) >= 5 and 0 < disk.values[-1] < 100
    assert disk.values[-1] > disk.values[0]  # web-01's disk grows
    assert "now" in disk.summary and "30 min ago" in disk.summary


def test_a_hostile_name_stays_data_and_failures_leave_metrics_out(
    prometheus: tuple[str, float],  # noqa: F811
) -> None:
    url, _now = prometheus
    assert host_metrics(url, "host", 'x"} or vector(1) or {a="') == ()
    assert host_metrics(f"http://127.0.0.1:{free_port()}", "host", "web-01", timeout=1) == ()
