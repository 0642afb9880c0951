"""Kubernetes requests as cost proposals (issue 21): a real Prometheus over 31 days of
container metrics (cAdvisor's ``container_cpu_usage_seconds_total`` and
``container_memory_working_set_bytes``) shows the shop's app container using a sliver of
its requests; ``terry cost report`` recommends smaller requests with the monthly saving at
the price list's kubernetes rates; ``terry cost propose requests:shop/app`` edits the
manifest in the GitOps repository in place (the rest of the file byte for byte), Argo CD
(a local server following its REST API) dry-runs it, the real gate always sends it to a
person with the monthly change in its input, and approved it is synced and verified."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from terry.gitops.repo import Repo
from tests.conftest import Cli, alert, make_cli, payload
from tests.fakes.argocd import FakeArgoCD
from tests.prometheus_tsdb import NEEDS_PROMETHEUS, backfilled_prometheus, openmetrics
from tests.shop import git, shop_repo

pytestmark = [pytest.mark.integration, NEEDS_PROMETHEUS]

DAY = 86400
MIB = 2**20
TOKEN = "argocd-cost-token-0000"
POD = 'namespace="shop",pod="shop-7d4b9c6f5-x2x9k"'
MANIFEST = """\
# The shop, as the team wants it. Terry edits this file in place.
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
  namespace: shop
spec:
  replicas: 2  # the HPA's floor
  selector:
    matchLabels: {app: shop}
  template:
    metadata:
      labels: {app: shop}
    spec:
      containers:
        - name: app
          image: "registry.example/shop:1.4"
          resources:
            requests:
              cpu: "1"   # sized for launch day
              memory: 1Gi
            limits:
              cpu: "2"
              memory: 1Gi
        - name: proxy
          image: 'registry.example/proxy:2'
          resources:
            requests: {cpu: 100m, memory: 64Mi}
---
apiVersion: v1
kind: Service
metadata:
  name: shop
  namespace: shop
spec:
  ports:
    - port: 80
"""


def _history(now: float) -> str:
    """31 days: app uses 0.05 cores and 100Mi; proxy 0.08 of its 0.1 cores and 60Mi; the pod's
    own cgroup (container="") and the pause container are not containers to size."""
    start = now - 31 * DAY
    times = [*range(int(start), int(now - 3600), 1200), *range(int(now - 3600), int(now), 60)]
    lines: list[str] = []
    for container, cores, memory in (("app", 0.05, 100), ("proxy", 0.08, 60), ("", 3.0, 900)):
        labels = f'{POD},container="{container}"'
        for t in times:
            lines += [
                f"container_cpu_usage_seconds_total{{{labels}}} {(t - start) * cores:.1f} {t}",
                f"container_memory_working_set_bytes{{{labels}}} {memory * MIB} {t}",
            ]
    families = {
        "container_cpu_usage_seconds": "counter",
        "container_memory_working_set_bytes": "gauge",
    }
    return openmetrics(families, lines)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    now = float(int(time.time()) // 60 * 60)
    with backfilled_prometheus(
        tmp_path_factory.mktemp("k8s-prom"),
        _history(now),
        "count(container_memory_working_set_bytes)",
    ) as url:
        yield url


@pytest.fixture
def shop(prometheus: str, tmp_path: Path) -> Iterator[tuple[Cli, FakeArgoCD]]:
    repo = tmp_path / "ops"
    fake = FakeArgoCD(repo, token=TOKEN)
    shop_repo(repo, fake.base_url, prometheus={"url": prometheus, "timeout": 10})
    (repo / "apps" / "shop" / "shop.yaml").write_text(MANIFEST)
    (repo / "costs").mkdir()
    (repo / "costs" / "prices.yml").write_text(
        (repo / "examples" / "costs" / "prices.yml").read_text()
    )
    Repo(repo).commit_paths(["apps", "costs"], "the shop's requests, and prices")
    fake.add_app("shop", "apps/shop")
    fake.start()
    cli = make_cli(repo)
    cli.env["ARGOCD_AUTH_TOKEN"] = TOKEN
    yield cli, fake
    fake.stop()


def _saving(replicas: int, cores: float, mib: float) -> float:
    prices = yaml.safe_load(Path("examples/costs/prices.yml").read_text())["kubernetes"]
    hourly = cores * prices["vcpu_hourly"] + mib / 1024 * prices["memory_gb_hourly"]
    return round(replicas * hourly * 730, 2)


def test_requests_far_above_use_become_a_reviewed_manifest_edit(
    shop: tuple[Cli, FakeArgoCD],
) -> None:
    cli, fake = shop
    report = cli.json("cost", "report", "--format", "json")
    found = {r["id"]: r for r in report["recommendations"] if r["kind"] == "requests"}
    # the proxy uses 80% of its CPU request and most of its memory: nothing to cut
    assert set(found) == {"requests:shop/app"}, report["recommendations"]
    rec = found["requests:shop/app"]
    # peak 0.05 cores at 60% -> 90m; peak 100Mi at 60% -> 176Mi (16Mi steps)
    assert (rec["current"], rec["proposed"]) == (
        "cpu 1000m, memory 1024Mi",
        "cpu 90m, memory 176Mi",
    )
    assert rec["monthly_saving"] == pytest.approx(_saving(2, 0.91, 848), abs=0.01)
    assert "2 replica(s) of Deployment shop/shop" in rec["why"]

    proposed = cli.json("cost", "propose", "requests:shop/app")
    assert proposed["state"] == "awaiting_review", proposed
    assert (
        "a cost recommendation changes a workload's requests; a person reviews it"
        in proposed["reasons"]
    )
    assert not any("raises the monthly cost" in r for r in proposed["reasons"])
    pid = str(proposed["proposal_id"])
    shown = cli.json("proposals", "show", pid)
    assert shown["applier"] == "argocd" and shown["summary"]["remedy"] == "cost-requests"
    [dry] = fake.syncs("shop")
    assert dry["dryRun"] is True and dry["revision"] == shown["commit"]

    # The edit in place: the request lines and the limit that equalled its request (the
    # Guaranteed memory limit); the CPU limit, the proxy and every comment keep their bytes.
    edited = git(cli.repo, "show", f"{shown['commit']}:apps/shop/shop.yaml") + "\n"
    # (ruamel keeps the value's quotes and the comment's column)
    assert edited == MANIFEST.replace('cpu: "1"   #', 'cpu: "90m" #').replace(
        '              memory: 1Gi\n            limits:\n              cpu: "2"\n'
        "              memory: 1Gi\n",
        '              memory: 176Mi\n            limits:\n              cpu: "2"\n'
        "              memory: 176Mi\n",
    )

    approved = cli.as_("alice").json("proposals", "approve", pid)
    assert approved["state"] == "verified", approved
    live = fake.live("shop", "Deployment", "shop")["spec"]["template"]["spec"]["containers"][0]
    assert live["resources"]["requests"] == {"cpu": "90m", "memory": "176Mi"}


def test_the_gate_prices_a_manifest_edit_at_the_kubernetes_rates(
    shop: tuple[Cli, FakeArgoCD],
) -> None:
    """A fix that raises requests x replicas above settings.cost.review_above waits for a
    person with the amount: scaling the shop from 2 to 40 replicas of 1 core and 1Gi."""
    cli, _fake = shop
    body = payload([alert("AppReplicasTooLow", fingerprint="k8s-cost", host="shop", replicas="40")])
    [outcome] = cli.json("alert", "ingest", "-", input=body)["proposals"]
    reasons: list[Any] = outcome["reasons"]
    [amount] = [
        float(m.group(1))
        for r in reasons
        if (m := re.match(r"raises the monthly cost by ([0-9.]+) USD \(more than 50 USD", r))
    ]
    # each side of the edit is priced to the cent: the difference may differ by one
    assert amount == pytest.approx(_saving(38, 1.1, 1024 + 64), abs=0.011)
