"""SLO specs in both formats, their errors, and the budget and burn-rate arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from terry.errors import ConfigError
from terry.inventory.hosts import Host, Inventory, load_inventory
from terry.slo.budget import (
    PAIRS,
    BudgetState,
    compute_budget,
    pair_warnings,
    percent_text,
    worst,
)
from terry.slo.services import (
    EXHAUSTED,
    RECOVERED,
    exhausted_told,
    label_warnings,
    priority_note,
    protects,
    recovered_told,
    service_budgets,
    services_of,
    still_told,
    told_services,
    urgency,
)
from terry.slo.spec import DEFAULT_PERIOD, load_slos, parse_text
from terry.slo.status import SLOStatus, prom_duration
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

SLOTH = """
version: "prometheus/v1"
service: checkout
labels: {owner: team-shop}
slos:
  - name: requests-availability
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total[{{.window}}]))
    alerting: {name: CheckoutErrors, page_alert: {labels: {severity: critical}}}
  - name: latency
    objective: 99
    sli:
      raw:
        error_ratio_query: 1 - avg(rate(fast_total[{{.window}}]) / rate(all_total[{{.window}}]))
"""

OPENSLO = """
apiVersion: openslo/v1
kind: Service
metadata: {name: search}
spec: {description: the search service}
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: search-availability}
spec:
  service: search
  budgetingMethod: Occurrences
  timeWindow: [{duration: 7d, isRolling: true}]
  objectives: [{targetPercent: 99.5}]
  indicator:
    spec:
      ratioMetric:
        counter: true
        good: {metricSource: {type: Prometheus, spec: {query: 'requests{code!~"5.."}'}}}
        total: {metricSource: {type: prometheus, spec: {query: requests}}}
---
apiVersion: openslo/v1
kind: SLI
metadata: {name: search-errors}
spec:
  ratioMetric:
    bad:
      metricSource:
        type: Prometheus
        spec: {query: 'sum(increase(errors_total[{{.window}}]))'}
    total:
      metricSource:
        type: Prometheus
        spec: {query: 'sum(increase(requests[{{.window}}]))'}
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: search-errors}
spec:
  service: search
  indicatorRef: search-errors
  objectives: [{target: 0.999}]
"""


def test_sloth_spec_reads_events_and_raw_slis() -> None:
    avail, latency = parse_text(SLOTH, "slos/checkout.yml")
    assert (avail.service, avail.name, avail.objective) == (
        "checkout",
        "requests-availability",
        99.9,
    )
    assert avail.period_seconds == DEFAULT_PERIOD and avail.format == "sloth"
    assert avail.labels == {"owner": "team-shop"}
    assert avail.error_ratio_query("5m") == (
        'sum((sum(rate(http_requests_total{code=~"5.."}[5m]))) or vector(0)) '
        "/ sum(sum(rate(http_requests_total[5m])))"
    )
    assert avail.budget_fraction == pytest.approx(0.001)
    assert latency.total is None
    assert latency.error_ratio_query("1h") == (
        "(1 - avg(rate(fast_total[1h]) / rate(all_total[1h])))"
    )


def test_openslo_good_over_total_bad_by_reference_and_other_kinds_skipped() -> None:
    avail, errors = parse_text(OPENSLO, "slos/search.yml")
    assert (avail.service, avail.objective, avail.period_seconds) == ("search", 99.5, 7 * 86400)
    assert avail.good and avail.format == "openslo"
    assert avail.error_ratio_query("30m") == (
        '1 - sum((sum(rate(requests{code!~"5.."}[30m]))) or vector(0)) '
        "/ sum(sum(rate(requests[30m])))"
    )
    assert errors.objective == pytest.approx(99.9) and not errors.good
    assert errors.period_seconds == DEFAULT_PERIOD
    assert errors.error_ratio_query("6h").startswith("sum((sum(increase(errors_total[6h])))")


RAW = """
apiVersion: openslo/v1
kind: SLO
metadata: {name: ledger-writes}
spec:
  service: ledger
  objectives: [{targetPercent: 99.5}]
  indicator:
    spec:
      ratioMetric:
        rawType: failure
        raw:
          metricSource: {type: Prometheus, spec: {query: 'slo:ledger_errors:ratio'}}
"""


def test_openslo_raw_ratios_of_failures_and_of_successes() -> None:
    [failures] = parse_text(RAW, "slos/ledger.yml")
    assert failures.total is None and not failures.good and failures.objective == 99.5
    assert failures.error_ratio_query("5m") == ("(avg(avg_over_time(slo:ledger_errors:ratio[5m])))")
    windowed = RAW.replace("rawType: failure", "rawType: success").replace(
        "query: 'slo:ledger_errors:ratio'", "query: 'avg(rate(ok_total[{{.window}}]))'"
    )
    [successes] = parse_text(windowed, "slos/ledger.yml")
    assert successes.error_ratio_query("1h") == "(1 - (avg(rate(ok_total[1h]))))"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("        rawType: failure\n", ""), "ratioMetric.rawType: say success or failure"),
        (("rawType: failure", "rawType: maybe"), "rawType: Input should be 'success' or"),
        (
            (
                "rawType: failure",
                "rawType: failure\n        total: {metricSource: "
                "{type: Prometheus, spec: {query: t}}}",
            ),
            "ratioMetric: raw stands alone (no good, bad or total)",
        ),
        (("'slo:ledger_errors:ratio'", "'sum(x)'"), "raw.metricSource.spec.query: without"),
        (("raw:", "bogus:"), "ratioMetric: give total (with good or bad), or raw"),
    ],
)
def test_a_bad_raw_ratio_says_what_is_missing(change: tuple[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_text(RAW.replace(*change), "slos/x.yml")
    assert message in str(caught.value), str(caught.value)


def test_the_examples_parse() -> None:
    slos = load_slos(REPO_ROOT / "examples")
    assert [(s.service, s.format) for s in slos] == [("checkout", "sloth"), ("search", "openslo")]
    assert slos[1].period_seconds == 28 * 86400 and slos[1].objective == 99.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            SLOTH.replace("objective: 99.9", "objective: 100"),
            "slos/x.yml: slos[0].objective: Input should be less than 100",
        ),
        (
            SLOTH.replace("[{{.window}}]))\n        total", "[5m]))\n        total"),
            "slos/x.yml: slos[0].sli.events.error_query: the query must say where the range "
            "goes with {{.window}}",
        ),
        (SLOTH.replace('"prometheus/v1"', '"prometheus/v2"'), "slos/x.yml: version: Input"),
        ("version: prometheus/v1\nservice: x\nslos: []\n", "slos/x.yml: slos: List should"),
        (
            SLOTH.replace("events:\n        error_query", "plugin: {id: x}\n      e:\n        q"),
            "slos/x.yml: slos[0].sli.plugin: SLI plugins are Sloth's own",
        ),
        (
            OPENSLO.replace("query: requests}", "query: 'sum(rate(requests[5m]))'}"),
            "slos/x.yml: spec.indicator.spec.ratioMetric.total.metricSource.spec.query: without "
            "{{.window}} the query must be a series selector",
        ),
        (
            OPENSLO.replace("type: prometheus", "type: Datadog"),
            "slos/x.yml: spec.indicator.spec.ratioMetric.total.metricSource.type: Terry reads "
            "Prometheus metric sources only",
        ),
        (
            OPENSLO.replace("budgetingMethod: Occurrences", "budgetingMethod: Timeslices"),
            "slos/x.yml: spec.budgetingMethod: Input should be 'Occurrences'",
        ),
        (
            OPENSLO.replace("indicatorRef: search-errors", "indicatorRef: nope"),
            "slos/x.yml: spec.indicatorRef: no SLI named 'nope'",
        ),
        (
            OPENSLO.replace("[{target: 0.999}]", "[{target: 0.999, targetPercent: 99.9}]"),
            "slos/x.yml: spec.objectives[0]: give exactly one of target and targetPercent",
        ),
        ("just: text\n", "slos/x.yml: neither a Sloth spec"),
        ("- a list\n", "slos/x.yml: document 1, item 1, is not a mapping"),
        ("7\n", "slos/x.yml: document 1 is not a mapping"),
    ],
)
def test_a_bad_spec_names_its_file_and_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_text(text, "slos/x.yml")
    assert str(caught.value).startswith(message), str(caught.value)


def test_the_same_slo_twice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "slos").mkdir()
    (tmp_path / "slos" / "a.yml").write_text(SLOTH)
    (tmp_path / "slos" / "b.yaml").write_text(SLOTH)
    with pytest.raises(
        ConfigError,
        match=r"slos/b.yaml: SLO checkout/requests-availability is also defined in slos/a.yml",
    ):
        load_slos(tmp_path)
    assert load_slos(tmp_path / "nowhere") == []


# -- the arithmetic -------------------------------------------------------------------------


def test_budget_remaining_and_burn_rates() -> None:
    # 99.9% over 30 days: 43.2 minutes of budget; 0.04% errors spent 40% of it
    budget = compute_budget(
        objective=99.9,
        period_seconds=30 * 86400,
        period_error_ratio=0.0004,
        window_error_ratios={"1h": 0.02, "5m": 0.015, "6h": 0.004, "30m": 0.01},
    )
    assert budget.budget_minutes == pytest.approx(43.2)
    assert budget.sli == pytest.approx(99.96)
    assert budget.remaining_percent == pytest.approx(60.0)
    assert budget.remaining_minutes == pytest.approx(25.92)
    assert budget.burn_rates == pytest.approx({"1h": 20.0, "5m": 15.0, "6h": 4.0, "30m": 10.0})
    assert budget.burning == ("1h/5m",)  # 6h burns 4x: under 6, whatever 30m says
    assert budget.state is BudgetState.OK


@pytest.mark.parametrize(
    ("ratio", "state", "left"),
    [
        (0.0, BudgetState.OK, 100.0),
        (0.00091, BudgetState.LOW, 9.0),
        (0.001, BudgetState.EXHAUSTED, 0.0),
        (0.0015, BudgetState.EXHAUSTED, -50.0),
        (None, BudgetState.UNKNOWN, None),
        (float("nan"), BudgetState.UNKNOWN, None),
    ],
)
def test_budget_states(ratio: float | None, state: BudgetState, left: float | None) -> None:
    budget = compute_budget(
        objective=99.9, period_seconds=86400, period_error_ratio=ratio, window_error_ratios={}
    )
    assert budget.state is state
    assert budget.remaining_percent == (None if left is None else pytest.approx(left))
    assert budget.burning == () and set(budget.burn_rates.values()) == {None}


def test_the_short_window_stops_a_pair_burning() -> None:
    budget = compute_budget(
        objective=99.0,
        period_seconds=30 * 86400,
        period_error_ratio=0.001,
        window_error_ratios={"1h": 0.2, "5m": 0.01, "6h": 0.07, "30m": 0.061},
    )
    assert budget.burning == ("6h/30m",)


@pytest.mark.parametrize(
    ("days", "fast", "slow"), [(30, 14.4, 6.0), (28, 13.44, 5.6), (7, 3.36, 1.4), (1, 0.48, 0.2)]
)
def test_burn_thresholds_are_the_same_share_of_any_periods_budget(
    days: int, fast: float, slow: float
) -> None:
    """2% of the period's budget in an hour, 5% in six (Sloth's figures for 30 and 28 days):
    a 7-day SLO burning 5x pages; the same burn on a 30-day SLO does not."""
    assert [p.threshold(days * 86400) for p in PAIRS] == [pytest.approx(fast), pytest.approx(slow)]
    burning = {"1h": 0.005, "5m": 0.005, "6h": 0.001, "30m": 0.001}  # 5x and 1x of 0.1%
    budget = compute_budget(
        objective=99.9,
        period_seconds=days * 86400,
        period_error_ratio=0.0001,
        window_error_ratios=burning,
    )
    assert budget.burning == (("1h/5m",) if fast < 5 else ()) + (("6h/30m",) if slow < 1 else ())
    # read over another span (terry slo status --period), judged by the SLO's own period
    judged = compute_budget(
        objective=99.9,
        period_seconds=30 * 86400,
        period_error_ratio=0.0001,
        window_error_ratios=burning,
        slo_period_seconds=days * 86400,
    )
    assert judged.burning == budget.burning


def test_worst_state_and_durations() -> None:
    assert worst([BudgetState.OK, BudgetState.LOW]) is BudgetState.LOW
    assert worst([BudgetState.LOW, BudgetState.UNKNOWN]) is BudgetState.UNKNOWN
    assert worst([BudgetState.UNKNOWN, BudgetState.EXHAUSTED]) is BudgetState.EXHAUSTED
    assert worst([]) is BudgetState.OK
    assert [prom_duration(s) for s in (30 * 86400, 6 * 3600, 300, 90)] == ["30d", "6h", "5m", "90s"]


def _host(name: str, service: str | None) -> Host:
    labels = {"service": service} if service else {}
    return Host(name, None, "production", None, labels)


def test_services_of_hosts_and_a_service_budget() -> None:
    hosts = [_host("web-01", "checkout"), _host("web-02", "checkout, search"), _host("db", None)]
    assert services_of(hosts) == {"checkout", "search"}
    inventory = Inventory({h.name: h for h in hosts})
    from terry.slo.services import hosts_of

    assert hosts_of("search", inventory) == ["web-02"]

    slo_a, slo_b = parse_text(SLOTH, "slos/checkout.yml")
    fast = compute_budget(
        objective=99.9,
        period_seconds=DEFAULT_PERIOD,
        period_error_ratio=0.0005,
        window_error_ratios={"1h": 0.02, "5m": 0.02, "6h": 0.001, "30m": 0.001},
    )
    low = compute_budget(
        objective=99.0,
        period_seconds=DEFAULT_PERIOD,
        period_error_ratio=0.0095,
        window_error_ratios={"1h": 0.01, "5m": 0.01, "6h": 0.01, "30m": 0.01},
    )
    budgets = service_budgets([SLOStatus(slo_a, fast), SLOStatus(slo_b, low)])
    view = budgets["checkout"].as_input()
    assert view["state"] == "low"
    assert view["budget_remaining_percent"] == pytest.approx(5.0)
    assert view["burn_rates"] == {"1h": 20.0, "5m": 20.0, "6h": 1.0, "30m": 1.0}
    assert view["burning"] == ["1h/5m"] and view["error"] is None

    gate = {"services": {"checkout": view}, "error": None}
    note = priority_note(gate, "alert")
    assert note == "priority: this fix protects the error budget of checkout (burning over 1h/5m)"
    assert priority_note(gate, "drift") is None
    calm = {**view, "burning": [], "state": "ok"}
    assert priority_note({"services": {"checkout": calm}}, "alert") is None

    # the worker reads one view for a whole batch and asks it of each fix's own hosts
    both = {"services": {"checkout": view, "search": calm}, "error": None}
    assert protects(both, [hosts[0]], "alert") == note  # web-01: checkout, burning
    assert protects(both, [_host("web-03", "search")], "alert") is None  # calm
    assert protects(both, [hosts[2]], "alert") is None  # db: no service
    assert protects(both, [hosts[0]], "forecast") is None  # not a fix of a live problem

    # which fix goes first among those that protect: the budget that needs it most
    spent = {**calm, "state": "exhausted", "budget_remaining_percent": -5.0}
    fleet = {
        "services": {
            "low": {**calm, "state": "low"},
            "burning": view,
            "spent": spent,
            "spent-burning": {**spent, "burning": ["6h/30m"]},
            "fine": calm,
        }
    }
    ranks = {
        name: urgency(fleet, [_host("h", name)])
        for name in ("spent-burning", "spent", "burning", "low", "fine", "none")
    }
    assert ranks == {"spent-burning": 4, "spent": 3, "burning": 2, "low": 1, "fine": 0, "none": 0}
    assert urgency(fleet, [_host("a", "low"), _host("b", "spent")]) == 3  # its worst


@pytest.mark.parametrize(
    ("left", "text"),
    [
        (9.9996, "9.9"),  # low: never "10.0", the line it is under
        (10.04, "10.0"),
        (0.0004, "0.0004"),  # left, not spent: never "0"
        (0.00995, "0.0099"),
        (1e-12, "0.000000000001"),
        (0.0, "0"),
        (-0.04, "-0.04"),
        (-250.0, "-250.0"),
        (57.25, "57.2"),
    ],
)
def test_a_budget_left_is_never_rounded_across_a_line(left: float, text: str) -> None:
    assert percent_text(left) == text


def test_an_exhaustion_is_told_once_until_a_gate_finds_it_recovered() -> None:
    """The budget audit rows, newest first: a service told exhausted stays told until a
    row says it recovered; a recovery of a service never told changes nothing."""
    told = [
        (EXHAUSTED, exhausted_told(["search", "ledger"], 3, "drift", "deny")),
        (RECOVERED, recovered_told(["search"], 2, "alert", "merge")),
        (EXHAUSTED, exhausted_told(["search"], 1, "drift", "deny")),
    ]
    assert still_told(told) == {"search", "ledger"}
    assert still_told(told[1:]) == set()
    assert still_told(told[2:]) == {"search"}
    assert still_told([]) == set()
    assert told_services(told[1][1]) == ("search",)
    assert told_services("some other reason: search") == ()


def test_service_labels_as_a_yaml_list_and_what_keeps_a_budget_from_the_gate(
    tmp_path: Path,
) -> None:
    """A list of services is those services (not the text of a list); a label that can name
    no service (a template), and an SLO no host serves, are said."""
    (tmp_path / "hosts.yml").write_text(
        """
all:
  children:
    web:
      vars: {terry_labels: {service: checkout}}
      hosts:
        web-01: {}
        web-02: {terry_labels: {role: web}}
        web-03: {terry_labels: {service: [checkout, search]}}
        web-04: {terry_labels: {service: "{{ svc_name }}"}}
"""
    )
    inventory = load_inventory(tmp_path, ["hosts.yml"])
    hosts = inventory.hosts
    assert services_of([hosts["web-03"]]) == {"checkout", "search"}
    assert services_of([hosts["web-01"]]) == {"checkout"}
    # Ansible's merge: web-02's own terry_labels replaces its group's, service included
    assert services_of([hosts["web-02"]]) == set()
    ledger = parse_text(SLOTH.replace("checkout", "ledger"), "slos/ledger.yml")
    said = label_warnings([*parse_text(SLOTH, "slos/checkout.yml"), *ledger], inventory)
    assert said[0] == (
        "host web-04: its label service names '{{ svc_name }}', which cannot be a service's "
        "name (a template is not rendered); it serves no SLO"
    )
    assert [w.split(" (")[0] for w in said[1:]] == [
        "ledger/requests-availability",
        "ledger/latency",
    ]
    assert "no host in the inventory serves ledger" in said[1]


def test_pairs_that_cannot_page_well_are_said_where_the_rules_are_written(
    tmp_path: Path,
) -> None:
    # 30 days: both pairs page well. A year at 90%: 175.2x can never be reached (every event
    # failing burns 10x). A day: 0.48x pages on a burn that would not spend the budget.
    assert pair_warnings(99.9, 30 * 86400) == []
    year = pair_warnings(90, 365 * 86400)
    assert year[0] == (
        "1h/5m can never page: it needs a burn above 175.2x, and at 90% every event "
        "failing burns 10x"
    )
    assert "0.48x, which would not spend the budget" in pair_warnings(99.9, 86400)[0]

    from terry.gitops.init import init_repository
    from tests.conftest import make_cli
    from tests.shop import git

    repo = init_repository(tmp_path / "ops").path
    (repo / "slos").mkdir()
    (repo / "slos" / "a.yml").write_text(SLOTH.replace("objective: 99.9", "objective: 90"))
    (repo / "slos" / "b.yml").write_text(OPENSLO.replace("duration: 7d", "duration: 1d"))
    git(repo, "add", "slos")
    git(repo, "commit", "-q", "-m", "slos")
    written = make_cli(repo)("slo", "rules", "--out", str(tmp_path / "rules.yml"))
    assert written.exit_code == 0, written.stderr
    assert "terry: warning:" in written.stderr and "which would not spend the budget" in (
        written.stderr
    )
    # 90% over 30 days: the fast pair asks for 14.4x, and every request failing is 10x
    warned = [line for line in written.stderr.splitlines() if "can never page" in line]
    assert warned == [
        "terry: warning: checkout/requests-availability (slos/a.yml): 1h/5m can never page: "
        "it needs a burn above 14.4x, and at 90% every event failing burns 10x"
    ]


def test_the_status_table_names_a_few_hosts_and_counts_the_rest() -> None:
    from terry.cli.slo import _hosts_cell

    assert _hosts_cell([]) == "none"
    assert _hosts_cell(["web-01", "web-02"]) == "web-01, web-02"
    fleet = [f"web-{n:02d}" for n in range(1, 13)]
    assert _hosts_cell(fleet) == "web-01, web-02, web-03 (+9 more)"
