"""``terry forecast`` against a real Prometheus holding known data (no root).

Two days of node_exporter series are backfilled into a fresh TSDB with ``promtool tsdb
create-blocks-from openmetrics`` (Debian's prometheus package ships it), then Debian's
``prometheus`` serves them on loopback. The answers are known: web-01's /srv/data grows
linearly and reaches 80% sixteen hours from now; web-02's is flat; db-01's grows too slowly
to cross within the horizon; web-01's memory leaks; ghost-01 is not in the inventory; a
tmpfs is filtered out. The example fleet (``terry init``, ``terry example up``) is where the
preventive proposals are applied.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from terry.cli import main
from terry.demo import example
from terry.ports import free_port
from terry.store import Store
from terry.store.models import IncidentRow
from tests.conftest import Cli, config_for, make_cli
from tests.prometheus_tsdb import backfilled_prometheus

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not os.environ.get("CI")
        and (shutil.which("prometheus") is None or shutil.which("promtool") is None),
        reason="needs Debian's prometheus and promtool (scripts/test.sh installs them)",
    ),
]

DAY = 86400.0
GIB = float(1 << 30)
SIZE = 10 * GIB
SPAN = 2 * DAY  # the history backfilled, and forecast.lookback
STEP = 60.0  # seconds between backfilled samples
WEB01_START, WEB01_RATE = 0.40, 0.15  # used fraction at the window's start, growth per day
PWNED = Path("/tmp/terry-forecast-test-pwned")
# A label value is data: neither Terry's rendering nor Ansible's may run it.
HOSTILE = "/srv/x{{ lookup('pipe', 'touch " + str(PWNED) + "') }}"


def _series(now: float) -> dict[str, list[tuple[dict[str, str], Callable[[float], float]]]]:
    """Metric family -> [(labels, value at t)]: the known answers."""
    start = now - SPAN
    rng = np.random.default_rng(42)
    wobble = {k: rng.normal(0, 1, 20_000) for k in ("w1", "w2", "db", "gh", "m1", "m2", "m3")}

    def noise(key: str, t: float, sigma: float) -> float:
        return float(wobble[key][int((t - start) // STEP) % 20_000] * sigma)

    def used(fraction: Callable[[float], float]) -> Callable[[float], float]:
        return lambda t: SIZE * (1 - fraction(t))  # avail bytes

    fs = {"device": "/dev/vdb", "fstype": "ext4", "mountpoint": "/srv/data"}
    hostile = {"device": "/dev/vdc", "fstype": "ext4", "mountpoint": HOSTILE}
    return {
        "node_filesystem_avail_bytes": [
            (
                {"host": "web-01", **fs},
                used(lambda t: WEB01_START + WEB01_RATE * (t - start) / DAY + noise("w1", t, 2e-3)),
            ),
            ({"host": "web-02", **fs}, used(lambda t: 0.50 + noise("w2", t, 2e-3))),
            (
                {"host": "db-01", **fs},
                used(lambda t: 0.30 + 0.02 * (t - start) / DAY + noise("db", t, 1e-3)),
            ),
            (
                {"host": "ghost-01", **fs},
                used(lambda t: 0.20 + 0.30 * (t - start) / DAY + noise("gh", t, 2e-3)),
            ),
            (  # growing like web-01's, on a mountpoint that tries to be a template
                {"host": "web-02", **hostile},
                used(lambda t: WEB01_START + WEB01_RATE * (t - start) / DAY + noise("gh", t, 2e-3)),
            ),
            (  # growing fast, but a tmpfs: the default filter leaves it out
                {"host": "web-01", "device": "tmpfs", "fstype": "tmpfs", "mountpoint": "/run"},
                used(lambda t: 0.10 + 0.40 * (t - start) / DAY),
            ),
        ],
        "node_filesystem_size_bytes": [
            (labels, lambda _t: SIZE)
            for labels in (
                {"host": "web-01", **fs},
                {"host": "web-02", **fs},
                {"host": "db-01", **fs},
                {"host": "ghost-01", **fs},
                {"host": "web-02", **hostile},
                {"host": "web-01", "device": "tmpfs", "fstype": "tmpfs", "mountpoint": "/run"},
            )
        ],
        "node_memory_MemTotal_bytes": [
            ({"host": h}, lambda _t: 8 * GIB) for h in ("web-01", "web-02", "db-01")
        ],
        "node_memory_MemAvailable_bytes": [
            (  # web-01 leaks half a GiB a day, steadily
                {"host": "web-01"},
                lambda t: 8 * GIB - (GIB + 0.5 * GIB * (t - start) / DAY) + noise("m1", t, 2e7),
            ),
            ({"host": "web-02"}, lambda t: 6 * GIB + noise("m2", t, 5e7)),
            ({"host": "db-01"}, lambda t: 5 * GIB + noise("m3", t, 5e7)),
        ],
    }


def _openmetrics(now: float) -> str:
    lines: list[str] = []
    # samples run a little past now, so an instant query (a fix's verification) has data
    times = np.arange(now - SPAN - 3600, now + 900, STEP)
    for family, members in _series(now).items():
        lines.append(f"# TYPE {family} gauge")
        for labels, value in members:
            shown = ",".join(f'{k}="{v}"' for k, v in labels.items())
            lines.extend(f"{family}{{{shown}}} {value(float(t)):.6f} {int(t)}" for t in times)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, float]]:
    """Debian's Prometheus serving the backfilled series; yields (url, the data's now)."""
    now = float(int(time.time()))
    with backfilled_prometheus(
        tmp_path_factory.mktemp("prom"),
        _openmetrics(now),
        "count(node_filesystem_avail_bytes)",
    ) as url:
        yield url, now


def _configure(repo: Path, url: str, **forecast: Any) -> None:
    path = repo / "terry.yml"
    settings = yaml.safe_load(path.read_text()) or {}
    settings["prometheus"] = {"url": url, "timeout": 5}
    settings["forecast"] = {"lookback": "2d", "lead_time": "1d", **forecast}
    path.write_text(yaml.safe_dump(settings))


@pytest.fixture(scope="module")
def fleet(prometheus: tuple[str, float], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    repo = tmp_path_factory.mktemp("forecast") / "ops"
    created = CliRunner().invoke(main, ["init", str(repo), "--output", "json"])
    assert created.exit_code == 0, created.stdout
    _configure(repo, prometheus[0])
    cli = make_cli(repo)
    up = cli("example", "up")
    assert up.exit_code == 0, up.stdout + up.stderr
    yield cli
    example.down(config_for(repo))


def _by_host(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{d['host']}:{d['mountpoint']}": d for d in report["disks"]}


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_the_report_finds_the_known_crossing_and_nothing_else(
    fleet: Cli, prometheus: tuple[str, float]
) -> None:
    _url, data_now = prometheus
    report = fleet.json("forecast", "--no-propose")
    assert report["schema"] == "terry.forecast/v1" and report["proposed"] is False
    disks = _by_host(report)
    # the tmpfs is filtered out; ghost-01 is no inventory host
    assert set(disks) == {
        "web-01:/srv/data",
        "web-02:/srv/data",
        "db-01:/srv/data",
        f"web-02:{HOSTILE}",
    }
    assert disks[f"web-02:{HOSTILE}"]["preventive"] is True
    assert any("ghost-01" in line for line in report["unmatched"])

    web01 = disks["web-01:/srv/data"]
    expected = data_now + (0.80 - WEB01_START - 2 * WEB01_RATE) / WEB01_RATE * DAY  # +16 h
    now = _epoch(report["now"])
    assert web01["outcome"] == "crossing", web01["reason"]
    assert abs(_epoch(web01["crossing_at"]) - expected) <= 0.05 * (expected - now), web01
    assert _epoch(web01["earliest"]) <= expected <= _epoch(web01["latest"])
    assert web01["preventive"] is True
    assert abs(web01["used_percent"] - 70) < 1.5
    assert abs(web01["trend_percent_per_day"] - 100 * WEB01_RATE) < 1.0
    assert web01["summary"].startswith("/srv/data on web-01 is 70% full and will reach 80% in")

    web02 = disks["web-02:/srv/data"]
    assert web02["outcome"] == "flat" and web02["crossing_at"] is None, web02["reason"]
    assert web02["projected_at"] is None and web02["preventive"] is False

    db01 = disks["db-01:/srv/data"]
    assert db01["outcome"] == "beyond_horizon", db01["reason"]
    assert db01["crossing_at"] is None and db01["projected_at"] is not None
    assert _epoch(db01["projected_at"]) - now > 7 * DAY and db01["preventive"] is False

    memory = {m["host"]: m for m in report["memory"]}
    assert memory["web-01"]["leak_suspected"] is True, memory["web-01"]["reasons"]
    assert memory["web-02"]["leak_suspected"] is False
    assert memory["db-01"]["leak_suspected"] is False

    # the text form says the same, as a table
    text = fleet("forecast", "--no-propose")
    assert text.exit_code == 0, text.stderr
    assert "crossing: prevent" in text.stdout and "leak?" in text.stdout
    assert "'terry forecast --propose' prevents them" in text.stdout


def test_limit_horizon_and_lead_time(fleet: Cli) -> None:
    only = fleet.json("forecast", "--no-propose", "--limit", "web-02")
    assert {d["host"] for d in only["disks"]} == {"web-02"}
    assert [m["host"] for m in only["memory"]] == ["web-02"] and only["unmatched"] == []
    wide = fleet.json("forecast", "--no-propose", "--horizon", "30d", "--lead-time", "1h")
    db01 = _by_host(wide)["db-01:/srv/data"]
    assert db01["outcome"] == "crossing" and db01["crossing_at"] is not None
    assert not any(d["preventive"] for d in wide["disks"])  # 16 h is beyond a 1 h lead time
    assert wide["horizon_seconds"] == 30 * DAY and wide["lead_time_seconds"] == 3600


def _forecast_incidents(cli: Cli) -> list[IncidentRow]:
    store = Store(config_for(cli.repo).store_url)
    try:
        with store.session() as session:
            rows = list(
                session.scalars(
                    select(IncidentRow)
                    .where(IncidentRow.source == "forecast")
                    .order_by(IncidentRow.id)
                )
            )
            session.expunge_all()
            return rows
    finally:
        store.dispose()


def _disk(actions: list[dict[str, Any]], mountpoint: str = "/srv/data") -> dict[str, Any]:
    [action] = [a for a in actions if a["kind"] == "disk" and a["mountpoint"] == mountpoint]
    return action


def test_propose_prevents_the_crossing_once_and_flags_the_leak(fleet: Cli) -> None:
    PWNED.unlink(missing_ok=True)
    first = fleet.json("forecast", "--propose")
    assert first["proposed"] is True
    disk = _disk(first["actions"])
    [leak] = [a for a in first["actions"] if a["kind"] == "leak"]
    assert (disk["host"], disk["mountpoint"], disk["effect"]) == ("web-01", "/srv/data", "opened")
    # web-01 is staging and the disk remedy low risk: merged, applied, verified
    assert disk["state"] == "verified" and disk["decision"] == "merge", json.dumps(disk)
    proposal = fleet.json("proposals", "show", str(disk["proposal_id"]))
    assert proposal["summary"]["remedy"] == "disk-usage-high"
    assert proposal["params"]["path"] == "/srv/data" and proposal["params"]["threshold"] == 80
    assert "will reach 80% in about" in proposal["params"]["reason"]
    assert (leak["host"], leak["effect"]) == ("web-01", "opened")
    # the hostile mountpoint is refused by the remedy's path parameter: kept for a human
    odd = _disk(first["actions"], HOSTILE)
    assert odd["effect"] == "opened" and odd["proposal_id"] is None, odd
    assert "path" in odd["note"] and not PWNED.exists()

    rows = {r.id: r for r in _forecast_incidents(fleet)}
    incident = rows[disk["incident_id"]]
    assert incident.labels["alertname"] == "DiskWillFillSoon"
    assert incident.labels["host"] == "web-01" and incident.labels["mountpoint"] == "/srv/data"
    assert incident.annotations["summary"].startswith("/srv/data on web-01 is 70% full")
    assert incident.state == "resolved" and incident.fixed_at is not None  # fixed before 80%
    kept = rows[leak["incident_id"]]
    assert kept.labels["alertname"] == "MemoryLeakSuspected" and kept.state == "open"
    assert kept.attention and "leak" in kept.attention and "slope t-value" in kept.attention

    # the disk is still forecast to fill: a new incident, left merged without applying ...
    second = fleet.json("forecast", "--propose", "--no-apply")
    disk2 = _disk(second["actions"])
    assert disk2["effect"] == "opened" and disk2["state"] == "merged", disk2
    assert [a["effect"] for a in second["actions"] if a["kind"] == "leak"] == ["open"]
    # ... and while it is open, a third run opens nothing
    third = fleet.json("forecast", "--propose", "--no-apply")
    assert sorted((a["kind"], a["effect"]) for a in third["actions"]) == [
        ("disk", "open"),
        ("disk", "open"),
        ("leak", "open"),
    ]
    assert len(_forecast_incidents(fleet)) == 4  # web-01's two in turn, the hostile one, leak

    # with a lead time the crossing is not within, the open disk incident resolves itself
    later = fleet.json("forecast", "--propose", "--lead-time", "1h")
    resolved = _disk(later["actions"])
    assert resolved["effect"] == "resolved" and resolved["incident_id"] == disk2["incident_id"]
    states = {r.id: r.state for r in _forecast_incidents(fleet)}
    assert states[disk2["incident_id"]] == "resolved" and states[leak["incident_id"]] == "open"
    assert states[odd["incident_id"]] == "resolved"
    assert not PWNED.exists()


def test_prometheus_failures_are_one_line_errors_with_their_exit_codes(
    fleet: Cli, prometheus: tuple[str, float]
) -> None:
    url = prometheus[0]
    bad_flag = fleet("forecast", "--no-propose", "--horizon", "soon")
    assert bad_flag.exit_code == 2 and "--horizon" in bad_flag.stderr

    fleet.env["TERRY_PROMETHEUS_URL"] = f"http://127.0.0.1:{free_port()}"
    try:
        down = fleet("forecast", "--no-propose", "--output", "json")
    finally:
        del fleet.env["TERRY_PROMETHEUS_URL"]
    assert down.exit_code == 8, down.stdout + down.stderr
    error = json.loads(down.stderr)
    assert "could not be reached" in error["error"] and error["exit_code"] == 8
    assert "Connection refused" in error["error"] and "query_range" not in error["error"]
    assert "Traceback" not in down.stderr

    try:
        _configure(fleet.repo, url, disk_query="sum(rate(")
        refused = fleet("forecast", "--no-propose")
        assert refused.exit_code == 3, refused.stdout + refused.stderr
        assert "refused the disk query (400" in refused.stderr
        assert refused.stderr.count("\n") == 1

        _configure(fleet.repo, url, disk_query="100 * node_filesystem_avail_bytes")
        percent = fleet("forecast", "--no-propose")
        assert percent.exit_code == 3 and "used fraction between 0 and 1" in percent.stderr

        _configure(fleet.repo, url, lookback="7x")
        bad = fleet("forecast", "--no-propose")
        assert bad.exit_code == 3 and "forecast.lookback" in bad.stderr

        _configure(fleet.repo, url)
        path = fleet.repo / "terry.yml"
        settings = yaml.safe_load(path.read_text())
        del settings["prometheus"]
        path.write_text(yaml.safe_dump(settings))
        missing = fleet("forecast", "--no-propose")
        assert missing.exit_code == 3 and "prometheus.url" in missing.stderr
    finally:
        _configure(fleet.repo, url)
