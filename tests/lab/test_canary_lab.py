"""Issue 18's lab test: a canary whose watch fails stops the rollout, rolls the canary host
back and leaves the rest untouched, held for a person.

The disks of three staging hosts fill (82%); DiskUsageHigh fires on each. The test's GitOps
repository carries a remedy that makes things worse on purpose: ``disk-ballast`` (a role of
the repository, matching DiskUsageHigh on /srv/data more specifically than the shipped
``disk-usage-high``) writes 6 MiB of ballast onto the full disk. Its own verify only checks
its mark, so it passes; the canary's watch is what catches it: ``canary.queries`` reads the
disk's used percent from the lab Prometheus before the canary and after its watch, and it
rose on the canary host.

The lab's Alertmanager groups per host (lab/README.md), so it would send each host's alert
as a webhook of its own and the first would be proposed alone. Here the three firing alerts
are read from the lab's Alertmanager and sent to ``terry serve`` as the one group an
Alertmanager grouping by alertname sends: one proposal over the three hosts, a canary of one
(lab-02), then the rest. Real SSH, real Prometheus and Alertmanager, real ``terry serve``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from terry import lab
from terry.config import CONFIG_FILE
from terry.gitops.init import init_repository
from terry.gitops.repo import Repo
from terry.ports import free_port
from tests.conftest import Cli, make_cli
from tests.lab.helpers import TerryServe, df_percent, ssh, wait_for
from tests.lab.test_slo_lab import WEBHOOK_TOKEN

NEEDS = [
    "/usr/sbin/sshd",
    "/usr/bin/prometheus",
    "/usr/bin/prometheus-alertmanager",
    "/usr/bin/prometheus-node-exporter",
]
NAMES = {
    "bridge": "terrylabc0",
    "subnet": "10.94.0.0/24",
    "netns_prefix": "terrycanary-",
    "veth_prefix": "tlabc",
}
STAGING = ["lab-02", "lab-03", "lab-04"]
CANARY, REST = STAGING[0], STAGING[1:]  # 10% of three, at least one; by name
FILLED = 82.0
MARKS = ("/srv/data/ballast", "/srv/data/ballast-fix")
USED = (  # the disk's used percent ({host} is filled, PromQL's own braces stay)
    '100 * (1 - node_filesystem_avail_bytes{host="{host}",mountpoint="/srv/data"}'
    ' / node_filesystem_size_bytes{host="{host}",mountpoint="/srv/data"})'
)
ROLE = {
    "remedies.yml": """remedies:
  - name: disk-ballast
    summary: A fix that makes the disk fuller on purpose (test)
    match:
      alertname: [DiskUsageHigh]
      labels: {mountpoint: /srv/data}
    risk: low
    apply: main
    verify: verify
    rollback: rollback
""",
    "tasks/main.yml": """- name: Write 6 MiB of ballast onto the full disk
  ansible.builtin.command:
    argv: [fallocate, --length, 6MiB, "{{ terry_root }}/srv/data/ballast"]
    creates: "{{ terry_root }}/srv/data/ballast"
- name: Mark the fix
  ansible.builtin.copy:
    dest: "{{ terry_root }}/srv/data/ballast-fix"
    content: "applied\\n"
    mode: "0644"
""",
    "tasks/verify.yml": """- name: Look for the mark
  ansible.builtin.stat:
    path: "{{ terry_root }}/srv/data/ballast-fix"
  register: ballast_mark
- name: The fix took (by its own account)
  ansible.builtin.assert:
    that: ballast_mark.stat.exists
""",
    "tasks/rollback.yml": """- name: Remove the ballast and the mark
  ansible.builtin.file:
    path: "{{ terry_root }}/srv/data/{{ item }}"
    state: absent
  loop: [ballast, ballast-fix]
""",
}


def _configure(repo: Path, state: lab.LabState) -> None:
    role = repo / "roles" / "disk_ballast"
    for name, text in ROLE.items():
        (role / name).parent.mkdir(parents=True, exist_ok=True)
        (role / name).write_text(text)
    path = repo / CONFIG_FILE
    settings = yaml.safe_load(path.read_text()) or {}
    settings["inventory"] = ["inventories/lab"]
    settings["prometheus"] = {"url": state.prometheus_url, "timeout": 5}
    settings["canary"] = {"min_hosts": 2, "watch": 3, "queries": [USED], "tolerance": 0.05}
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    Repo(repo).commit_paths(
        [CONFIG_FILE, "inventories/lab", "roles/disk_ballast"], "lab: a remedy that hurts"
    )


def _firing(state: lab.LabState) -> list[dict[str, Any]] | None:
    """The lab Alertmanager's DiskUsageHigh alerts, once every staging host has one."""
    try:
        answer = httpx.get(f"{state.alertmanager_url}/api/v2/alerts", timeout=2.0).json()
    except (httpx.HTTPError, ValueError):
        return None
    found = [
        a
        for a in answer
        if a["labels"].get("alertname") == "DiskUsageHigh" and a["labels"].get("host") in STAGING
    ]
    return found if {a["labels"]["host"] for a in found} == set(STAGING) else None


def _group(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """The webhook (version 4) an Alertmanager grouping by alertname sends for ``alerts``."""
    return {
        "version": "4",
        "groupKey": '{}:{alertname="DiskUsageHigh"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "terry",
        "groupLabels": {"alertname": "DiskUsageHigh"},
        "commonLabels": {"alertname": "DiskUsageHigh", "mountpoint": "/srv/data"},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": a["labels"],
                "annotations": a["annotations"],
                "startsAt": a["startsAt"],
                "endsAt": a["endsAt"],
                "generatorURL": a.get("generatorURL", ""),
                "fingerprint": a["fingerprint"],
            }
            for a in alerts
        ],
    }


def _ended(cli: Cli) -> dict[str, Any] | None:
    found = [p for p in cli.json("proposals", "list") if p["remedy"] == "disk-ballast"]
    if len(found) != 1:
        return None
    shown: dict[str, Any] = cli.json("proposals", "show", str(found[0]["id"]))
    busy = ("proposed", "checked", "approved", "merged", "applying", "applied")
    return None if shown["summary"]["state"] in busy else shown


def _marks(state: lab.LabState, host: str) -> list[str]:
    listed = ssh(state, host, "ls", "-1", "/srv/data").split()
    return [m for m in MARKS if m.rsplit("/", 1)[1] in listed]


def test_a_canary_whose_watch_fails_stops_rolls_back_the_canary_and_holds_the_rest(
    tmp_path: Path, lab_config: lab.LabConfig
) -> None:
    started = time.monotonic()
    repo = init_repository(tmp_path / "ops", example=False).path
    port = free_port()
    lab.down(lab_config)  # leftovers of an interrupted earlier run
    state = lab.up(  # the lab's Alertmanager posts nowhere: the test sends the group
        lab_config,
        hosts=4,
        repo=repo,
        webhook_url=f"http://127.0.0.1:{free_port()}/api/v1/alerts",
    )
    server = None
    try:
        _configure(repo, state)
        cli = make_cli(repo)
        server = TerryServe(repo, port, {"TERRY_WEBHOOK_TOKEN": WEBHOOK_TOKEN})
        for host in STAGING:
            lab.break_host(state, host, "disk", percent=FILLED)
        before = {host: df_percent(state, host) for host in STAGING}
        alerts = wait_for(lambda: _firing(state), 60, interval=1)
        assert alerts, "DiskUsageHigh did not fire on every staging host"
        sent = httpx.post(
            f"{server.url}/api/v1/alerts",
            content=json.dumps(_group(alerts)),
            headers={
                "Authorization": f"Bearer {WEBHOOK_TOKEN}",
                "Content-Type": "application/json",
            },
            timeout=10,
        )
        assert sent.status_code == 202, sent.text

        shown = wait_for(lambda: _ended(cli), 90, interval=2)
        assert shown, f"no ended proposal: {server.log.read_text()[-3000:]}"
        told = json.dumps(shown["host_outcomes"], indent=1)
        # one proposal over the three hosts, judged with its plan, stopped after its canary
        assert sorted(shown["summary"]["hosts"]) == STAGING, told
        assert shown["summary"]["decision"] == "merge", shown["reasons"]
        assert shown["summary"]["state"] == "rolled_back", told
        hosts = {h["host"]: h for h in shown["host_outcomes"]}
        assert {h: hosts[h]["state"] for h in STAGING} == {
            CANARY: "rolled_back",
            **dict.fromkeys(REST, "held"),
        }, told
        assert {h: hosts[h]["wave"] for h in STAGING} == {CANARY: 0, **dict.fromkeys(REST, 1)}
        # why, in the record: the watch saw the canary's disk fill up
        assert "during the watch" in hosts[CANARY]["detail"], told
        assert f'host="{CANARY}"' in hosts[CANARY]["detail"], told
        assert "rose from" in hosts[CANARY]["detail"], told
        assert all("the canary failed" in hosts[h]["detail"] for h in REST), told
        assert shown["outcome"].startswith("canary failed, rolled back"), shown["outcome"]
        assert shown["summary"]["confidence"] <= 20
        runs = [(r["kind"], sorted(r["stats"])) for r in shown["runs"]]
        applied = [hosts_ for kind, hosts_ in runs if kind in ("apply", "rollback")]
        assert applied == [[CANARY], [CANARY]], runs  # the canary, then its rollback; no more
        # and on the hosts: the canary is as it was, the rest never touched
        for host in STAGING:
            assert _marks(state, host) == [], host
            assert abs(df_percent(state, host) - before[host]) <= 1, (host, before)
        # the person who is asked sees why
        incident = hosts[REST[0]]["incident_id"]
        account = cli("explain", str(incident), "--no-ai")
        assert account.exit_code == 0, account.stderr
        assert "canary" in account.stdout, account.stdout
        print(f"\ncanary lab test: {time.monotonic() - started:.1f}s")
    finally:
        if server is not None:
            server.stop()
        report = lab.down(lab_config)
        assert not report.problems, report.problems
