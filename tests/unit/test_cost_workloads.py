"""Kubernetes workloads' cost, pure: quantities, the requests rule (cut to what leaves the
peak at the target share; a limit equal to its request follows; thin evidence or a busy
container gets nothing), and the gate's cost input for a manifest edit (requests x replicas
at the price list's kubernetes rates; without the rates a manifest is not priced)."""

from __future__ import annotations

from typing import Any

import pytest

from terry.cost.change import gate_view
from terry.cost.prices import parse_prices
from terry.cost.rules import Kind, Thresholds
from terry.cost.workloads import (
    ContainerUsage,
    format_cpu,
    format_memory,
    parse_cpu,
    parse_memory,
    recommend_requests,
    workload_of,
)
from terry.inventory.hosts import Host
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

MIB = 2**20
RATES = {"vcpu_hourly": 0.04, "memory_gb_hourly": 0.004}
PRICES = parse_prices(
    {"currency": "USD", "instances": {}, "volumes": {}, "kubernetes": RATES}, source="t"
)


def manifest(replicas: int = 3, cpu: str = "500m", memory: str = "512Mi") -> str:
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: api, namespace: web}}
spec:
  replicas: {replicas}
  template:
    spec:
      containers:
        - name: api
          resources:
            requests: {{cpu: {cpu}, memory: {memory}}}
            limits: {{cpu: "1", memory: {memory}}}
"""


TARGET = Host(
    "api",
    None,
    "staging",
    None,
    {},
    variables={"terry_manifest": "apps/api.yaml", "terry_applier": "argocd"},
)


def test_quantities() -> None:
    assert parse_cpu("250m") == 0.25 and parse_cpu("2") == 2.0 and parse_cpu(1) == 1.0
    assert parse_memory("256Mi") == 256 * MIB and parse_memory("1G") == 1e9
    assert parse_memory("1e3") == 1000.0
    for bad in ("", "-1", "1Zi", "lots", None, True, "0"):
        assert parse_cpu(bad) is None
    assert (format_cpu(0.09), format_memory(176 * MIB)) == ("90m", "176Mi")


def test_requests_far_above_use_are_cut_and_the_guaranteed_limit_follows() -> None:
    workload = workload_of(TARGET, manifest())
    assert workload is not None and (workload.namespace, workload.name) == ("web", "api")
    usage = {("api", "api"): ContainerUsage(cpu_peak=0.03, memory_peak=100 * MIB, coverage=1.0)}
    [rec] = recommend_requests(workload, usage, PRICES, Thresholds())
    assert rec.kind is Kind.REQUESTS and rec.id == "requests:api/api"
    base = "spec.template.spec.containers[name=api].resources."
    assert rec.change == {
        base + "requests.cpu": "50m",  # 0.03 at 60% is 0.05
        base + "requests.memory": "176Mi",  # 100Mi at 60%, in 16Mi steps
        base + "limits.memory": "176Mi",  # it equalled the request; the CPU limit did not
    }
    hourly = 0.45 * RATES["vcpu_hourly"] + (512 - 176) / 1024 * RATES["memory_gb_hourly"]
    assert rec.monthly_saving == pytest.approx(round(3 * hourly * 730, 2))


@pytest.mark.parametrize(
    "usage",
    [
        ContainerUsage(cpu_peak=0.03, memory_peak=100 * MIB, coverage=0.5),  # thin evidence
        ContainerUsage(cpu_peak=0.4, memory_peak=400 * MIB, coverage=1.0),  # busy
        ContainerUsage(cpu_peak=None, memory_peak=None, coverage=1.0),  # unknown
    ],
)
def test_no_recommendation_without_evidence_of_waste(usage: ContainerUsage) -> None:
    workload = workload_of(TARGET, manifest())
    assert workload is not None
    assert recommend_requests(workload, {("api", "api"): usage}, PRICES, Thresholds()) == []


def _view(tmp_path: Any, prices: str | None, before: str, after: str) -> dict[str, Any]:
    if prices is not None:
        (tmp_path / "costs").mkdir(exist_ok=True)
        (tmp_path / "costs" / "prices.yml").write_text(prices)
    return gate_view(
        tmp_path,
        remedy="deployment-scale-up",
        params={},
        before={"api": TARGET},
        after=[TARGET],
        manifests=[(TARGET, before, after)],
    )


def test_the_gate_prices_a_manifest_edit_by_requests_and_replicas(tmp_path: Any) -> None:
    example = (REPO_ROOT / "examples" / "costs" / "prices.yml").read_text()
    scaled = _view(tmp_path, example, manifest(replicas=3), manifest(replicas=30))
    assert scaled["error"] is None and scaled["hosts"]["api"]["after"] > 0
    each = 0.5 * 0.04048 + 0.5 * 0.004445
    assert scaled["monthly_change"] == pytest.approx(27 * each * 730, abs=0.02)
    cut = _view(tmp_path, example, manifest(), manifest(cpu="50m", memory="176Mi"))
    assert cut["monthly_change"] < 0
    # no kubernetes rates (or no price list): a manifest is not priced
    bare = "currency: USD\ninstances: {}\nvolumes: {}\n"
    assert _view(tmp_path, bare, manifest(), manifest(replicas=30))["monthly_change"] == 0.0
