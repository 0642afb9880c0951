"""Issue 18's lab test: the disks of every staging host fill at once; the storm is carried by
one proposal, never one proposal per host.

The lab's Alertmanager groups alerts per alertname and host and sends at once (lab/README.md),
so the hosts' DiskUsageHigh alerts reach ``terry serve`` as separate webhooks, up to a second
or so apart (Prometheus evaluates every second and the alerts wait ``for: 2s``). The worker
gathers what arrives until none came for ``storm.gather`` seconds (3 here: the default 1.5 is
tuned for alerts of one evaluation) and diagnoses it together: one proposal over every host.
Real SSH, real Prometheus and Alertmanager.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from terry import lab
from terry.config import CONFIG_FILE
from terry.gitops.init import init_repository
from terry.gitops.repo import Repo
from terry.ports import free_port
from tests.conftest import Cli, make_cli
from tests.lab.helpers import TerryServe, wait_for
from tests.lab.test_slo_lab import WEBHOOK_TOKEN

NEEDS = [
    "/usr/sbin/sshd",
    "/usr/bin/prometheus",
    "/usr/bin/prometheus-alertmanager",
    "/usr/bin/prometheus-node-exporter",
]
NAMES = {
    "bridge": "terrylabw0",
    "subnet": "10.89.0.0/24",
    "netns_prefix": "terrystorm-",
    "veth_prefix": "tlabw",
}
STAGING = ["lab-02", "lab-03", "lab-04"]


def _configure(repo: Path, state: lab.LabState) -> None:
    path = repo / CONFIG_FILE
    settings = yaml.safe_load(path.read_text()) or {}
    settings["inventory"] = ["inventories/lab"]
    settings["prometheus"] = {"url": state.prometheus_url, "settle_seconds": 30, "timeout": 5}
    settings["canary"] = {"min_hosts": 2, "watch": 1}
    settings["storm"] = {"gather": 3}
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    Repo(repo).commit_paths([CONFIG_FILE, "inventories/lab"], "lab: storm settings")


def _disk_proposals(cli: Cli) -> list[dict[str, Any]]:
    found = [p for p in cli.json("proposals", "list") if p["remedy"] == "disk-usage-high"]
    return [
        cli.json("proposals", "show", str(p["id"])) for p in sorted(found, key=lambda p: p["id"])
    ]


def _settled(cli: Cli) -> list[dict[str, Any]] | None:
    shown = _disk_proposals(cli)
    verified = {h["host"] for d in shown for h in d["host_outcomes"] if h["state"] == "verified"}
    busy = any(
        d["summary"]["state"] in ("proposed", "checked", "merged", "applying") for d in shown
    )
    return shown if set(STAGING) <= verified and not busy else None


def test_a_storm_over_every_staging_host_is_one_proposal_and_its_next_wave(
    tmp_path: Path, lab_config: lab.LabConfig
) -> None:
    started = time.monotonic()
    repo = init_repository(tmp_path / "ops", example=False).path
    port = free_port()
    lab.down(lab_config)  # leftovers of an interrupted earlier run
    state = lab.up(
        lab_config,
        hosts=4,
        repo=repo,
        webhook_url=f"http://127.0.0.1:{port}/api/v1/alerts",
        webhook_token=WEBHOOK_TOKEN,
    )
    server = None
    try:
        _configure(repo, state)
        cli = make_cli(repo)
        server = TerryServe(repo, port, {"TERRY_WEBHOOK_TOKEN": WEBHOOK_TOKEN})
        for host in STAGING:  # at once
            lab.break_host(state, host, "disk")
        shown = wait_for(lambda: _settled(cli), 150, interval=2)
        assert shown, f"not settled: {_disk_proposals(cli)}\n{server.log.read_text()[-3000:]}"
        told = [(d["summary"]["id"], d["summary"]["hosts"], d["follows"]) for d in shown]
        # the storm: one proposal over every host (each alert its own webhook here)
        assert len(shown) == 1, told
        one = shown[0]
        assert sorted(one["summary"]["hosts"]) == STAGING and one["follows"] is None, told
        incidents = {h["incident_id"] for h in one["host_outcomes"]}
        assert len(incidents) == len(STAGING), told  # each host's own incident, carried
        applies = [r for r in one["runs"] if r["kind"] == "apply"]
        assert len(applies) == 2, told  # in waves: the canary, then the rest
        print(f"\nstorm lab test: {time.monotonic() - started:.1f}s, {len(shown)} proposal(s)")
    finally:
        if server is not None:
            server.stop()
        report = lab.down(lab_config)
        assert not report.problems, report.problems
