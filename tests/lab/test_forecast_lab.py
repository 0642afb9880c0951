"""Forecasting against the lab (root): a disk that grows steadily is predicted to fill, and
fixed before any alert fires.

One lab host's /srv/data grows at a known, steady rate (an application log, rotated every
ten seconds into ``app.log.N``, written from the machine into the host's mount namespace the
way ``terry lab break`` fills a disk). While usage is still far below 80%, ``terry forecast
--propose`` reads the lab's Prometheus, predicts when DiskUsageHigh's threshold would be
reached, opens a preventive incident, and the disk remedy's proposal is dry-run, merged
(staging, low risk), applied over SSH (the rotated logs are gzipped) and verified against
Prometheus. Neither DiskUsageHigh nor DiskWillFillSoon (Prometheus' own one-hour
``predict_linear``) ever fires: the growth is slow enough that the disk would be full only
after more than an hour, yet the forecast's lead time (2 h) covers the crossing.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from terry import lab
from terry.cli import main
from terry.config import load_config
from terry.gitops.repo import Repo
from terry.store import Store
from terry.store.models import IncidentRow
from tests.conftest import Cli, make_cli

NEEDS = [
    "/usr/sbin/sshd",
    "/usr/bin/prometheus",
    "/usr/bin/prometheus-alertmanager",
    "/usr/bin/prometheus-node-exporter",
]
NAMES = {
    "bridge": "terrylabf0",
    "subnet": "10.82.0.0/24",
    "netns_prefix": "terryfc-",
    "veth_prefix": "tlabf",
}
HOST = "lab-02"  # staging: the gate merges a low-risk fix on its own
RATE = 1.0  # percent of the volume per minute: 80% in over an hour, full in more than one
GROW_SECONDS = 85.0  # longer than the lookback, so the whole window is steady growth
ROTATE_SECONDS = 10.0
FORECAST = {
    "lookback": "75s",
    "step": "2s",
    "min_points": 15,
    "min_span": "30s",
    "horizon": "1d",
    "lead_time": "2h",
    "disk_filter": 'mountpoint="/srv/data"',
}


class Growth:
    """Appends log lines to <data>/log/app.log at RATE, rotating it into app.log.N."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.logs = data / "log"
        self.logs.mkdir(exist_ok=True)
        st = os.statvfs(data)
        total = (st.f_blocks - st.f_bfree + st.f_bavail) * st.f_frsize
        self.per_second = total * RATE / 100 / 60
        self.stop = threading.Event()
        self.rotated: list[Path] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _line(self, n: int) -> bytes:
        return (
            f"2026-11-25T10:00:{n % 60:02d}Z INFO app[{HOST}] request id={n:08d} method=GET "
            f"path=/api/items status=200 duration_ms={n % 97} user_agent=terry-lab/1.0\n"
        ).encode()

    def _run(self) -> None:
        started = time.monotonic()
        written, n, index, rotated_at = 0.0, 0, 0, started
        current = self.logs / "app.log"
        while not self.stop.is_set():
            now = time.monotonic()
            due = (now - started) * self.per_second
            chunk = bytearray()
            while written + len(chunk) < due:
                chunk += self._line(n)
                n += 1
            with open(current, "ab") as fh:
                fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            written += len(chunk)
            if now - rotated_at >= ROTATE_SECONDS:
                index += 1
                target = self.logs / f"app.log.{index}"
                current.rename(target)
                self.rotated.append(target)
                rotated_at = now
            self.stop.wait(0.5)

    def __enter__(self) -> Growth:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def _query(prometheus: str, query: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=5)
    answer.raise_for_status()
    return list(answer.json()["data"]["result"])


@pytest.fixture(scope="module")
def fleet(
    lab_config: lab.LabConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Cli, lab.LabState]]:
    config = lab_config
    repo = tmp_path_factory.mktemp("forecast") / "ops"
    created = CliRunner().invoke(main, ["init", str(repo), "--output", "json"])
    assert created.exit_code == 0, created.stdout
    lab.down(config)
    state = lab.up(config, hosts=3, repo=repo)
    try:
        settings = yaml.safe_load((repo / "terry.yml").read_text())
        settings["inventory"] = ["inventories/lab"]
        settings["prometheus"] = {"url": state.prometheus_url, "timeout": 5}
        settings["forecast"] = FORECAST
        (repo / "terry.yml").write_text(yaml.safe_dump(settings))
        Repo(repo).commit_paths(["terry.yml", "inventories/lab"], "lab inventory, forecast")
        yield make_cli(repo), state
    finally:
        report = lab.down(config)
        assert not report.problems, report.problems


def test_a_steadily_growing_disk_is_fixed_before_any_alert_fires(
    fleet: tuple[Cli, lab.LabState],
) -> None:
    cli, state = fleet
    started = time.time()
    prometheus = state.prometheus_url
    selector = f'host="{HOST}",mountpoint="/srv/data"'
    deadline = time.monotonic() + 60
    while not _query(prometheus, f"node_filesystem_avail_bytes{{{selector}}}"):
        assert time.monotonic() < deadline, "Prometheus has no /srv/data series for the host"
        time.sleep(1)

    data = state.host(HOST).data_path
    with Growth(data) as growth:
        before = lab.used_percent(data)
        time.sleep(GROW_SECONDS)
        grown = lab.used_percent(data)
    rate = (grown - before) / GROW_SECONDS  # percent per second, as measured from outside
    assert grown < 50, f"/srv/data on {HOST} is already {grown:.1f}% used"
    expected_in = (80 - grown) / rate

    report = cli.json("forecast", "--propose")
    disks = {d["host"]: d for d in report["disks"]}
    assert set(disks) == {"lab-01", "lab-02", "lab-03"}
    mine = disks[HOST]
    assert mine["outcome"] == "crossing" and mine["preventive"] is True, mine["reason"]
    assert abs(mine["crossing_in_seconds"] - expected_in) <= 0.15 * expected_in, (
        mine,
        expected_in,
    )
    assert mine["earliest"] and mine["latest"] and mine["confidence"] > 0.5
    for other in ("lab-01", "lab-03"):
        assert disks[other]["outcome"] == "flat" and not disks[other]["preventive"], disks[other]

    [action] = [a for a in report["actions"] if a["kind"] == "disk"]
    assert (action["host"], action["mountpoint"], action["effect"]) == (HOST, "/srv/data", "opened")
    if action["state"] == "awaiting_review":  # the shipped policy merges it; approve if not
        approved = cli.as_("ops").json("proposals", "approve", str(action["proposal_id"]))
        action["state"] = approved["state"]
    assert action["state"] == "verified", action

    proposal = cli.json("proposals", "show", str(action["proposal_id"]))
    assert proposal["summary"]["remedy"] == "disk-usage-high"
    assert {r["kind"] for r in proposal["runs"]} >= {"check", "apply", "verify"}
    assert "node_filesystem_avail_bytes" in (proposal["outcome"] or "")  # Prometheus agreed
    store = Store(load_config(cli.repo, environ={}).store_url)
    try:
        with store.session() as session:
            incident = session.get(IncidentRow, action["incident_id"])
            assert incident is not None
            assert incident.source == "forecast" and incident.title == "DiskWillFillSoon"
            assert incident.labels["host"] == HOST
            assert incident.fixed_at is not None and incident.state == "resolved"
            assert "will reach 80% in about" in incident.annotations["summary"]
    finally:
        store.dispose()

    # the fix really freed the space: the rotated logs are gzipped on the host
    assert growth.rotated
    for path in growth.rotated:
        assert not path.exists() and path.with_name(path.name + ".gz").exists(), path
    assert lab.used_percent(data) < grown

    # and no disk alert ever fired for the host (nor was pending): not in Prometheus' ALERTS
    # over the whole test, not in Alertmanager
    window = int(time.time() - started) + 10
    for name in ("DiskUsageHigh", "DiskWillFillSoon"):
        seen = _query(
            prometheus, f'max_over_time(ALERTS{{alertname="{name}",host="{HOST}"}}[{window}s])'
        )
        assert not seen, (name, seen)
    answer = httpx.get(f"{state.alertmanager_url}/api/v2/alerts", timeout=5)
    answer.raise_for_status()
    assert not [a for a in answer.json() if a["labels"].get("alertname", "").startswith("Disk")]
