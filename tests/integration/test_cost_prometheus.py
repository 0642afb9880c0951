"""``terry cost`` against a real Prometheus holding 31 days of node_exporter metrics (no
root), a real GitOps repository, the real gate (regorus) and the weekly report.

The fleet (prices: examples/costs/prices.yml, USD) and what its history says:

- web-01, m5.xlarge, staging: 12% CPU every hour, 25% of 16 GiB memory: downsize to
  m5.large, saving (0.214 - 0.107) x 730 = 78.11 a month;
- web-02, m5.xlarge, staging, a 200 GB gp3 volume 10% full: 50% CPU, so no downsize; the
  volume shrinks to 40 GB (20 GB used, 60% full), saving 160 x 0.088 = 14.08;
- db-01, t3.large, production, 100 GB gp3 half full, 3% CPU: idle, its whole
  66.58 + 8.80 = 75.38 a month;
- batch-01, c5.xlarge, labelled workload=batch, seen for the last 10 days only: spot,
  0.192 x 730 x 0.6 = 84.10. Its environment and db-01's tenant are hostile text.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from terry.config import load_config
from terry.cost.report import build_report
from terry.gitops.init import init_repository
from terry.gitops.repo import Repo
from terry.ports import free_port
from tests.conftest import Cli, make_cli
from tests.prometheus_tsdb import NEEDS_PROMETHEUS, backfilled_prometheus, openmetrics

pytestmark = [pytest.mark.integration, NEEDS_PROMETHEUS]

DAY = 86400
GIB = 2**30
HOSTILE = "<script>alert(1)</script> | [x](http://evil.example/) `rm -rf`"
# host -> (CPU busy share, days seen, filesystem size GB, used share)
FLEET = {
    "web-01": (0.12, 31, 50, 0.5),
    "web-02": (0.50, 31, 200, 0.10),
    "db-01": (0.03, 31, 100, 0.5),
    "batch-01": (0.70, 10, 50, 0.5),
}


def _history(now: float) -> str:
    lines: list[str] = []
    for host, (busy, days, size_gb, used) in FLEET.items():
        start = now - days * DAY
        # every 20 minutes, then every minute for the last hour (instant queries look 5m back)
        times = [
            *range(int(start), int(now - 3600), 1200),
            *range(int(now - 3600), int(now + 600), 60),
        ]
        labels = f'instance="{host}:9100",job="node"'
        fs = f'{labels},mountpoint="/",fstype="ext4"'
        size, avail = size_gb * 1e9, size_gb * 1e9 * (1 - used)
        idle = user = 0.0
        last = start
        for t in times:
            idle, user = idle + (t - last) * (1 - busy), user + (t - last) * busy
            last = t
            lines += [
                f'node_cpu_seconds_total{{{labels},cpu="0",mode="idle"}} {idle:.1f} {t}',
                f'node_cpu_seconds_total{{{labels},cpu="0",mode="user"}} {user:.1f} {t}',
                f"node_memory_MemTotal_bytes{{{labels}}} {16 * GIB} {t}",
                f"node_memory_MemAvailable_bytes{{{labels}}} {12 * GIB} {t}",
                f"node_filesystem_size_bytes{{{fs}}} {size:.0f} {t}",
                f"node_filesystem_avail_bytes{{{fs}}} {avail:.0f} {t}",
            ]
    families = {
        "node_cpu_seconds": "counter",
        "node_memory_MemTotal_bytes": "gauge",
        "node_memory_MemAvailable_bytes": "gauge",
        "node_filesystem_size_bytes": "gauge",
        "node_filesystem_avail_bytes": "gauge",
    }
    return openmetrics(families, lines)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    now = float(int(time.time()) // 60 * 60)
    with backfilled_prometheus(
        tmp_path_factory.mktemp("cost-prom"), _history(now), "count(node_cpu_seconds_total)"
    ) as url:
        yield url


def _set(inventory: dict[str, Any], host: str, **variables: Any) -> None:
    for group in inventory["all"]["children"].values():
        if host in group["hosts"]:
            group["hosts"][host].update(variables)


@pytest.fixture(scope="module")
def fleet(prometheus: str, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    repo = init_repository(tmp_path_factory.mktemp("cost") / "ops").path
    (repo / "costs").mkdir()
    (repo / "costs" / "prices.yml").write_text(
        (repo / "examples" / "costs" / "prices.yml").read_text()
    )
    hosts = repo / "inventories" / "example" / "hosts.yml"
    inventory = yaml.safe_load(hosts.read_text())
    _set(inventory, "web-01", terry_instance_type="m5.xlarge")
    _set(
        inventory,
        "web-02",
        terry_instance_type="m5.xlarge",
        terry_volume_gb=200,
        terry_volume_type="gp3",
    )
    _set(
        inventory,
        "db-01",
        terry_instance_type="t3.large",
        terry_volume_gb=100,
        terry_volume_type="gp3",
        terry_tenant=HOSTILE,
    )
    inventory["all"]["children"]["batch"] = {
        "vars": {"terry_environment": HOSTILE},
        "hosts": {
            "batch-01": {
                "terry_root": str(repo / ".terry" / "hosts" / "batch-01"),
                "terry_instance_type": "c5.xlarge",
                "terry_labels": {"workload": "batch"},
            }
        },
    }
    hosts.write_text(yaml.safe_dump(inventory))
    Repo(repo).commit_paths(["costs", "inventories"], "Prices and instance types")
    settings = yaml.safe_load((repo / "terry.yml").read_text())
    settings["prometheus"] = {"url": prometheus, "timeout": 10}
    settings["cost"] = {"savings_goal": 500}
    (repo / "terry.yml").write_text(yaml.safe_dump(settings))
    return make_cli(repo)


def test_the_report_prices_hosts_tenants_environments_and_recommends(fleet: Cli) -> None:
    result = fleet("cost", "report", "--format", "json")
    assert result.exit_code == 0, result.stderr or result.stdout
    report = json.loads(result.stdout)
    assert report["schema"] == "terry.cost/v1" and report["currency"] == "USD"
    assert report["utilisation_error"] is None and report["history_error"] is None
    hosts = {h["host"]: h for h in report["hosts"]}
    assert hosts["web-01"]["monthly"] == pytest.approx(0.214 * 730, abs=0.01)
    assert hosts["web-02"]["monthly"] == pytest.approx(0.214 * 730 + 200 * 0.088, abs=0.01)
    assert hosts["web-01"]["cpu_peak_percent"] == pytest.approx(12, abs=0.5)
    assert hosts["web-01"]["memory_peak_percent"] == pytest.approx(25, abs=0.1)
    assert hosts["web-02"]["disk_peak_percent"] == pytest.approx(10, abs=0.1)
    assert hosts["batch-01"]["coverage_percent"] < 50  # seen for ten days of thirty
    envs = {g["name"]: g for g in report["environments"]}
    assert envs["staging"]["hosts"] == 2 and envs[HOSTILE]["hosts"] == 1
    tenants = {g["name"]: g["monthly"] for g in report["tenants"]}
    assert tenants[HOSTILE] == pytest.approx(0.0912 * 730 + 8.8, abs=0.01)
    assert set(tenants) == {"example", HOSTILE}

    recs = {r["id"]: r for r in report["recommendations"]}
    assert set(recs) == {"downsize:web-01", "volume:web-02", "idle:db-01", "spot:batch-01"}
    assert recs["downsize:web-01"]["proposed"] == "m5.large"
    assert recs["downsize:web-01"]["monthly_saving"] == pytest.approx(78.11)
    assert recs["volume:web-02"]["change"] == {"terry_volume_gb": 40}
    assert recs["volume:web-02"]["monthly_saving"] == pytest.approx(14.08)
    assert recs["idle:db-01"]["monthly_saving"] == pytest.approx(75.38)
    assert recs["spot:batch-01"]["monthly_saving"] == pytest.approx(84.1)
    assert report["savings_total"] == pytest.approx(78.11 + 14.08 + 75.38 + 84.1, abs=0.02)

    # a point a day: three hosts for twenty days, four since batch-01 started
    history = report["history"]
    assert len(history) == 30
    assert [d["hosts"] for d in history[:15]] == [3] * 15 and history[-1]["hosts"] == 4
    three = sum(hosts[h]["monthly"] for h in ("web-01", "web-02", "db-01")) / 730 * 24
    assert history[0]["cost"] == pytest.approx(three, abs=0.02)


def test_markdown_and_html_render_hostile_labels_inert(fleet: Cli) -> None:
    md = fleet("cost", "report")
    assert md.exit_code == 0, md.stderr
    # every Markdown control character escaped: no tag, no link, no code span
    assert not re.search(r"(?<!\\)<script|(?<!\\)\]\(http|(?<!\\)`rm", md.stdout)
    assert r"\<script\>alert(1)\</script\> \| \[x\](http://evil.example/) \`rm -rf\`" in md.stdout
    assert "## Cost over time" in md.stdout and "▁" in md.stdout and "█" in md.stdout
    assert "| downsize:web-01 | web-01 | downsize | m5.xlarge | m5.large | 78.11 USD |" in md.stdout

    page = fleet("cost", "report", "--format", "html")
    assert page.exit_code == 0, page.stderr
    html = page.stdout
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<svg role="img" aria-label="cost per day' in html and html.count("<rect") == 30
    assert "<code>downsize:web-01</code>" in html


def test_prometheus_down_leaves_utilisation_unknown_and_recommends_nothing(fleet: Cli) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    config = load_config(fleet.repo, environ={"TERRY_PROMETHEUS_URL": dead})
    repo = Repo(fleet.repo)
    report = build_report(repo.tree(repo.head()), config)
    assert "could not be reached" in (report.utilisation_error or "")
    # only what needs no utilisation: the batch label's spot advice
    assert [r.id for r in report.recommendations] == ["spot:batch-01"] and report.history == ()
    assert report.monthly_total > 0  # the prices still hold
    broken = fleet.as_("x")
    broken.env["TERRY_PROMETHEUS_URL"] = dead
    result = broken("cost", "report", "-o", "json")
    assert result.exit_code == 8 and "utilisation unknown" in result.stderr
    assert [r["id"] for r in json.loads(result.stdout)["recommendations"]] == ["spot:batch-01"]


def test_a_cost_proposal_is_reviewed_and_its_saving_counts_once_applied(fleet: Cli) -> None:
    proposed = fleet.json("cost", "propose", "downsize:web-01")
    assert proposed["state"] == "awaiting_review" and proposed["monthly_saving"] == 78.11
    assert any("an inventory edit changes the desired state" in r for r in proposed["reasons"])
    assert not any("monthly cost" in r for r in proposed["reasons"])  # it saves
    shown = fleet.json("proposals", "show", str(proposed["proposal_id"]))
    assert "-          terry_instance_type: m5.xlarge" in shown["check_diff"]
    assert "+          terry_instance_type: m5.large" in shown["check_diff"]
    advice = fleet("cost", "propose", "idle:db-01")
    assert advice.exit_code == 2 and "is advice" in advice.stderr
    assert fleet("cost", "propose", "downsize:nowhere").exit_code == 4

    weekly = json.loads(fleet("report", "weekly", "--format", "json").stdout)
    assert weekly["savings"]["achieved"] == 0 and weekly["savings"]["goal"] == 500
    approved = fleet("proposals", "approve", str(proposed["proposal_id"]))
    assert approved.exit_code == 0, approved.stdout + approved.stderr
    done = fleet.json("proposals", "show", str(proposed["proposal_id"]))
    assert done["summary"]["state"] == "verified", done["outcome"]
    weekly = json.loads(fleet("report", "weekly", "--format", "json").stdout)
    savings = weekly["savings"]
    assert savings["achieved"] == 78.11 and savings["in_window"] == 78.11
    assert savings["currency"] == "USD"
    assert [s["recommendation"] for s in savings["proposals"]] == ["downsize:web-01"]
    text = fleet("report", "weekly").stdout
    assert "## Cost savings" in text
    assert (
        "78.11 USD a month saved by applied cost proposals of a goal of 500.00 USD (15.6%)" in text
    )
    html = fleet("report", "weekly", "--format", "html").stdout
    assert 'id="savings"' in html and "(15.6%)" in html


def test_a_raise_above_the_setting_goes_to_review_with_the_amount(fleet: Cli) -> None:
    """Through the real gate (main's policies, regorus): web-02 to m5.2xlarge raises the bill
    by (0.428 - 0.214) x 730 = 156.22 a month, above the shipped 50."""
    raised = fleet.json(
        "inventory", "set", "web-02", "terry_instance_type=m5.2xlarge", "--no-converge"
    )
    assert raised["state"] == "awaiting_review"
    assert (
        "raises the monthly cost by 156.22 USD (more than 50 USD, settings.cost.review_above in "
        "policies/data.json); a person approves the spend"
    ) in raised["reasons"]
    unknown = fleet.json(
        "inventory", "set", "web-02", "terry_instance_type=z9.giant", "--no-converge"
    )
    assert any(
        "the cost of this change is unknown (no price for instance type z9.giant" in r
        for r in unknown["reasons"]
    )
