"""Anomalous hosts from a real Prometheus holding known node_exporter data (no root).

Six inventory hosts, three named by a ``host`` label and three by node_exporter's plain
``instance`` (their ``ansible_host`` and a port), noisy and each a little different. In the
*odd* TSDB, app-02's load, CPU and memory leave the fleet's range 45 minutes before now;
in the *calm* one it stays ordinary. A host outside the inventory and one whose name tries
to be a template are only listed as unmatched. Backfilled with promtool and served by
Debian's Prometheus, as for the disk forecasts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from terry.cli import main
from terry.store import Store
from terry.store.models import IncidentRow
from tests.conftest import POSTGRES, Cli, _postgres_database, config_for, count_rows, make_cli
from tests.prometheus_tsdb import backfilled_prometheus

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.environ.get("CI")
        and (shutil.which("prometheus") is None or shutil.which("promtool") is None),
        reason="needs Debian's prometheus and promtool (scripts/test.sh installs them)",
    ),
]

GIB = float(1 << 30)
STEP = 30.0  # seconds between backfilled samples
SPAN = 3 * 3600.0  # forecast.anomaly.window in these tests
ODD_SINCE = 45 * 60.0  # app-02 turns odd this long before the data's now
PWNED = Path("/tmp/terry-anomaly-test-pwned")
HOSTILE = "x{{ lookup('pipe', 'touch " + str(PWNED) + "') }}"
ADDRESSES = {"app-01": "10.9.0.11", "app-02": "10.9.0.12", "app-03": "10.9.0.13"}


def _labels(host: str) -> dict[str, str]:
    if host in ADDRESSES:  # as node_exporter's own scrape names it
        return {"instance": f"{ADDRESSES[host]}:9100", "job": "node"}
    return {"host": host, "job": "node"}


# host -> (CPUs, load per CPU, CPU busy, memory used, disk IO busy, rx B/s, tx B/s, fs used)
NORMAL = {
    "web-01": (2, 0.40, 0.20, 0.40, 0.06, 1.5e6, 8e5, 0.35),
    "web-02": (2, 0.45, 0.22, 0.42, 0.07, 1.6e6, 9e5, 0.40),
    "db-01": (4, 0.35, 0.18, 0.48, 0.09, 1.2e6, 7e5, 0.45),
    "app-01": (2, 0.42, 0.21, 0.38, 0.05, 1.4e6, 8e5, 0.30),
    "app-02": (2, 0.38, 0.19, 0.41, 0.06, 1.5e6, 8e5, 0.38),
    "app-03": (4, 0.36, 0.20, 0.44, 0.08, 1.3e6, 7e5, 0.42),
    "ghost-09": (2, 0.40, 0.20, 0.40, 0.06, 1.5e6, 8e5, 0.35),
    HOSTILE: (2, 0.40, 0.20, 0.40, 0.06, 1.5e6, 8e5, 0.35),
}


def _openmetrics(now: float, *, odd: bool) -> str:
    """Every host's node_exporter families (gauges and counters) from now - SPAN - 20 min to
    now + 15 min, with 10% noise; app-02 odd for its last ODD_SINCE when ``odd``."""
    times = np.arange(now - SPAN - 1200, now + 900, STEP)
    rng = np.random.default_rng(7)
    families: dict[str, list[str]] = {}

    def add(family: str, labels: dict[str, str], values: np.ndarray) -> None:
        shown = ",".join(f'{k}="{v}"' for k, v in labels.items())
        families.setdefault(family, []).extend(
            f"{family}{{{shown}}} {v:.6f} {int(t)}" for t, v in zip(times, values, strict=True)
        )

    def noisy(level: float) -> np.ndarray:
        return level * (1 + rng.normal(0, 0.10, times.size))

    def counter(rate: np.ndarray) -> np.ndarray:
        return 1e6 + np.cumsum(rate * STEP)

    for host, (cpus, load, busy, memory, io, rx, tx, fs) in NORMAL.items():
        labels = _labels(host)
        load_now, busy_now, memory_now = noisy(load), noisy(busy), noisy(memory)
        if odd and host == "app-02":
            late = times >= now - ODD_SINCE
            load_now = np.where(late, noisy(4.0), load_now)
            busy_now = np.where(late, noisy(0.97), busy_now)
            memory_now = np.where(late, noisy(0.93), memory_now)
        add("node_load1", labels, cpus * load_now)
        for cpu in range(cpus):
            idle = np.clip(1 - busy_now, 0.0, 1.0)
            add(
                "node_cpu_seconds_total", {**labels, "cpu": str(cpu), "mode": "idle"}, counter(idle)
            )
        add("node_memory_MemTotal_bytes", labels, np.full(times.size, 8 * GIB))
        add("node_memory_MemAvailable_bytes", labels, 8 * GIB * (1 - np.clip(memory_now, 0, 1)))
        add("node_disk_io_time_seconds_total", {**labels, "device": "vda"}, counter(noisy(io)))
        for family, rate in (
            ("node_network_receive_bytes_total", rx),
            ("node_network_transmit_bytes_total", tx),
        ):
            add(family, {**labels, "device": "eth0"}, counter(noisy(rate)))
            add(family, {**labels, "device": "lo"}, counter(noisy(50 * rate)))  # left out
        fs_labels = {**labels, "device": "/dev/vda1", "fstype": "ext4", "mountpoint": "/"}
        add("node_filesystem_size_bytes", fs_labels, np.full(times.size, 20 * GIB))
        avail = 20 * GIB * (1 - fs - rng.normal(0, 1e-3, times.size))
        add("node_filesystem_avail_bytes", fs_labels, avail)
    lines = [f"# TYPE {family} gauge\n" + "\n".join(rows) for family, rows in families.items()]
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Two Prometheus servers over the same hosts: "odd" (app-02 stands out) and "calm"."""
    now = float(int(time.time()))
    probe = "count(node_load1)"
    with (
        backfilled_prometheus(
            tmp_path_factory.mktemp("odd"), _openmetrics(now, odd=True), probe
        ) as odd,
        backfilled_prometheus(
            tmp_path_factory.mktemp("calm"), _openmetrics(now, odd=False), probe
        ) as calm,
    ):
        yield {"odd": odd, "calm": calm}


@pytest.fixture(scope="module")
def fleet(prometheus: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """``terry init``'s repository with three app hosts added (by address), pointed at the
    odd Prometheus; its store on PostgreSQL when the tests have one."""
    repo = tmp_path_factory.mktemp("anomaly") / "ops"
    created = CliRunner().invoke(main, ["init", str(repo), "--output", "json"])
    assert created.exit_code == 0, created.stdout
    inventory = repo / "inventories" / "example" / "hosts.yml"
    hosts = yaml.safe_load(inventory.read_text())
    staging = hosts["all"]["children"]["staging"]["hosts"]
    for name, address in ADDRESSES.items():
        staging[name] = {"ansible_host": address}
    inventory.write_text(yaml.safe_dump(hosts))
    settings = yaml.safe_load((repo / "terry.yml").read_text())
    settings["prometheus"] = {"url": prometheus["odd"], "timeout": 5}
    settings["forecast"] = {"lookback": "3h", "anomaly": {"window": "3h"}}
    (repo / "terry.yml").write_text(yaml.safe_dump(settings))
    git = ["git", "-C", str(repo), "-c", "user.name=Test", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "commit", "-qam", "app hosts; Prometheus"], check=True)
    # on PostgreSQL too when the tests have one (the named lock, the JSON columns)
    return make_cli(repo, _postgres_database() if POSTGRES else None)


def _anomaly_incidents(cli: Cli) -> list[dict[str, Any]]:
    """The HostAnomaly incidents as ``terry incidents list`` shows them, oldest first."""
    listed = cli.json("incidents", "list", "--limit", "1000")
    found = sorted((i for i in listed if i["source"] == "anomaly"), key=lambda i: i["id"])
    assert all(i["title"] == "HostAnomaly" for i in found)
    return found


def _of_source(cli: Cli, source: str) -> int:
    store = Store(cli.env.get("TERRY_DATABASE_URL") or config_for(cli.repo).store_url)
    try:
        return count_rows(store, IncidentRow, IncidentRow.source == source)
    finally:
        store.dispose()


def _anomaly_actions(report: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((a["host"], a["effect"]) for a in report["actions"] if a["kind"] == "anomaly")


def test_the_odd_host_is_reported_with_the_metrics_that_stand_out(fleet: Cli) -> None:
    PWNED.unlink(missing_ok=True)
    report = fleet.json("forecast", "--no-propose")
    scan = report["anomaly"]
    assert scan["compared"] == ["app-01", "app-02", "app-03", "db-01", "web-01", "web-02"]
    assert scan["reason"] == "" and scan["stale"] == [] and scan["window_seconds"] == SPAN
    [odd] = report["anomalies"]
    assert odd["host"] == "app-02" and odd["score"] > 0.5, odd
    assert set(odd["features"]) == {"load_per_cpu", "cpu_busy", "memory_used"}, odd
    evidence = {e["feature"]: e for e in odd["evidence"]}
    load = evidence["load_per_cpu"]
    assert 3.0 < load["value"] < 5.0 and 0.3 < load["fleet_median"] < 0.5
    assert load["fleet_z"] > 4 and load["history_z"] > 4 and load["history_median"] < 0.6
    assert 0.85 < evidence["memory_used"]["value"] < 1.0
    assert odd["summary"].startswith("app-02's node metrics stand out: ")
    # the forest alone is not enough: the others may score near its cut-off, but no metric
    # of theirs is min_z from the fleet or their history
    assert max(scan["scores"], key=scan["scores"].get) == "app-02", scan["scores"]
    # series of hosts outside the inventory are data, listed and left out
    assert any("ghost-09" in u and "not in the inventory" in u for u in report["unmatched"])
    assert any("lookup(" in u for u in report["unmatched"]) and not PWNED.exists()

    text = fleet("forecast", "--no-propose")
    assert text.exit_code == 0, text.stderr
    assert "anomalies: 1; 6 host(s) compared on 7 metric(s)" in text.stdout
    assert "odd app-02's node metrics stand out: load_per_cpu" in text.stdout
    assert "load_per_cpu = " in text.stdout and "own history" in text.stdout


def test_propose_keeps_the_odd_host_for_a_human_once_and_resolves_it(
    fleet: Cli, prometheus: dict[str, str]
) -> None:
    first = fleet.json("forecast", "--propose")
    assert _anomaly_actions(first) == [("app-02", "opened")]
    [action] = [a for a in first["actions"] if a["kind"] == "anomaly"]
    assert action["proposal_id"] is None and "for review only" in action["note"]
    [incident] = _anomaly_incidents(fleet)
    assert incident["id"] == action["incident_id"] and incident["proposals"] == []
    assert (incident["host"], incident["state"]) == ("app-02", "open")
    assert incident["attention"].startswith("for review only: app-02's node metrics stand out")
    assert _of_source(fleet, "anomaly") == 1 and _of_source(fleet, "forecast") == 0

    # what a person sees: the incident, with its evidence
    story = fleet.json("incidents", "show", str(incident["id"]))
    assert story["labels"]["kind"] == "anomaly"
    assert set(story["labels"]["features"].split(",")) == {
        "load_per_cpu",
        "cpu_busy",
        "memory_used",
    }
    annotations = story["annotations"]
    assert annotations["evidence_load_per_cpu"].startswith("load_per_cpu = ")
    assert "fleet median" in annotations["evidence_memory_used"]
    assert "For review only" in annotations["description"]
    shown = fleet("incidents", "show", str(incident["id"]))
    assert "kind=anomaly" in shown.stdout and "needs a human" in shown.stdout

    # a second run finds it open and opens nothing
    second = fleet.json("forecast", "--propose")
    assert _anomaly_actions(second) == [("app-02", "open")]
    assert len(_anomaly_incidents(fleet)) == 1

    # the series become ordinary: the incident resolves, and nothing else opens
    fleet.env["TERRY_PROMETHEUS_URL"] = prometheus["calm"]
    try:
        calm = fleet.json("forecast", "--propose")
    finally:
        del fleet.env["TERRY_PROMETHEUS_URL"]
    assert calm["anomalies"] == []
    assert _anomaly_actions(calm) == [("app-02", "resolved")]
    [incident] = _anomaly_incidents(fleet)
    assert incident["state"] == "resolved" and incident["proposals"] == []
