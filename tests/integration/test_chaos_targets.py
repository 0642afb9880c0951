"""Which host a chaos run may break, with SLO budgets read from a real Prometheus (no root).

A day of request counters is backfilled into a fresh TSDB (``tests.prometheus_tsdb``) and
served by Debian's ``prometheus`` on loopback; the SLOs on main are OpenSLO, 99.9% over one
day, so the budgets left are known:

- checkout on web-01: 0.08% failing all day, 20% of the budget left: below
  ``chaos.min_budget_percent`` (25 by default), never a target;
- ledger on web-02: no traffic at all, the budget cannot be read: never a target;
- catalog on web-03: 0.01% failing, 90% left: the only host a run may break;
- db-01 is production: never a target.

Everything goes through ``terry chaos run --dry-run`` (nothing is injected): the user sees
the candidates and why every other host was left out. Then the blast radius: an experiment
asking for two hosts is refused while ``chaos.max_blast_radius`` is 1 (the default).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from terry.gitops.init import init_repository
from terry.gitops.repo import Repo
from terry.ports import free_port
from tests.conftest import REPO_ROOT, Cli, make_cli
from tests.prometheus_tsdb import NEEDS_PROMETHEUS, backfilled_prometheus, openmetrics

pytestmark = [pytest.mark.integration, NEEDS_PROMETHEUS]

RATE = 10.0  # requests per second, every service
FAILING = {"checkout": 0.0008, "catalog": 0.0001, "ledger": None}  # None: no traffic
SERVES = {"web-01": "checkout", "web-02": "ledger", "web-03": "catalog"}

SLO = """
apiVersion: openslo/v1
kind: SLO
metadata: {name: SERVICE-availability}
spec:
  service: SERVICE
  budgetingMethod: Occurrences
  timeWindow: [{duration: 1d, isRolling: true}]
  objectives: [{target: 0.999}]
  indicator:
    spec:
      ratioMetric:
        counter: true
        good:
          metricSource:
            type: Prometheus
            spec: {query: 'http_requests_total{service="SERVICE",code!~"5.."}'}
        total:
          metricSource: {type: Prometheus, spec: {query: 'http_requests_total{service="SERVICE"}'}}
"""


def _history(now: float) -> str:
    """A day and an hour of counters every 60 s, for the services with traffic."""
    lines = []
    for service, failing in FAILING.items():
        if failing is None:
            continue
        for n, t in enumerate(range(int(now) - 25 * 3600, int(now) + 600, 60)):
            errors = n * 60 * RATE * failing
            ok = n * 60 * RATE - errors
            lines.append(f'http_requests_total{{service="{service}",code="500"}} {errors:.3f} {t}')
            lines.append(f'http_requests_total{{service="{service}",code="200"}} {ok:.3f} {t}')
    return openmetrics({"http_requests": "counter"}, lines)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    now = float(int(time.time()) // 60 * 60)
    with backfilled_prometheus(
        tmp_path_factory.mktemp("chaos-prom"), _history(now), "count(http_requests_total)"
    ) as url:
        yield url


@pytest.fixture(scope="module")
def fleet(prometheus: str, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """The example repository with a third staging host, a service on each staging host,
    their SLOs and two experiments on main."""
    repo = init_repository(tmp_path_factory.mktemp("chaos") / "ops").path
    hosts = repo / "inventories" / "example" / "hosts.yml"
    inventory = yaml.safe_load(hosts.read_text())
    staging = inventory["all"]["children"]["staging"]["hosts"]
    staging["web-03"] = json.loads(json.dumps(staging["web-02"]))
    for host, service in SERVES.items():
        staging[host]["terry_labels"]["service"] = service
    hosts.write_text(yaml.safe_dump(inventory))
    (repo / "slos").mkdir()
    for service in FAILING:
        (repo / "slos" / f"{service}.yml").write_text(SLO.replace("SERVICE", service))
    (repo / "experiments").mkdir()
    shutil.copy(REPO_ROOT / "examples" / "experiments" / "disk-fill.yaml", repo / "experiments")
    two = yaml.safe_load((repo / "experiments" / "disk-fill.yaml").read_text())
    two["extensions"][0]["target"]["count"] = 2
    (repo / "experiments" / "disk-fill-two.yaml").write_text(yaml.safe_dump(two))
    Repo(repo).commit_paths(
        ["slos", "inventories", "experiments"], "SLOs per service, three staging hosts"
    )
    _prometheus(repo, prometheus)
    return make_cli(repo)


def _prometheus(repo: Path, url: str) -> None:
    settings = yaml.safe_load((repo / "terry.yml").read_text())
    settings["prometheus"] = {"url": url, "timeout": 2}
    (repo / "terry.yml").write_text(yaml.safe_dump(settings))


def _dry_run(fleet: Cli, *args: str) -> Any:
    return fleet("chaos", "run", "disk-fill", "--dry-run", *args, "-o", "json")


def test_only_a_host_whose_services_have_budget_left_may_be_broken(fleet: Cli) -> None:
    for _ in range(5):  # drawn at random: always the one host that may be broken
        done = _dry_run(fleet)
        assert done.exit_code == 0, done.stderr or done.stdout
        [run] = json.loads(done.stdout)["runs"]
        assert run["target"] == "web-03" and run["outcome"] == "dry-run"
    assert run["candidates"] == ["web-03"]
    excluded = run["excluded"]
    assert excluded["web-01"].startswith("SLO error budget below chaos.min_budget_percent (25%)")
    assert excluded["web-01"].endswith("checkout (20.0%)")
    assert excluded["web-02"].endswith("ledger (unknown)")
    assert excluded["db-01"] == "environment production is not in chaos.environments"

    # named, a host with too little budget is refused all the same (exit 5)
    forced = _dry_run(fleet, "--target", "web-01")
    assert forced.exit_code == 5
    assert "web-01 may not be a chaos target: SLO error budget" in forced.stderr
    assert _dry_run(fleet, "--target", "web-03").exit_code == 0


def test_a_budget_prometheus_cannot_tell_forbids_every_host_that_has_one(fleet: Cli) -> None:
    settings = (fleet.repo / "terry.yml").read_text()
    _prometheus(fleet.repo, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    try:
        down = _dry_run(fleet)
    finally:
        (fleet.repo / "terry.yml").write_text(settings)
    assert down.exit_code == 5, down.stdout
    assert "no host may be a chaos target now" in down.stderr
    for host, service in SERVES.items():
        assert f"{host}: SLO error budget" in down.stderr and f"{service} (unknown)" in down.stderr


def test_one_host_at_a_time_unless_the_configuration_allows_more(fleet: Cli) -> None:
    wide = fleet("chaos", "run", "disk-fill-two", "--dry-run")
    assert wide.exit_code == 2
    assert "asks for 2 hosts; chaos.max_blast_radius is 1" in wide.stderr
