"""Issue 18's lab test: a burning error budget freezes a drift fix and lets the service fix
through.

The lab's lab-02 (staging) serves ``web`` (inventory label ``service: web``), and the GitOps
repository holds an OpenSLO spec whose SLI is that service's availability as the lab
Prometheus sees it: the share of ``up{job="service",host="lab-02"}`` scrapes that
succeeded. Why a 99.9% objective over one hour: the lab's Prometheus is minutes old, so the
ratio "over the period" is the ratio over those minutes, and a budget of 0.1% of one hour is
3.6 s of outage. With 1 s scrapes, the few failed scrapes of a stopped service (ServiceDown
fires after ~3 s) spend it many times over, while a healthy start spends none. A 30-day
period would say the same percentages (the budget left is a ratio) but its minutes would
mislead a reader of the output.

Then, against a real ``terry serve`` (Alertmanager posts to it): stopping ``web`` exhausts
the budget, the ServiceDown fix goes through (the budget's priority among its reasons),
is applied over SSH and verified; a drift reconciliation of the same host, asked for once
the budget is gone, is denied with the SLO reason and changes nothing on the host.
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
from tests.lab.helpers import TerryServe, ssh, wait_for

NEEDS = [
    "/usr/sbin/sshd",
    "/usr/bin/prometheus",
    "/usr/bin/prometheus-alertmanager",
    "/usr/bin/prometheus-node-exporter",
]
NAMES = {
    "bridge": "terrylabo0",
    "subnet": "10.86.0.0/24",
    "netns_prefix": "terryslo-",
    "veth_prefix": "tlabo",
}
WEBHOOK_TOKEN = "lab-webhook-token-of-the-slo-test"
HOST = "lab-02"  # staging: its fixes merge without review when the gate allows them
SELECTOR = f'up{{job="service",host="{HOST}"}}'
SLO = {
    "apiVersion": "openslo/v1",
    "kind": "SLO",
    "metadata": {"name": "web-availability"},
    "spec": {
        "service": "web",
        "budgetingMethod": "Occurrences",
        "timeWindow": [{"duration": "1h", "isRolling": True}],
        "objectives": [{"target": 0.999}],
        "indicator": {
            "metadata": {"name": "web-scrapes-up"},
            "spec": {
                "ratioMetric": {
                    "counter": False,
                    "good": {
                        "metricSource": {
                            "type": "Prometheus",
                            "spec": {"query": f"sum_over_time({SELECTOR}[{{{{.window}}}}])"},
                        }
                    },
                    "total": {
                        "metricSource": {
                            "type": "Prometheus",
                            "spec": {"query": f"count_over_time({SELECTOR}[{{{{.window}}}}])"},
                        }
                    },
                }
            },
        },
    },
}


def _configure(repo: Path, state: lab.LabState) -> None:
    path = repo / CONFIG_FILE
    settings = yaml.safe_load(path.read_text()) or {}
    settings["inventory"] = ["inventories/lab"]
    settings["prometheus"] = {"url": state.prometheus_url, "settle_seconds": 30, "timeout": 5}
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    host_vars = repo / "inventories" / "lab" / "host_vars"
    host_vars.mkdir(parents=True, exist_ok=True)
    (host_vars / f"{HOST}.yml").write_text(yaml.safe_dump({"terry_labels": {"service": "web"}}))
    (repo / "slos").mkdir(exist_ok=True)
    (repo / "slos" / "web.yml").write_text(yaml.safe_dump(SLO, sort_keys=False))
    Repo(repo).commit_paths(
        [CONFIG_FILE, "inventories/lab", "slos"], "lab: web on lab-02 and its SLO"
    )


def _budget(cli: Cli) -> dict[str, Any]:
    """The SLO's status; exit 8 (a figure unknown) still prints it."""
    result = cli("slo", "status", "--service", "web", "--output", "json")
    assert result.exit_code in (0, 8), result.stderr or result.stdout
    [slo] = json.loads(result.stdout)["slos"]
    return slo


def _service_fix(cli: Cli) -> dict[str, Any] | None:
    for p in cli.json("proposals", "list"):
        if p["remedy"] == "service-down" and HOST in p["hosts"]:
            return p
    return None


def test_a_burning_budget_freezes_a_drift_fix_and_lets_the_service_fix_through(
    tmp_path: Path, lab_config: lab.LabConfig
) -> None:
    started = time.monotonic()
    repo = init_repository(tmp_path / "ops", example=False).path
    port = free_port()
    lab.down(lab_config)  # leftovers of an interrupted earlier run
    state = lab.up(
        lab_config,
        hosts=2,
        repo=repo,
        webhook_url=f"http://127.0.0.1:{port}/api/v1/alerts",
        webhook_token=WEBHOOK_TOKEN,
    )
    server = None
    try:
        _configure(repo, state)
        cli = make_cli(repo)
        # A healthy start spends nothing: every scrape so far succeeded.
        before = wait_for(lambda: (b := _budget(cli))["state"] == "ok" and b, 30, interval=1)
        assert before, _budget(cli)
        assert before["budget_remaining_percent"] == 100 and before["hosts"] == [HOST]
        server = TerryServe(repo, port, {"TERRY_WEBHOOK_TOKEN": WEBHOOK_TOKEN})
        # Drift a person made by hand on the same host, waiting for a reconciliation.
        ssh(state, HOST, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")

        # Stop the service the SLI measures: the failed scrapes spend the budget, Prometheus
        # fires ServiceDown, and the fix goes through the exhausted budget.
        lab.break_host(state, HOST, "service")
        fixed = wait_for(
            lambda: (
                (p := _service_fix(cli)) and p["state"] in ("verified", "failed", "denied") and p
            ),
            90,
            interval=1,
        )
        assert fixed, f"no service fix; serve log:\n{server.log.read_text()[-3000:]}"
        assert fixed["state"] == "verified" and fixed["decision"] == "merge", fixed
        shown = cli.json("proposals", "show", str(fixed["id"]))
        reasons = " ".join(shown["reasons"])
        assert "priority: this fix protects the error budget of web" in reasons, reasons
        address = state.host(HOST).address
        assert httpx.get(f"http://{address}:8080/healthz", timeout=5).status_code == 200

        spent = _budget(cli)
        assert spent["state"] == "exhausted" and spent["budget_remaining_percent"] < 0, spent

        # The reconciliation of the same host is not a fix: frozen, with the SLO reason.
        frozen = cli("drift", "fix", "--limit", HOST, "--output", "json")
        assert frozen.exit_code == 1, frozen.stderr or frozen.stdout
        done = yaml.safe_load(frozen.stdout)
        assert done["state"] == "denied" and done["decision"] == "deny", done
        assert any(
            "service web has spent its error budget" in r and "drift reconciliation" in r
            for r in done["reasons"]
        ), done["reasons"]
        assert ssh(state, HOST, "sysctl", "-n", "net.ipv4.ip_forward").strip() == "1"
        print(f"\nSLO lab test: {time.monotonic() - started:.1f}s")
    finally:
        if server is not None:
            server.stop()
        report = lab.down(lab_config)
        assert not report.problems, report.problems
