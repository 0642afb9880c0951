"""Error budgets against a real Prometheus holding known counters (no root).

Thirty days of request counters are backfilled into a fresh TSDB with ``promtool tsdb
create-blocks-from openmetrics`` and served by Debian's ``prometheus`` on loopback. The
answers are known:

- checkout (Sloth spec, 99.9% over 30 days): 10 requests/s, 0.08% failing until an hour ago,
  2% since. Over 30 days: (719 x 0.0008 + 0.02) / 720 = 0.0826% failed, 17.3% of the budget
  left (7.49 of 43.2 minutes); burning 20x over 1h and 5m (above 14.4), 4x over 6h (under 6);
- search (OpenSLO, good over total, 99% over 28 days): 1.2% failing all along: the budget is
  overspent by 20% (exhausted), burning 1.2x;
- ledger (Sloth spec): no traffic at all: unknown, never healthy.

``terry slo rules`` is checked by ``promtool check rules`` and ``promtool test rules``.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from terry.app import build_pipeline
from terry.config import RouteConfig
from terry.gate.engine import Verdict
from terry.gitops.init import init_repository
from terry.gitops.repo import Repo
from terry.inventory.hosts import load_inventory
from terry.notify.events import Event, EventKind, load_events
from terry.notify.routes import matches
from terry.ports import free_port
from terry.slo.budget import BudgetState
from terry.slo.services import BUDGET_ENTITY, gate_view
from terry.slo.spec import parse_text
from terry.slo.status import read_status
from terry.store import Store
from terry.store.models import AuditRow, ProposalRow
from tests.conftest import Cli, alert, config_for, make_cli, payload, stored_proposal
from tests.prometheus_tsdb import NEEDS_PROMETHEUS, backfilled_prometheus

pytestmark = [pytest.mark.integration, NEEDS_PROMETHEUS]

DAY = 86400
RATE = 10.0  # requests per second, every service

CHECKOUT = """
version: prometheus/v1
service: checkout
slos:
  - name: requests-availability
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(http_requests_total{service="checkout",code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total{service="checkout"}[{{.window}}]))
"""
SEARCH = """
apiVersion: openslo/v1
kind: SLO
metadata: {name: search-availability}
spec:
  service: search
  budgetingMethod: Occurrences
  timeWindow: [{duration: 28d, isRolling: true}]
  objectives: [{target: 0.99}]
  indicator:
    spec:
      ratioMetric:
        counter: true
        good:
          metricSource:
            type: Prometheus
            spec: {query: 'http_requests_total{service="search",code!~"5.."}'}
        total:
          metricSource: {type: Prometheus, spec: {query: 'http_requests_total{service="search"}'}}
"""
LEDGER = CHECKOUT.replace("checkout", "ledger")


def _error_rate(service: str, t: float, now: float) -> float:
    if service == "search":
        return 0.012 * RATE
    return (0.02 if t >= now - 3600 else 0.0008) * RATE


def _openmetrics(now: float) -> str:
    start = now - 30 * DAY - 2 * 3600
    # coarse far back (counters need no more), fine for the last hours the short windows read
    fine = int(now - 8 * 3600)
    times = [*range(int(start), fine, 600), *range(fine, int(now + 900), 30)]
    lines = ["# TYPE http_requests counter"]
    for service in ("checkout", "search"):
        errors = ok = 0.0
        last = start
        for t in times:
            step = t - last
            # the rate in force over (last, t]: exact at the hour boundary (a multiple of 30 s)
            failing = _error_rate(service, t - 1, now) * step
            errors, ok = errors + failing, ok + RATE * step - failing
            last = t
            lines.append(f'http_requests_total{{service="{service}",code="500"}} {errors:.3f} {t}')
            lines.append(f'http_requests_total{{service="{service}",code="200"}} {ok:.3f} {t}')
    lines.append("# EOF")
    # OpenMetrics wants a family's samples together: sort by series, keeping time order
    body = sorted(lines[1:-1], key=lambda line: line.split(" ")[0])
    return "\n".join([lines[0], *body, lines[-1]]) + "\n"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    now = float(int(time.time()) // 30 * 30)  # the hour boundary falls on a sample
    with backfilled_prometheus(
        tmp_path_factory.mktemp("slo-prom"), _openmetrics(now), "count(http_requests_total)"
    ) as url:
        yield url


def _label(inventory: dict[str, Any], host: str, service: str) -> None:
    for group in inventory["all"]["children"].values():
        if host in group["hosts"]:
            group["hosts"][host]["terry_labels"]["service"] = service


@pytest.fixture(scope="module")
def shop(prometheus: str, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """A GitOps repository with the three SLOs on main; web-01 serves checkout, web-02
    search, db-01 ledger."""
    return make_cli(_shop(tmp_path_factory.mktemp("slo") / "ops", prometheus))


def _shop(path: Path, prometheus: str) -> Path:
    repo = init_repository(path).path
    (repo / "slos").mkdir()
    (repo / "slos" / "checkout.yml").write_text(CHECKOUT)
    (repo / "slos" / "search.yml").write_text(SEARCH)
    (repo / "slos" / "ledger.yml").write_text(LEDGER)
    hosts = repo / "inventories" / "example" / "hosts.yml"
    inventory = yaml.safe_load(hosts.read_text())
    for host, service in (("web-01", "checkout"), ("web-02", "search"), ("db-01", "ledger")):
        _label(inventory, host, service)
    hosts.write_text(yaml.safe_dump(inventory))
    Repo(repo).commit_paths(["slos", "inventories"], "SLOs for checkout, search and ledger")
    settings = yaml.safe_load((repo / "terry.yml").read_text())
    settings["prometheus"] = {"url": prometheus, "timeout": 5}
    (repo / "terry.yml").write_text(yaml.safe_dump(settings))
    return repo


def test_status_reads_the_known_budgets(shop: Cli) -> None:
    result = shop("slo", "status", "--service", "checkout", "--service", "search", "-o", "json")
    assert result.exit_code == 0, result.stderr or result.stdout
    report = yaml.safe_load(result.stdout)
    assert report["schema"] == "terry.slo-status/v1"
    assert report["warnings"] == []  # every SLO's service has its host
    rows = {r["service"]: r for r in report["slos"]}

    checkout = rows["checkout"]
    assert checkout["hosts"] == ["web-01"] and checkout["format"] == "sloth"
    assert checkout["period"] == "30d" and checkout["objective_percent"] == 99.9
    assert checkout["sli_percent"] == pytest.approx(100 - 0.0826667, abs=0.002)
    assert checkout["budget_minutes"] == pytest.approx(43.2)
    assert checkout["budget_remaining_percent"] == pytest.approx(17.33, abs=1.0)
    assert checkout["budget_remaining_minutes"] == pytest.approx(7.49, abs=0.45)
    burn = checkout["burn_rates"]
    assert burn["1h"] == pytest.approx(20, rel=0.02) and burn["5m"] == pytest.approx(20, rel=0.02)
    assert burn["30m"] == pytest.approx(20, rel=0.02)
    assert burn["6h"] == pytest.approx(4, rel=0.03)
    assert checkout["burning"] == ["1h/5m"] and checkout["state"] == "ok"

    search = rows["search"]
    assert search["hosts"] == ["web-02"] and search["period"] == "28d"
    assert search["budget_remaining_percent"] == pytest.approx(-20, abs=0.5)
    assert search["state"] == "exhausted" and search["burning"] == []
    assert all(r == pytest.approx(1.2, rel=0.02) for r in search["burn_rates"].values())

    text = shop("slo", "status", "--service", "checkout")
    assert text.exit_code == 0 and "burning 1h/5m" in text.stdout
    assert "web-01" in text.stdout  # the hosts serving it, in the table too


def test_an_openslo_raw_ratio_reads_the_same_budget_as_the_counters(prometheus: str) -> None:
    """search's failures as a ratio computed already (``raw``), of failures and of
    successes: the same 1.2% as good over total, so the same overspent budget."""
    ratio = (
        'sum(rate(http_requests_total{service="search",code="500"}[{{.window}}]))'
        ' / sum(rate(http_requests_total{service="search"}[{{.window}}]))'
    )
    raw = f"""
apiVersion: openslo/v1
kind: SLO
metadata: {{name: search-raw}}
spec:
  service: search
  timeWindow: [{{duration: 28d}}]
  objectives: [{{target: 0.99}}]
  indicator:
    spec:
      ratioMetric:
        rawType: failure
        raw: {{metricSource: {{type: Prometheus, spec: {{query: '{ratio}'}}}}}}
"""
    success = raw.replace("rawType: failure", "rawType: success").replace(
        f"query: '{ratio}'", f"query: '1 - {ratio}'"
    )
    slos = [*parse_text(raw, "slos/a.yml"), *parse_text(success, "slos/b.yml")]
    for status in read_status(slos, prometheus, timeout=5):
        assert status.error is None, status.error
        assert status.budget.remaining_percent == pytest.approx(-20, abs=0.5)
        assert status.budget.state is BudgetState.EXHAUSTED
        assert status.budget.burn_rates["1h"] == pytest.approx(1.2, rel=0.02)


def test_a_burn_window_without_traffic_is_said_and_exits_8(prometheus: str, tmp_path: Path) -> None:
    """A total over a short window that answers nothing (here: only ranges with over
    100,000 requests count, i.e. 6h and more): those burn rates are unknown with the reason,
    burn nothing, the budget still decides the state, and the CLI exits 8."""
    rated = (
        CHECKOUT.replace("checkout", "quiet")
        .replace(
            'total_query: sum(rate(http_requests_total{service="quiet"}[{{.window}}]))',
            'total_query: sum(increase(http_requests_total{service="checkout"}[{{.window}}]))'
            " > 100000",
        )
        .replace(
            'error_query: sum(rate(http_requests_total{service="quiet",code=~"5.."}',
            'error_query: sum(increase(http_requests_total{service="checkout",code=~"5.."}',
        )
    )
    [status] = read_status(parse_text(rated, "slos/quiet.yml"), prometheus, timeout=5)
    budget = status.budget
    assert [budget.burn_rates[w] for w in ("5m", "30m", "1h")] == [None, None, None]
    assert budget.burn_rates["6h"] == pytest.approx(4, rel=0.03)
    assert budget.state is BudgetState.OK and budget.burning == ()
    assert budget.remaining_percent == pytest.approx(17.33, abs=1.0)
    assert status.error and "no answer (no traffic in the window" in status.error

    repo = _shop(tmp_path / "ops", prometheus)
    (repo / "slos" / "quiet.yml").write_text(rated)
    Repo(repo).commit_paths(["slos"], "a quiet SLO")
    told = make_cli(repo)("slo", "status", "--service", "quiet")
    assert told.exit_code == 8, told.stdout + told.stderr
    assert "a burn rate unknown for quiet/requests-availability" in told.stderr
    assert "no answer (no traffic in the window, or no such series)" in told.stderr


def test_long_service_and_slo_names_are_folded_never_cut(prometheus: str, tmp_path: Path) -> None:
    """The service and the SLO name a row: a narrow table folds them onto more lines, and
    never cuts them short with an ellipsis as it may the other columns."""
    service = "payments-authorization-gateway-eu-west-1"
    slo = "requests-availability-for-every-merchant-api-call"
    spec = CHECKOUT.replace("service: checkout", f"service: {service}").replace(
        "name: requests-availability", f"name: {slo}"
    )
    repo = _shop(tmp_path / "ops", prometheus)
    (repo / "slos" / "long.yml").write_text(spec)
    Repo(repo).commit_paths(["slos"], "an SLO with long names")
    told = make_cli(repo).ok("slo", "status", "--service", service)
    assert "…" not in told.stdout, told.stdout
    cells = [line.split("│") for line in told.stdout.splitlines() if line.count("│") > 3]
    assert "".join(c[1].strip() for c in cells) == service  # the first column, folded
    assert "".join(c[3].strip() for c in cells) == slo


@pytest.mark.parametrize(
    ("factor", "left", "why"),
    [
        ("-1e-14", 100.0, None),
        ("-0.5", None, "a negative error ratio (-5)"),
        ("0.15", None, "an error ratio above one (1.5): more failed events than events"),
    ],
)
def test_an_error_ratio_outside_zero_to_one(
    prometheus: str, factor: str, left: float | None, why: str | None
) -> None:
    """A hair below zero is floating point (1 - good/total with every event good): read as
    0. Clearly below zero, or above one (an error query that is not a part of the total),
    is an SLI that counts wrong: unknown, saying so, never a spent budget that freezes
    changes."""
    raw = f"""
version: prometheus/v1
service: exact
slos:
  - name: all-good
    objective: 99.9
    sli:
      raw:
        error_ratio_query: sum(rate(http_requests_total{{service="checkout"}}[{{{{.window}}}}])) * {factor}
"""  # noqa: E501
    [status] = read_status(parse_text(raw, "slos/exact.yml"), prometheus, timeout=5)
    if left is None:
        assert status.budget.remaining_percent is None
        assert status.budget.state is BudgetState.UNKNOWN
        assert status.error and why and why in status.error
    else:
        assert status.error is None, status.error
        assert status.budget.remaining_percent == pytest.approx(left)
        assert status.budget.state is BudgetState.OK


def test_no_traffic_is_unknown_and_exits_8(shop: Cli) -> None:
    result = shop("slo", "status", "-o", "json")
    assert result.exit_code == 8
    rows = {r["service"]: r for r in yaml.safe_load(result.stdout)["slos"]}
    assert rows["ledger"]["state"] == "unknown"
    assert rows["ledger"]["budget_remaining_percent"] is None
    assert "no answer (no traffic in the window, or no such series)" in rows["ledger"]["error"]
    assert "budget unknown for ledger/requests-availability" in result.stderr


def test_the_gate_view_of_the_hosts_and_prometheus_down(shop: Cli, prometheus: str) -> None:
    repo = Repo(shop.repo)
    tree = repo.tree(repo.head())
    inventory = load_inventory(tree, ["inventories/example"])
    view = gate_view(tree, [inventory.hosts["web-01"], inventory.hosts["web-02"]], prometheus)
    assert set(view["services"]) == {"checkout", "search"} and view["error"] is None
    assert view["services"]["checkout"]["burning"] == ["1h/5m"]
    assert view["services"]["search"]["state"] == "exhausted"

    dead = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    down = gate_view(tree, [inventory.hosts["web-01"]], dead)
    assert time.monotonic() - started < 3
    assert down["services"]["checkout"]["state"] == "unknown"
    assert "could not be reached" in down["services"]["checkout"]["error"]
    # a host that serves nothing asks nothing
    assert gate_view(tree, [], dead) == {"services": {}, "error": None, "low_percent": 10.0}
    # no traffic: each reason once per SLO, the queries left to 'terry slo status'
    ledger = gate_view(tree, [inventory.hosts["db-01"]], prometheus)["services"]["ledger"]
    assert ledger["state"] == "unknown"
    assert ledger["error"] == (
        "requests-availability: no answer (no traffic in the window, or no such series) (5 queries)"
    ), ledger["error"]


def _burn_alert(pair: str, threshold: str) -> dict[str, Any]:
    long, short = pair.split("/")
    return {
        "exp_labels": {
            "severity": "page",
            "service": "checkout",
            "slo_service": "checkout",
            "slo_name": "requests-availability",
            "slo_objective": "99.9",
            "burn_window": pair,
        },
        "exp_annotations": {
            "summary": f"checkout: requests-availability burns its error budget over {pair} "
            f"faster than {threshold}x",
            "description": f"The error ratio over {long} and {short} is above {threshold} times "
            "the budget of 99.9% (slos/checkout.yml).",
        },
    }


# 10 requests/s; 3 of them failing from minute 71: a burn of 300x the 0.1% budget.
RULES_TEST = {
    "rule_files": ["rules.yml"],
    "evaluation_interval": "1m",
    "tests": [
        {
            "interval": "1m",
            "input_series": [
                {
                    "series": 'http_requests_total{service="checkout",code="200"}',
                    "values": "0+600x70 42420+420x89",
                },
                {
                    "series": 'http_requests_total{service="checkout",code="500"}',
                    "values": "0+0x70 180+180x89",
                },
            ],
            "alert_rule_test": [
                {"eval_time": "60m", "alertname": "ErrorBudgetBurn", "exp_alerts": []},
                {
                    "eval_time": "100m",
                    "alertname": "ErrorBudgetBurn",
                    "exp_alerts": [_burn_alert("1h/5m", "14.4"), _burn_alert("6h/30m", "6")],
                },
            ],
        }
    ],
}


def test_rules_pass_promtool(shop: Cli, tmp_path: Path) -> None:
    written = shop("slo", "rules", "--out", str(tmp_path / "all.yml"))
    assert written.exit_code == 0, written.stderr
    check = subprocess.run(
        ["promtool", "check", "rules", str(tmp_path / "all.yml")], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 18 rules found" in check.stdout  # 3 SLOs x (4 recordings + 2 alerts)
    # --output json: the same groups, as JSON (which promtool reads as YAML too)
    as_json = shop("slo", "rules", "--output", "json")
    assert as_json.exit_code == 0, as_json.stderr
    assert json.loads(as_json.stdout) == yaml.safe_load((tmp_path / "all.yml").read_text())
    assert not (shop.repo / "json").exists()

    # the checkout SLO's rules alone, against a small series that starts burning
    only = tmp_path / "only"
    only.mkdir()
    (only / "slos").mkdir()
    (only / "slos" / "checkout.yml").write_text(CHECKOUT)
    from terry.slo.rules import rules_yaml
    from terry.slo.spec import load_slos

    (only / "rules.yml").write_text(rules_yaml(load_slos(only)))
    (only / "test.yml").write_text(yaml.safe_dump(RULES_TEST))
    tested = subprocess.run(
        ["promtool", "test", "rules", "test.yml"], cwd=only, capture_output=True, text=True
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_awkward_specs_still_write_rules_promtool_accepts(tmp_path: Path) -> None:
    """Specs as people write them at the edges: a query ending in a PromQL comment, an
    alert name with hyphens (Sloth's own example), twelve nines, a service and an SLO whose
    names join like another pair's, and a file name holding template markers, which
    Prometheus would expand in Terry's description."""
    from terry.slo.rules import rules_yaml
    from terry.slo.spec import load_slos

    (tmp_path / "slos").mkdir()
    commented = CHECKOUT.replace(
        'error_query: sum(rate(http_requests_total{service="checkout",code=~"5.."}[{{.window}}]))',
        'error_query: |\n          sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))\n'
        "          # 5xx answers only",
    ).replace("objective: 99.9", "objective: 99.9999999999\n    alerting: {name: slo_a-b_fail}")
    (tmp_path / "slos" / '{{ query "up" }}.yml').write_text(commented)
    (tmp_path / "slos" / "a.yml").write_text(
        CHECKOUT.replace("service: checkout", "service: a-b").replace(
            "name: requests-availability", "name: c"
        )
        + "---\n"
        + CHECKOUT.replace("service: checkout", "service: a").replace(
            "name: requests-availability", "name: b-c"
        )
    )
    (tmp_path / "rules.yml").write_text(rules_yaml(load_slos(tmp_path)))
    check = subprocess.run(
        ["promtool", "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 18 rules found" in check.stdout


# Templates at the edges of Go's parser: Terry's check and promtool's must agree on each.
TEMPLATES = [
    "plain text }} with a stray close",
    "{{ $value | humanize }} on {{ $labels.instance }}",
    "{{ $value | humanize",
    "{{ }}",
    "{{ if gt $value 1.0 }}high",
    "{{ if gt $value 1.0 }}high{{ else }}low{{ end }}",
    "{{ end }}",
    '{{ "}}" }} quoted close',
    '{{ "unclosed }}',
    "{{/* a comment */}} after",
    "{{- /* trimmed */ -}} after",
    "{{/* never closed }}",
    "{{ range $k, $v := $labels }}{{ $k }}={{ $v }} {{ end }}",
    "{{ with $labels.job }}{{ . }}{{ end }}",
]


@pytest.mark.parametrize("text", TEMPLATES)
def test_terry_refuses_the_templates_promtool_refuses(text: str, tmp_path: Path) -> None:
    from terry.slo.fields import template_problem

    rule = {"alert": "X", "expr": "vector(1)", "annotations": {"summary": text}}
    (tmp_path / "r.yml").write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [rule]}]}))
    check = subprocess.run(
        ["promtool", "check", "rules", str(tmp_path / "r.yml")], capture_output=True, text=True
    )
    assert (template_problem(text) is None) is (check.returncode == 0), (
        template_problem(text),
        check.stdout + check.stderr,
    )


def _proposal(store: Store, *, source: str, host: str, risk: str) -> int:
    """A proposal checked by its dry run, as the propose and dry-run steps leave it."""
    return stored_proposal(
        store,
        fingerprint=f"slo-{source}-{host}",
        hosts=[host],
        source=source,
        title="DiskUsageHigh" if source == "alert" else "drift",
        risk=risk,
    )


def test_the_gate_step_freezes_protects_and_tells(shop: Cli, tmp_path: Path) -> None:
    """Through the real gate step (main's policies, regorus, the store): a drift fix on
    search's exhausted budget is denied and the owners are told; an alert's fix on
    checkout's burning budget is marked a priority."""
    store = Store(f"sqlite:///{tmp_path / 'terry.db'}")
    store.migrate()
    pipeline = build_pipeline(config_for(shop.repo), store)
    gate = pipeline.steps.gate

    drift = _proposal(store, source="drift", host="web-02", risk="low")
    denied = gate(drift)
    assert denied.verdict is Verdict.DENY
    assert any("service search has spent its error budget" in r for r in denied.reasons)
    with store.session() as session:
        judged = session.get(ProposalRow, drift)
        assert judged.state == "denied"
        environment = judged.environment
        rows = session.scalars(select(AuditRow).where(AuditRow.entity == BUDGET_ENTITY)).all()
        events = load_events(session, rows)
    assert [e.kind for e in events] == [EventKind.BUDGET_EXHAUSTED]
    assert events[0].host == "web-02" and "error budget exhausted: search" in events[0].reason
    # the proposal the gate judged, for routes to match on: the inventory's environment (a
    # drift incident has no alert label to take one from), its decision
    assert environment and events[0].environment == environment
    assert (events[0].proposal_id, events[0].decision) == (drift, "deny")
    # the owners: a route for search's owners gets it, checkout's does not
    assert events[0].services == ("search",)
    owners = {
        name: RouteConfig(
            name=name, url_env="X", events=["budget-exhausted"], services=frozenset({service})
        )
        for name, service in (("search-team", "search"), ("shop-team", "checkout"))
    }
    assert matches(owners["search-team"], events[0])
    assert not matches(owners["shop-team"], events[0])
    assert matches(owners["search-team"], Event.from_payload(events[0].to_payload()))

    # a fix restoring search's budget goes on; the owners were told of this exhaustion
    # already: neither it nor its second judging (hosts joined it, its dry run ran again)
    # tells them again, nor does the next drift run's proposal
    restore = _proposal(store, source="alert", host="web-02", risk="high")
    for _ in range(2):
        assert gate(restore).verdict is Verdict.REVIEW
        with store.session() as session:
            session.get(ProposalRow, restore).state = "checked"
    assert gate(_proposal(store, source="drift", host="web-02", risk="low")).verdict is (
        Verdict.DENY
    )
    assert _told(store) == [(drift, "deny")]
    # the budget recovers (search's objective lowered on main to 98%: 1.2% failing is 40%
    # of its budget), a proposal meets it recovered: nobody is told that; once it is spent
    # again (the objective back), the next proposal tells the owners again
    spec = shop.repo / "slos" / "search.yml"
    for target, source in (("0.98", "drift"), ("0.99", "forecast")):
        spec.write_text(SEARCH.replace("target: 0.99", f"target: {target}"))
        Repo(shop.repo).commit_paths(["slos"], f"search: objective {target}")
        gate(_proposal(store, source=source, host="web-02", risk="high"))
    again = _told(store)
    assert [d for _p, d in again] == ["deny", "deny"] and again[0] == (drift, "deny"), again
    with store.session() as session:
        states = session.scalars(
            select(AuditRow.to_state).where(AuditRow.entity == BUDGET_ENTITY).order_by(AuditRow.id)
        ).all()
    assert states == ["exhausted", "recovered", "exhausted"]

    fix = _proposal(store, source="alert", host="web-01", risk="high")
    decision = gate(fix)
    assert decision.verdict is Verdict.REVIEW  # high risk: a person looks, first in line
    assert (
        "priority: this fix protects the error budget of checkout (burning over 1h/5m)"
        in decision.reasons
    )
    with store.session() as session:
        row = session.get(ProposalRow, fix)
        assert row.state == "awaiting_review" and row.reasons == list(decision.reasons)


def _told(store: Store) -> list[tuple[int | None, str | None]]:
    """(proposal, decision) of every ``budget-exhausted`` event, oldest first."""
    with store.session() as session:
        rows = session.scalars(
            select(AuditRow).where(AuditRow.entity == BUDGET_ENTITY).order_by(AuditRow.id)
        ).all()
        return [(e.proposal_id, e.decision) for e in load_events(session, rows)]


def test_an_inventory_edit_taking_a_host_out_of_a_spent_service_is_a_change_to_it(
    prometheus: str, tmp_path: Path
) -> None:
    """web-02 serves search, whose budget is spent: an edit that moves it to another service
    is judged on search's budget too (before the edit and after), so it is denied like any
    other edit on the service, not passed on the labels it leaves behind."""
    cli = make_cli(_shop(tmp_path / "ops", prometheus))
    for label in ("service=unlisted", "role=api"):
        edit = cli(
            "inventory", "set", "web-02", f"terry_labels.{label}", "--no-converge", "--no-apply"
        )
        said = edit.stdout + edit.stderr
        assert "gate: deny — service search has spent its error budget" in said, said
        assert "this inventory edit waits until the budget recovers" in said


def test_the_weekly_report_shows_budget_consumed_and_its_incidents(shop: Cli) -> None:
    config = config_for(shop.repo)
    store = Store(config.store_url)
    store.migrate()
    ours = _proposal(store, source="alert", host="web-01", risk="low")
    drifted = _proposal(store, source="drift", host="web-01", risk="low")
    with store.session() as session:
        incident = session.get(ProposalRow, ours).incident_id
        drift = session.get(ProposalRow, drifted).incident_id
    weekly = shop("report", "weekly", "--format", "json")
    assert weekly.exit_code == 0, weekly.stderr
    report = yaml.safe_load(weekly.stdout)["budgets"]
    shown = shop("report", "weekly")
    assert shown.exit_code == 0 and "## Error budgets" in shown.stdout
    rows = {r["service"]: r for r in report}
    assert set(rows) == {"checkout", "ledger", "search"}
    checkout = rows["checkout"]
    assert checkout["hosts"] == ["web-01"] and incident in checkout["incidents"]
    assert drift not in checkout["incidents"]  # a drift fix spends no error budget
    # from the start of the window (6 days before today) to now, out of a 30-day budget
    window = time.time() - (time.time() // DAY - 6) * DAY
    ratio = (0.0008 * (window - 3600) + 0.02 * 3600) / window
    expected = ratio / 0.001 * window / (30 * DAY) * 100
    assert checkout["consumed_percent"] == pytest.approx(expected, rel=0.03)
    # search: 1.2% errors against a 1% budget over 28 days
    assert rows["search"]["consumed_percent"] == pytest.approx(
        1.2 * window / (28 * DAY) * 100, rel=0.03
    )
    assert rows["search"]["incidents"] == [] and rows["ledger"]["consumed_percent"] is None


def test_a_fix_that_protects_a_burning_budget_is_carried_first(
    prometheus: str, tmp_path: Path
) -> None:
    """One webhook, two incidents: db-01's full disk came first (ledger: its budget
    unknown), web-01's service down second (checkout: burning over 1h/5m). Checkout's fix
    is proposed, dry-run and decided first, and Terry says why; db-01's follows (the example
    hosts are not started: the dry runs fail, which does not change the order)."""
    cli = make_cli(_shop(tmp_path / "ops", prometheus))
    body = payload(
        [
            alert("DiskUsageHigh", fingerprint="disk-db-01", host="db-01", mountpoint="/srv/data"),
            alert("ServiceDown", fingerprint="down-web-01", host="web-01", service="web"),
        ]
    )
    (tmp_path / "two.json").write_text(body)
    result = cli("alert", "ingest", str(tmp_path / "two.json"), "--no-apply")
    assert result.exit_code == 0, result.stderr or result.stdout
    said = result.stdout + result.stderr
    assert (
        "incident 2 goes before incident 1: this fix protects the error budget of checkout "
        "(burning over 1h/5m)"
    ) in said
    listed = cli("proposals", "list", "-o", "json")
    assert listed.exit_code == 0, listed.stderr
    rows = sorted(yaml.safe_load(listed.stdout), key=lambda r: r["id"])
    assert [(r["remedy"], r["hosts"], r["incident_id"]) for r in rows] == [
        ("service-down", ["web-01"], 2),
        ("disk-usage-high", ["db-01"], 1),
    ]
