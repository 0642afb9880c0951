"""Specs as people copy them from the Sloth and OpenSLO documentation (re-created here, in
the shapes those examples have): every valid one reads as written, every one Terry does not
support says so, naming the file and the field."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from terry.errors import ConfigError
from terry.promql import promql_problem
from terry.slo.budget import compute_budget, objective_text
from terry.slo.rules import rule_groups
from terry.slo.spec import DEFAULT_PERIOD, MIN_ELAPSED, load_slos, parse_text

pytestmark = pytest.mark.unit

DAY = 86400.0


def _refused(text: str, message: str, source: str = "slos/x.yml: ") -> str:
    """The ConfigError reading ``text`` raises, which names the file and says ``message``."""
    with pytest.raises(ConfigError) as caught:
        parse_text(text, "slos/x.yml")
    assert str(caught.value).startswith(f"{source}{message}"), str(caught.value)
    return str(caught.value)


# -- Sloth prometheus/v1 -------------------------------------------------------------------

# Sloth's getting-started.yml: one service, one events SLO, labels quoted, an alerting block.
SLOTH_GETTING_STARTED = """
version: "prometheus/v1"
service: "myservice"
labels:
  owner: "myteam"
  repo: "myorg/myservice"
  tier: "2"
slos:
  # 5xx and 429 are errors
  - name: "requests-availability"
    objective: 99.9
    description: "Availability of the HTTP responses."
    sli:
      events:
        error_query: sum(rate(http_request_duration_seconds_count{job="myservice",code=~"(5..|429)"}[{{.window}}]))
        total_query: sum(rate(http_request_duration_seconds_count{job="myservice"}[{{.window}}]))
    alerting:
      name: MyServiceHighErrorRate
      labels:
        category: "availability"
      annotations:
        summary: "High error rate on 'myservice' responses"
      page_alert:
        labels:
          severity: pageteam
          routing_key: myteam
      ticket_alert:
        labels:
          severity: "slack"
          slack_channel: "#alerts-myteam"
"""  # noqa: E501

ERRORS_5M = 'sum(rate(http_request_duration_seconds_count{job="myservice",code=~"(5..|429)"}[5m]))'
TOTAL_5M = 'sum(rate(http_request_duration_seconds_count{job="myservice"}[5m]))'


def test_sloth_getting_started() -> None:
    [slo] = parse_text(SLOTH_GETTING_STARTED, "slos/myservice.yml")
    assert (slo.service, slo.name, slo.format) == ("myservice", "requests-availability", "sloth")
    assert slo.objective == 99.9 and slo.budget_fraction == pytest.approx(0.001)
    assert slo.period_seconds == DEFAULT_PERIOD == 30 * DAY and slo.calendar is None
    assert slo.description == "Availability of the HTTP responses."
    assert slo.labels == {"owner": "myteam", "repo": "myorg/myservice", "tier": "2"}
    assert slo.error_ratio_query("5m") == f"sum(({ERRORS_5M}) or vector(0)) / sum({TOTAL_5M})"


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("objective: 99.9", 'objective: "99.9"'),  # a string
        ("objective: 99.9", "objective: '99.90'"),
        ("[{{.window}}]))\n        total", "[{{ .window }}]))\n        total"),  # Go spacing
        ("[{{.window}}]))\n    alerting", "[{{ .window}}]))\n    alerting"),
        ('tier: "2"', "tier: 2"),  # an unquoted number: the label is still "2"
    ],
)
def test_sloth_spellings_read_the_same(before: str, after: str) -> None:
    text = SLOTH_GETTING_STARTED.replace(before, after)
    assert text != SLOTH_GETTING_STARTED
    [slo] = parse_text(text, "slos/myservice.yml")
    assert slo.objective == 99.9 and slo.labels["tier"] == "2"
    assert slo.error_ratio_query("5m") == f"sum(({ERRORS_5M}) or vector(0)) / sum({TOTAL_5M})"


# Sloth's home-wifi.yml: two SLOs in one file, subqueries, `OR on() vector(0)` in the query.
SLOTH_HOME_WIFI = """
# the wifi at home
version: "prometheus/v1"
service: "home-wifi"
labels:
  cluster: "valhalla"
  component: "ubiquiti"
  context: "home"
slos:
  - name: "good-wifi-client-satisfaction"
    objective: 95
    description: "Warns that the wifi at home is not good."
    sli:
      events:
        error_query: sum_over_time((count(unifipoller_client_satisfaction_ratio < 0.75))[{{.window}}:]) OR on() vector(0)
        total_query: sum_over_time((count(unifipoller_client_satisfaction_ratio))[{{.window}}:])
    alerting:
      name: GoodWifiClientSatisfaction
      page_alert:
        labels:
          severity: home
      ticket_alert:
        labels:
          severity: warning

  - name: "risk-wifi-client-satisfaction"
    objective: 99.9
    description: "Warns that something is very wrong with the wifi at home."
    sli:
      events:
        error_query: sum_over_time((count(unifipoller_client_satisfaction_ratio < 0.5))[{{.window}}:]) OR on() vector(0)
        total_query: sum_over_time((count(unifipoller_client_satisfaction_ratio))[{{.window}}:])
    alerting:
      name: RiskWifiClientSatisfaction
      page_alert:
        labels:
          severity: home
      ticket_alert:
        labels:
          severity: warning
"""  # noqa: E501


def test_sloth_home_wifi_two_slos_in_one_file() -> None:
    good, risk = parse_text(SLOTH_HOME_WIFI, "slos/home-wifi.yml")
    assert [(s.name, s.objective) for s in (good, risk)] == [
        ("good-wifi-client-satisfaction", 95.0),
        ("risk-wifi-client-satisfaction", 99.9),
    ]
    assert (
        good.labels
        == risk.labels
        == {
            "cluster": "valhalla",
            "component": "ubiquiti",
            "context": "home",
        }
    )
    assert risk.error_ratio_query("1h") == (
        "sum((sum_over_time((count(unifipoller_client_satisfaction_ratio < 0.5))[1h:]) "
        "OR on() vector(0)) or vector(0)) "
        "/ sum(sum_over_time((count(unifipoller_client_satisfaction_ratio))[1h:]))"
    )


# Sloth's raw-home-wifi.yml: a raw error ratio written as a block over several lines.
SLOTH_RAW_HOME_WIFI = """
version: "prometheus/v1"
service: "home-wifi"
labels:
  cluster: "valhalla"
slos:
  - name: "wifi-client-satisfaction"
    objective: 95
    description: "The average satisfaction of the wifi connections."
    sli:
      raw:
        # one minus the average satisfaction is the error ratio
        error_ratio_query: |
          1 - (
            sum(sum_over_time(unifipoller_client_satisfaction_ratio[{{.window}}]))
            /
            sum(count_over_time(unifipoller_client_satisfaction_ratio[{{.window}}]))
          )
    alerting:
      name: WifiClientSatisfaction
      page_alert:
        labels:
          severity: home
"""


def test_sloth_raw_error_ratio() -> None:
    [slo] = parse_text(SLOTH_RAW_HOME_WIFI, "slos/home-wifi.yml")
    assert slo.total is None and slo.objective == 95.0 and slo.period_seconds == 30 * DAY
    query = slo.error_ratio_query("30m")
    assert query.startswith("(1 - (\n") and query.endswith(")\n))")
    assert "sum(sum_over_time(unifipoller_client_satisfaction_ratio[30m]))" in query
    assert "sum(count_over_time(unifipoller_client_satisfaction_ratio[30m]))" in query
    assert "{{" not in query


# Sloth's multifile.yml: two services, one document each, the same SLO name in both.
SLOTH_MULTIFILE = f"""---
{SLOTH_GETTING_STARTED}
---
version: "prometheus/v1"
service: "myservice2"
labels:
  owner: "myteam2"
  tier: "1"
slos:
  - name: "requests-availability"
    objective: 99.99
    sli:
      events:
        error_query: sum(rate(http_request_duration_seconds_count{{job="myservice",code=~"(5..|429)"}}[{{{{.window}}}}]))
        total_query: sum(rate(http_request_duration_seconds_count{{job="myservice"}}[{{{{.window}}}}]))
    alerting:
      name: MyServiceHighErrorRate
"""  # noqa: E501


def test_sloth_multifile(tmp_path: Path) -> None:
    (tmp_path / "slos").mkdir()
    (tmp_path / "slos" / "multifile.yml").write_text(SLOTH_MULTIFILE)
    one, two = load_slos(tmp_path)
    assert [(s.key, s.objective, s.labels["owner"]) for s in (one, two)] == [
        ("myservice/requests-availability", 99.9, "myteam"),
        ("myservice2/requests-availability", 99.99, "myteam2"),
    ]
    assert two.budget_fraction == pytest.approx(0.0001)
    assert two.error_ratio_query("5m") == one.error_ratio_query("5m")


# Sloth's no-alerts.yml and kubernetes-apiserver.yml: block queries, SLO-level labels.
SLOTH_BLOCKS = """
version: "prometheus/v1"
service: "k8s-apiserver"
labels:
  cluster: "valhalla"
  component: "kubernetes"
slos:
  - name: "requests-latency"
    objective: 99
    labels:
      category: latency
    sli:
      events:
        error_query: |
          (
            sum(rate(apiserver_request_duration_seconds_count{verb!="WATCH"}[{{.window}}]))
            -
            sum(rate(apiserver_request_duration_seconds_bucket{le="0.4",verb!="WATCH"}[{{.window}}]))
          )
        total_query: sum(rate(apiserver_request_duration_seconds_count{verb!="WATCH"}[{{.window}}]))
    alerting:
      page_alert:
        disable: true
      ticket_alert:
        disable: true
"""


def test_sloth_block_queries_and_slo_labels() -> None:
    [slo] = parse_text(SLOTH_BLOCKS, "slos/k8s.yml")
    assert slo.objective == 99.0
    assert slo.labels == {"cluster": "valhalla", "component": "kubernetes", "category": "latency"}
    assert slo.errors.startswith("(\n  sum(rate(") and slo.errors.endswith(")")
    query = slo.error_ratio_query("6h")
    assert '{le="0.4",verb!="WATCH"}[6h]' in query and "{{" not in query
    assert query.endswith(
        '/ sum(sum(rate(apiserver_request_duration_seconds_count{verb!="WATCH"}[6h])))'
    )


def test_sloths_labels_and_alerting_shape_the_rules_as_sloth_does() -> None:
    """The spec's labels go on every rule; alerting names the alerts and labels them
    (page_alert over alerting, both over Terry's severity, never over the labels Terry
    reads back); page_alert.disable writes no alert at all."""
    [started] = parse_text(SLOTH_GETTING_STARTED, "slos/myservice.yml")
    [blocks] = parse_text(SLOTH_BLOCKS, "slos/k8s.yml")
    recordings, alerts, quiet = rule_groups([started, blocks])
    team = {"owner": "myteam", "repo": "myorg/myservice", "tier": "2"}
    for rule in recordings["rules"]:
        assert rule["labels"] == {
            **team,
            "slo_service": "myservice",
            "slo_name": "requests-availability",
            "slo_objective": "99.9",
        }
    assert [a["alert"] for a in alerts["rules"]] == ["MyServiceHighErrorRate"] * 2
    for alert in alerts["rules"]:
        assert alert["labels"] == {
            **team,
            "severity": "pageteam",
            "category": "availability",
            "routing_key": "myteam",
            "service": "myservice",
            "slo_service": "myservice",
            "slo_name": "requests-availability",
            "burn_window": alert["labels"]["burn_window"],
        }
        assert alert["annotations"]["summary"] == "High error rate on 'myservice' responses"
        assert "description" in alert["annotations"]  # Terry's, where the spec says none
    # the k8s spec disables its page alert: its recordings only
    assert quiet["name"].endswith("-recordings") and quiet["rules"][0]["labels"]["category"]
    assert [g["name"] for g in rule_groups([blocks])] == [quiet["name"]]


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        ('owner: "myteam"', '"team-name": "myteam"', "labels: 'team-name' is not a Prometheus"),
        (
            "name: MyServiceHighErrorRate",
            'name: "My\\nAlert"',
            "slos[0].alerting.name: String should",
        ),
        ("routing_key: myteam", "__name__: x", "slos[0].alerting.page_alert.labels: '__name__'"),
    ],
)
def test_names_that_go_on_rules_must_be_prometheus_names(
    before: str, after: str, message: str
) -> None:
    _refused(SLOTH_GETTING_STARTED.replace(before, after), message)


@pytest.mark.parametrize(
    ("after", "message"),
    [
        (
            'summary: "{{ $value | humanize"',
            "an action '{{ $value | humanize' is not closed with }}",
        ),
        ('summary: "{{ if $labels.x }}on"', "is not closed with {{ end }}"),
        ('summary: "{{ }}"', "an action {{ }} is empty"),
    ],
)
def test_an_annotation_prometheus_could_not_read_as_a_template_is_refused(
    after: str, message: str
) -> None:
    """Prometheus expands an alerting rule's annotations and labels as Go templates and
    refuses the whole rule file when one does not parse: the spec's mistake, said as one."""
    text = SLOTH_GETTING_STARTED.replace(
        """summary: "High error rate on 'myservice' responses\"""", after
    )
    said = _refused(text, "slos[0].alerting.annotations: summary: ")
    assert message in said and "Prometheus reads it as a Go template" in said, said


def test_an_alert_name_is_any_one_line_text_as_sloth_s_own_examples_write_it() -> None:
    # Sloth's victoria-metrics example: the alertname is a label value, not a metric name
    named = "slo_foo-bar_grpc-latency-percentile-90_fail"
    [slo] = parse_text(
        SLOTH_GETTING_STARTED.replace("name: MyServiceHighErrorRate", f"name: {named}"),
        "slos/x.yml",
    )
    assert {r["alert"] for r in rule_groups([slo])[1]["rules"]} == {named}


def test_sloth_sli_plugins_are_refused_by_name() -> None:
    # Sloth's plugin-getting-started.yml
    text = SLOTH_GETTING_STARTED.replace(
        "      events:\n        error_query: sum(rate(http_request_duration_seconds_count"
        '{job="myservice",code=~"(5..|429)"}[{{.window}}]))\n        total_query: '
        'sum(rate(http_request_duration_seconds_count{job="myservice"}[{{.window}}]))\n',
        "      plugin:\n        id: getting_started_availability\n        options:\n"
        '          job: myservice\n          filter: f1="v1"\n',
    )
    assert "plugin:" in text
    message = _refused(text, "slos[0].sli.plugin: SLI plugins are Sloth's own")
    assert "getting_started_availability" in message and "sli.events" in message


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        # Sloth's slo-plugin-getting-started.yml: a chain for every SLO of the spec
        (
            "slos:\n",
            "slo_plugins:\n  chain:\n    - id: sloth.dev/core/error_budget_exhausted_alert/v1\n"
            "slos:\n",
            "slo_plugins: Sloth's SLO plugins (sloth.dev/core/error_budget_exhausted_alert/v1)",
        ),
        # one SLO's own: overriding Sloth's rules with none of its own
        (
            "    alerting:",
            "    plugins:\n      overridePrevious: true\n    alerting:",
            "slos[0].plugins: Sloth's SLO plugins change the rules Sloth writes",
        ),
    ],
)
def test_sloth_slo_plugins_are_refused_never_read_as_if_absent(
    before: str, after: str, message: str
) -> None:
    text = SLOTH_GETTING_STARTED.replace(before, after, 1)
    assert after in text
    _refused(text, message)
    # an empty chain changes nothing: read
    parse_text(
        SLOTH_GETTING_STARTED.replace("slos:\n", "slo_plugins: {chain: []}\nslos:\n", 1), "s.yml"
    )


def test_sloth_events_and_raw_together_are_refused() -> None:
    text = SLOTH_GETTING_STARTED.replace(
        "    alerting:", "      raw: {error_ratio_query: 'x[{{.window}}]'}\n    alerting:"
    )
    _refused(text, "slos[0].sli: give events or raw, not both")


def test_sloth_kubernetes_resource_is_refused_not_skipped() -> None:
    text = """
apiVersion: sloth.slok.dev/v1
kind: PrometheusServiceLevel
metadata: {name: sloth-slo-my-service, namespace: monitoring}
spec:
  service: myservice
  slos:
    - name: requests-availability
      objective: 99.9
      sli:
        events:
          errorQuery: sum(rate(x{code=~"5.."}[{{.window}}]))
          totalQuery: sum(rate(x[{{.window}}]))
"""
    message = _refused(text, "apiVersion: sloth.slok.dev/v1 (PrometheusServiceLevel)")
    assert "version: prometheus/v1" in message


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        ("objective: 99.9", "objective: 100", "slos[0].objective: Input should be less than 100"),
        ("objective: 99.9", "objective: 99.9%", "slos[0].objective: Input should be a valid"),
        (
            "[{{.window}}]))\n        total",
            "[5m]))\n        total",
            "slos[0].sli.events.error_query: the query must say where the range goes",
        ),
        ('"prometheus/v1"', '"prometheus/v2"', "version: Input should be 'prometheus/v1'"),
    ],
)
def test_sloth_mistakes(before: str, after: str, message: str) -> None:
    _refused(SLOTH_GETTING_STARTED.replace(before, after), message)


# -- OpenSLO v1 ----------------------------------------------------------------------------

# The README's SLO with an inline indicator (its metric source made Prometheus), in a file
# that also holds a Service document.
OPENSLO_INLINE = """
apiVersion: openslo/v1
kind: Service
metadata:
  name: foo
  displayName: Foo
spec:
  description: The foo service
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: foo-slo
  displayName: Foo SLO
  labels:
    organization: acme
    team:
      - identity
      - rbac
spec:
  service: foo
  indicator:
    metadata:
      name: foo-error
      displayName: Foo Error
    spec:
      ratioMetric:
        counter: true
        good:
          metricSource:
            type: Prometheus
            spec:
              query: http_requests_total{service="foo",code!~"5.."}
        total:
          metricSource:
            type: Prometheus
            spec:
              query: http_requests_total{service="foo"}
  timeWindow:
    - duration: 28d
      isRolling: true
  budgetingMethod: Occurrences
  objectives:
    - displayName: Foo Total Errors
      target: 0.98
"""

FOO_GOOD_1H = 'sum(rate(http_requests_total{service="foo",code!~"5.."}[1h]))'
FOO_TOTAL_1H = 'sum(rate(http_requests_total{service="foo"}[1h]))'


def test_openslo_inline_indicator_with_a_service_document() -> None:
    [slo] = parse_text(OPENSLO_INLINE, "slos/foo.yml")
    assert (slo.service, slo.name, slo.format) == ("foo", "foo-slo", "openslo")
    assert slo.objective == 98.0 and slo.budget_fraction == pytest.approx(0.02)
    assert slo.period_seconds == 28 * DAY and slo.calendar is None
    assert slo.description == "Foo SLO"  # metadata.displayName, without spec.description
    assert slo.labels == {"organization": "acme", "team": "identity,rbac"}
    assert slo.good
    assert slo.error_ratio_query("1h") == (
        f"1 - sum(({FOO_GOOD_1H}) or vector(0)) / sum({FOO_TOTAL_1H})"
    )


@pytest.mark.parametrize(
    ("before", "after", "objective"),
    [
        ("target: 0.98", "targetPercent: 98", 98.0),
        ("target: 0.98", "targetPercent: 99.95", 99.95),
        ("target: 0.98", "target: 0.9995", 99.95),
        ("target: 0.98", "target: 0.999", 99.9),
    ],
)
def test_openslo_target_and_target_percent(before: str, after: str, objective: float) -> None:
    [slo] = parse_text(OPENSLO_INLINE.replace(before, after), "slos/foo.yml")
    assert slo.objective == objective


@pytest.mark.parametrize(
    ("window", "seconds"),
    [
        ("    - duration: 2w\n      isRolling: true\n", 14 * DAY),
        ("    - duration: 7d\n", 7 * DAY),  # isRolling omitted, no calendar: rolling
        ("    - duration: 12h\n      isRolling: true\n", 12 * 3600.0),
        ("", DEFAULT_PERIOD),
    ],
)
def test_openslo_rolling_windows(window: str, seconds: float) -> None:
    text = OPENSLO_INLINE.replace("    - duration: 28d\n      isRolling: true\n", window)
    if not window:
        text = text.replace("  timeWindow:\n", "")
    [slo] = parse_text(text, "slos/foo.yml")
    assert slo.period_seconds == seconds and slo.calendar is None
    assert slo.period_at(1e9) == (seconds, seconds)


def test_the_alerting_rules_page_at_the_thresholds_of_the_slos_own_period() -> None:
    """28 days (OPENSLO_INLINE's window): 13.44 and 5.6, as Sloth's own 28-day windows; 7 days:
    3.36 and 1.4. The threshold is in the expression and the words alike."""
    week = OPENSLO_INLINE.replace(
        "    - duration: 28d\n      isRolling: true\n", "    - duration: 7d\n"
    )
    for text, fast, slow in ((OPENSLO_INLINE, "13.44", "5.6"), (week, "3.36", "1.4")):
        [slo] = parse_text(text, "slos/foo.yml")
        [_recordings, alerts] = rule_groups([slo])
        for rule, threshold in zip(alerts["rules"], (fast, slow), strict=True):
            assert rule["expr"].count(f"> ({threshold} * 0.02)") == 2, rule["expr"]
            assert rule["annotations"]["summary"].endswith(f"faster than {threshold}x")


def test_openslo_counter_false_sums_the_values() -> None:
    [slo] = parse_text(OPENSLO_INLINE.replace("counter: true", "counter: false"), "slos/f.yml")
    assert slo.error_ratio_query("5m") == (
        '1 - sum((sum(sum_over_time(http_requests_total{service="foo",code!~"5.."}[5m]))) '
        'or vector(0)) / sum(sum(sum_over_time(http_requests_total{service="foo"}[5m])))'
    )


# OpenSLO's README: a counter's ratio as sums over its selector, without a range.
README_GOOD = 'sum(localhost_server_requests{code=~"2xx|3xx",host="*",instance="127.0.0.1:9090"})'
README_TOTAL = 'sum(localhost_server_requests{host="*",instance="127.0.0.1:9090"})'


def _queries(good: str, total: str, text: str = OPENSLO_INLINE) -> str:
    """``text`` with its good and total queries replaced (quoted: YAML as written)."""
    return text.replace(
        'query: http_requests_total{service="foo",code!~"5.."}', f"query: '{good}'"
    ).replace('query: http_requests_total{service="foo"}', f"query: '{total}'")


def test_openslo_readme_sums_of_a_counter_take_its_rate() -> None:
    [slo] = parse_text(_queries(README_GOOD, README_TOTAL), "slos/localhost.yml")
    assert slo.good
    assert slo.errors == (
        'sum(rate(localhost_server_requests{code=~"2xx|3xx",host="*",'
        'instance="127.0.0.1:9090"}[{{.window}}]))'
    )
    assert slo.total == (
        'sum(rate(localhost_server_requests{host="*",instance="127.0.0.1:9090"}[{{.window}}]))'
    )
    # counter unspecified reads as counter: true, as for a bare selector
    [unsaid] = parse_text(
        _queries(README_GOOD, README_TOTAL).replace("        counter: true\n", ""), "slos/l.yml"
    )
    assert (unsaid.errors, unsaid.total) == (slo.errors, slo.total)


@pytest.mark.parametrize(
    ("query", "ranged"),
    [
        ('sum by (code) (x{job="a"})', 'sum by (code) (rate(x{job="a"}[{{.window}}]))'),
        (
            'sum(x{job="a"}) by (code, host)',
            'sum by (code, host) (rate(x{job="a"}[{{.window}}]))',
        ),
        ("sum without (instance) (x)", "sum without (instance) (rate(x[{{.window}}]))"),
        ("SUM (x) WITHOUT(instance,)", "sum without (instance) (rate(x[{{.window}}]))"),
        ('sum({__name__="x"})', 'sum(rate({__name__="x"}[{{.window}}]))'),
    ],
)
def test_openslo_sums_by_or_without_labels_keep_their_grouping(query: str, ranged: str) -> None:
    [slo] = parse_text(_queries(query, "x"), "slos/x.yml")
    assert (slo.errors, slo.total) == (ranged, "sum(rate(x[{{.window}}]))")
    assert slo.error_ratio_query("5m") == (
        f"1 - sum(({ranged.replace('{{.window}}', '5m')}) or vector(0)) / sum(sum(rate(x[5m])))"
    )


@pytest.mark.parametrize(
    ("good", "text", "how"),
    [
        # a fixed range: the window must be {{.window}}
        ("sum(rate(x[5m]))", OPENSLO_INLINE, "sum(rate(SELECTOR[{{.window}}]))"),
        ("max(x)", OPENSLO_INLINE, "sum(rate(SELECTOR[{{.window}}]))"),
        ("sum(x) / 2", OPENSLO_INLINE, "sum(rate(SELECTOR[{{.window}}]))"),
        ("sum by (a) (x) by (b)", OPENSLO_INLINE, "sum(rate(SELECTOR[{{.window}}]))"),
        ('sum(x{a="1"} or y)', OPENSLO_INLINE, "sum(rate(SELECTOR[{{.window}}]))"),
        # not counters: only a bare selector is summed over the window
        (
            "sum(x)",
            OPENSLO_INLINE.replace("counter: true", "counter: false"),
            "sum(sum_over_time(SELECTOR[{{.window}}]))",
        ),
    ],
)
def test_openslo_other_queries_without_the_window_are_refused(
    good: str, text: str, how: str
) -> None:
    message = _refused(
        _queries(good, "x", text),
        "spec.indicator.spec.ratioMetric.good.metricSource.spec.query: without {{.window}} "
        "the query must be a series selector",
    )
    assert repr(good) in message
    assert message.endswith(
        f"write any other query with the range as [{{{{.window}}}}], e.g. {how}"
    )


def test_openslo_several_objectives_are_several_slos() -> None:
    text = OPENSLO_INLINE.replace(
        "    - displayName: Foo Total Errors\n      target: 0.98\n",
        "    - displayName: Foo Total Errors\n      target: 0.98\n"
        "    - displayName: Bar Total Errors\n      targetPercent: 99.99\n",
    )
    first, second = parse_text(text, "slos/foo.yml")
    assert [(s.name, s.objective) for s in (first, second)] == [
        ("foo-slo-0", 98.0),
        ("foo-slo-1", 99.99),
    ]
    assert first.description == "Foo SLO (Foo Total Errors)"
    assert first.error_ratio_query("5m") == second.error_ratio_query("5m")


# An SLI document, a DataSource named by metricSourceRef (no type), an SLO by indicatorRef.
OPENSLO_REFS = """
apiVersion: openslo/v1
kind: DataSource
metadata:
  name: prometheus-datasource
spec:
  type: Prometheus
  connectionDetails:
    url: http://prometheus:9090
---
apiVersion: openslo/v1
kind: SLI
metadata:
  name: search-errors
  displayName: Search errors
spec:
  description: Server errors among search requests
  ratioMetric:
    counter: true
    bad:
      metricSource:
        metricSourceRef: prometheus-datasource
        spec:
          query: sum(increase(http_requests_total{service="search",code=~"5.."}[{{ .window }}]))
    total:
      metricSource:
        metricSourceRef: prometheus-datasource
        type: Prometheus
        spec:
          query: sum(increase(http_requests_total{service="search"}[{{.window}}]))
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: search-availability
spec:
  description: Search answers without server errors
  service: search
  indicatorRef: search-errors
  timeWindow:
    - duration: 1w
      isRolling: true
  budgetingMethod: Occurrences
  objectives:
    - targetPercent: 99.5
"""


def test_openslo_indicator_ref_and_datasource_ref() -> None:
    [slo] = parse_text(OPENSLO_REFS, "slos/search.yml")
    assert (slo.name, slo.objective, slo.period_seconds) == ("search-availability", 99.5, 7 * DAY)
    assert not slo.good and slo.description == "Search answers without server errors"
    assert slo.error_ratio_query("30m") == (
        'sum((sum(increase(http_requests_total{service="search",code=~"5.."}[30m]))) '
        'or vector(0)) / sum(sum(increase(http_requests_total{service="search"}[30m])))'
    )


def test_openslo_references_across_files(tmp_path: Path) -> None:
    sli, slo = OPENSLO_REFS.rsplit("---", 1)
    (tmp_path / "slos" / "shared").mkdir(parents=True)
    (tmp_path / "slos" / "shared" / "indicators.yaml").write_text(sli)
    (tmp_path / "slos" / "search.yml").write_text(slo)
    [read] = load_slos(tmp_path)
    assert read.source == "slos/search.yml" and read.total is not None
    # the same SLI in a second file: which one an indicatorRef means is not guessed
    (tmp_path / "slos" / "shared" / "again.yaml").write_text(sli)
    with pytest.raises(ConfigError, match="SLI 'search-errors' is defined in slos/shared/"):
        load_slos(tmp_path)


@pytest.mark.parametrize(
    ("before", "after"),
    [("objective: 99.9", "objective: true"), ("objective: 99.9", "objective: false")],
)
def test_a_yaml_boolean_is_no_objective(before: str, after: str) -> None:
    _refused(
        SLOTH_GETTING_STARTED.replace(before, after),
        "slos[0].objective: expected a number, got true or false",
    )


def test_openslo_composite_objectives_with_their_own_indicators() -> None:
    text = OPENSLO_REFS.replace("  indicatorRef: search-errors\n", "").replace(
        "    - targetPercent: 99.5\n",
        "    - displayName: errors\n      targetPercent: 99.5\n"
        "      indicatorRef: search-errors\n"
        "    - displayName: latency\n      target: 0.9\n      compositeWeight: 2\n"
        "      indicator:\n        metadata: {name: search-fast}\n        spec:\n"
        "          ratioMetric:\n            good:\n              metricSource:\n"
        "                type: Prometheus\n                spec: {query: 'fast_total'}\n"
        "            total:\n              metricSource:\n"
        "                type: Prometheus\n                spec: {query: 'all_total'}\n",
    )
    errors, latency = parse_text(text, "slos/search.yml")
    assert (errors.name, errors.objective, errors.good) == ("search-availability-0", 99.5, False)
    assert (latency.name, latency.objective, latency.good) == ("search-availability-1", 90.0, True)
    assert latency.error_ratio_query("5m") == (
        "1 - sum((sum(rate(fast_total[5m]))) or vector(0)) / sum(sum(rate(all_total[5m])))"
    )


RAW = """
apiVersion: openslo/v1
kind: SLO
metadata: {name: ledger-writes}
spec:
  service: ledger
  budgetingMethod: Occurrences
  objectives: [{target: 0.995}]
  indicator:
    spec:
      ratioMetric:
        rawType: success
        raw:
          metricSource:
            type: Prometheus
            spec: {query: 'slo:ledger_success:ratio'}
"""


def test_openslo_raw_success_ratio() -> None:
    [slo] = parse_text(RAW, "slos/ledger.yml")
    assert slo.total is None and slo.objective == 99.5
    assert slo.error_ratio_query("5m") == (
        "(1 - (avg(avg_over_time(slo:ledger_success:ratio[5m]))))"
    )


def test_openslo_raw_sums_are_refused() -> None:
    message = _refused(
        RAW.replace("'slo:ledger_success:ratio'", "'sum(slo:ledger_success:ratio)'"),
        "spec.indicator.spec.ratioMetric.raw.metricSource.spec.query: without {{.window}} "
        "the query must be a series selector (Terry averages it)",
    )
    assert message.endswith("e.g. avg(avg_over_time(SELECTOR[{{.window}}]))")


# -- calendar-aligned windows --------------------------------------------------------------

CALENDAR = OPENSLO_INLINE.replace(
    "    - duration: 28d\n      isRolling: true\n",
    "    - duration: 1M\n      calendar:\n        startTime: 2022-01-01 00:00:00\n"
    "        timeZone: America/New_York\n      isRolling: false\n",
)


def _at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_openslo_calendar_month() -> None:
    [slo] = parse_text(CALENDAR, "slos/foo.yml")
    assert slo.calendar is not None and slo.period_seconds == 30 * DAY  # nominal
    # mid-March 2024: the period began on 1 March, 00:00 in New York (05:00 UTC), and
    # ends on 1 April, 00:00 there (04:00 UTC: summer time began in between)
    assert slo.calendar.bounds(_at("2024-03-15T12:00:00")) == (
        _at("2024-03-01T05:00:00"),
        _at("2024-04-01T04:00:00"),
    )
    length, elapsed = slo.period_at(_at("2024-03-15T12:00:00"))
    assert length == 31 * DAY - 3600
    assert elapsed == (14 * DAY + 7 * 3600)
    # just after the period began, the SLI is read over MIN_ELAPSED
    assert slo.period_at(_at("2024-03-01T05:00:10")) == (31 * DAY - 3600, MIN_ELAPSED)


@pytest.mark.parametrize(
    ("duration", "start", "at", "bounds"),
    [
        ("1w", "2022-01-03 00:00:00", "2024-03-14T10:00:00", ("2024-03-11", "2024-03-18")),
        ("1Q", "2022-01-01 00:00:00", "2024-05-20T00:00:00", ("2024-04-01", "2024-07-01")),
        ("1Y", "2022-01-01 00:00:00", "2024-05-20T00:00:00", ("2024-01-01", "2025-01-01")),
        ("1M", "'2022-01-31'", "2024-02-28T23:00:00", ("2024-01-31", "2024-02-29")),
        ("1M", "'2022-01-31'", "2024-03-01T00:00:00", ("2024-02-29", "2024-03-31")),
    ],
)
def test_openslo_calendar_periods_in_utc(
    duration: str, start: str, at: str, bounds: tuple[str, str]
) -> None:
    text = CALENDAR.replace("duration: 1M", f"duration: {duration}")
    text = text.replace("2022-01-01 00:00:00", start).replace("America/New_York", "UTC")
    [slo] = parse_text(text, "slos/foo.yml")
    assert slo.calendar is not None
    assert slo.calendar.bounds(_at(at)) == (_at(bounds[0]), _at(bounds[1]))


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        ("isRolling: false", "isRolling: true", "spec.timeWindow[0]: a window rolls"),
        ("America/New_York", "Mars/Olympus", "spec.timeWindow[0].calendar.timeZone: 'Mars/"),
        ("2022-01-01 00:00:00", "'soon'", "spec.timeWindow[0].calendar.startTime: write a"),
        ("duration: 1M", "duration: 1 month", "spec.timeWindow[0].duration: '1 month' is not"),
    ],
)
def test_openslo_calendar_mistakes(before: str, after: str, message: str) -> None:
    _refused(CALENDAR.replace(before, after), message)


def test_openslo_windows_terry_cannot_tell() -> None:
    rolling_month = OPENSLO_INLINE.replace("duration: 28d", "duration: 1M")
    _refused(rolling_month, "spec.timeWindow[0].duration: a rolling window of months")
    no_calendar = OPENSLO_INLINE.replace("isRolling: true", "isRolling: false")
    _refused(no_calendar, "spec.timeWindow[0]: a calendar-aligned window (isRolling: false)")


# -- OpenSLO: what Terry does not support ----------------------------------------------------

# OpenSLO's examples/budgeting-method (metric sources made Prometheus).
TIMESLICES = OPENSLO_INLINE.replace(
    "  budgetingMethod: Occurrences\n  objectives:\n"
    "    - displayName: Foo Total Errors\n      target: 0.98\n",
    "  budgetingMethod: Timeslices\n  objectives:\n"
    "    - displayName: Internal objective\n      op: gt\n      target: 0.995\n"
    "      timeSliceTarget: 0.99\n      timeSliceWindow: 1m\n",
)


@pytest.mark.parametrize("method", ["Timeslices", "RatioTimeslices"])
def test_openslo_timeslice_budgets_are_refused(method: str) -> None:
    message = _refused(
        TIMESLICES.replace("Timeslices", method), "spec.budgetingMethod: Input should be"
    )
    assert repr(method) in message and "not supported" in message


def test_openslo_threshold_metrics_are_refused() -> None:
    text = OPENSLO_INLINE.replace(
        "      ratioMetric:\n        counter: true\n        good:",
        "      thresholdMetric:\n        metricSource: {type: Prometheus, spec: {query: x}}\n"
        "      unused:\n        good:",
    )
    _refused(text, "spec.indicator.spec.thresholdMetric: Terry reads ratioMetric indicators")


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        (
            "type: Prometheus\n            spec:\n              query: http_requests_total"
            '{service="foo"}',
            "type: Datadog\n            spec:\n              query: sum:trace.http.request"
            ".hits.by_http_status{*}.as_count()",
            "spec.indicator.spec.ratioMetric.total.metricSource.type: Terry reads Prometheus",
        ),
        (
            'query: http_requests_total{service="foo"}\n',
            'query: sum(rate(http_requests_total{service="foo"}[5m]))\n',
            "spec.indicator.spec.ratioMetric.total.metricSource.spec.query: without "
            "{{.window}} the query must be a series selector",
        ),
        (
            "target: 0.98",
            "target: 0.98\n      targetPercent: 98",
            "spec.objectives[0]: give exactly one of target and targetPercent",
        ),
        ("target: 0.98", "targetPercent: 0.98\n      op: gt", None),
        ("apiVersion: openslo/v1\nkind: SLO", "apiVersion: openslo/v2alpha\nkind: SLO", None),
    ],
)
def test_openslo_mistakes(before: str, after: str, message: str | None) -> None:
    text = OPENSLO_INLINE.replace(before, after)
    assert text != OPENSLO_INLINE
    if message is None:  # not mistakes: a low target is a target; v2alpha is said clearly
        if "v2alpha" in after:
            _refused(text, "apiVersion: Terry reads OpenSLO SLOs of openslo/v1 and")
        else:
            assert parse_text(text, "slos/x.yml")[0].objective == 0.98
        return
    _refused(text, message)


def test_openslo_unknown_refs_are_named() -> None:
    _refused(
        OPENSLO_REFS.replace("indicatorRef: search-errors", "indicatorRef: nope"),
        "spec.indicatorRef: no SLI named 'nope' in slos/",
    )
    message = _refused(
        OPENSLO_REFS.replace(
            "metricSourceRef: prometheus-datasource\n        spec",
            "metricSourceRef: gone\n        spec",
        ),
        "spec.ratioMetric.bad.metricSource.metricSourceRef: no DataSource",
        "slos/x.yml (SLI search-errors): ",
    )
    assert "'gone'" in message
    datadog = OPENSLO_REFS.replace(
        "type: Prometheus\n  connectionDetails", "type: Datadog\n  connectionDetails"
    )
    message = _refused(
        datadog,
        "spec.ratioMetric.bad.metricSource.metricSourceRef: Terry reads Prometheus metric "
        "sources only",
        "slos/x.yml (SLI search-errors): ",
    )
    assert message.endswith("not 'Datadog'")


# -- OpenSLO v1alpha, as Sloth reads it ------------------------------------------------------

# Sloth's openslo-getting-started.yml
ALPHA = """
apiVersion: openslo/v1alpha
kind: SLO
metadata:
  name: sloth-slo-my-service
  displayName: Requests Availability
spec:
  service: my-service
  description: "Availability of the HTTP responses."
  budgetingMethod: Occurrences
  objectives:
    - ratioMetrics:
        good:
          source: prometheus
          queryType: promql
          query: sum(rate(http_request_duration_seconds_count{job="myservice",code!~"(5..|429)"}[{{.window}}]))
        total:
          source: prometheus
          queryType: promql
          query: sum(rate(http_request_duration_seconds_count{job="myservice"}[{{.window}}]))
      target: 0.999
  timeWindows:
    - count: 30
      unit: Day
"""  # noqa: E501


def test_openslo_v1alpha_getting_started() -> None:
    [slo] = parse_text(ALPHA, "slos/my-service.yml")
    assert (slo.service, slo.name, slo.format) == ("my-service", "sloth-slo-my-service", "openslo")
    assert slo.objective == 99.9 and slo.period_seconds == 30 * DAY and slo.calendar is None
    assert slo.description == "Availability of the HTTP responses." and slo.good
    good = 'sum(rate(http_request_duration_seconds_count{job="myservice",code!~"(5..|429)"}[5m]))'
    assert slo.error_ratio_query("5m") == f"1 - sum(({good}) or vector(0)) / sum({TOTAL_5M})"


def test_openslo_v1alpha_sums_of_a_counter_take_its_rate() -> None:
    text = ALPHA.replace(
        'sum(rate(http_request_duration_seconds_count{job="myservice"}[{{.window}}]))',
        'sum by (code) (http_request_duration_seconds_count{job="myservice"})',
    )
    [slo] = parse_text(text, "slos/my-service.yml")
    assert slo.total == (
        'sum by (code) (rate(http_request_duration_seconds_count{job="myservice"}[{{.window}}]))'
    )


def test_openslo_v1alpha_several_documents_and_objectives() -> None:
    # Sloth's openslo-kubernetes-apiserver.yml: its second SLO has two objectives
    latency = ALPHA.replace("sloth-slo-my-service", "requests-latency-openslo").replace(
        "    - ratioMetrics:", "    - displayName: fast\n      ratioMetrics:"
    )
    strict = latency.split("  objectives:\n")[1].split("  timeWindows:")[0]
    latency = latency.replace(strict, strict + strict.replace("0.999", "0.99"))
    text = f"{ALPHA}---{latency}"
    one, two, three = parse_text(text, "slos/k8s.yml")
    assert [(s.name, s.objective) for s in (one, two, three)] == [
        ("sloth-slo-my-service", 99.9),
        ("requests-latency-openslo-0", 99.9),
        ("requests-latency-openslo-1", 99.0),
    ]


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        ("source: prometheus", "source: datadog", "spec.objectives[0].ratioMetrics.good.source:"),
        ("unit: Day", "unit: Fortnight", "spec.timeWindows[0].unit: 'Fortnight' is not a unit"),
        ("unit: Day", "unit: Month", "spec.timeWindows[0].count: a rolling window of months"),
        ("target: 0.999", "target: 99.9", "spec.objectives[0].target: Input should be less"),
        ("Occurrences", "Timeslices", "spec.budgetingMethod: Input should be 'Occurrences'"),
    ],
)
def test_openslo_v1alpha_mistakes(before: str, after: str, message: str) -> None:
    _refused(ALPHA.replace(before, after), message)


def test_openslo_v1alpha_calendar_and_week_windows() -> None:
    weekly = ALPHA.replace("count: 30\n      unit: Day", "count: 1\n      unit: Week")
    assert parse_text(weekly, "slos/x.yml")[0].period_seconds == 7 * DAY
    monthly = ALPHA.replace(
        "count: 30\n      unit: Day",
        "count: 1\n      unit: Month\n      calendar:\n"
        "        startTime: 2020-01-21 12:30:00\n        timeZone: UTC",
    )
    [slo] = parse_text(monthly, "slos/x.yml")
    assert slo.calendar is not None
    assert slo.calendar.bounds(_at("2024-03-01T00:00:00")) == (
        _at("2024-02-21T12:30:00"),
        _at("2024-03-21T12:30:00"),
    )


class _Recorder:
    """Stands for Prometheus: answers every query with 0.0005 and keeps the queries."""

    def __init__(self, prom: object, timeout: float) -> None:
        self.queries: list[str] = []
        _Recorder.last = self

    last: _Recorder

    def ratio(self, query: str, at: float | None) -> tuple[float | None, str | None]:
        self.queries.append(query)
        return 0.0005, None

    def close(self) -> None:
        pass


def test_a_calendar_budget_is_read_from_the_period_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from terry.slo import status

    monkeypatch.setattr(status, "_Client", _Recorder)
    [slo] = parse_text(CALENDAR.replace("target: 0.98", "target: 0.999"), "slos/foo.yml")
    [read] = status.read_status([slo], "http://prometheus:9090", at=_at("2024-03-15T12:00:00"))
    assert _Recorder.last.queries[0] == slo.error_ratio_query("343h")  # 14 days 7 hours
    assert _Recorder.last.queries[1:] == [
        slo.error_ratio_query(w) for w in ("1h", "5m", "6h", "30m")
    ]
    assert read.budget.period_seconds == 31 * DAY - 3600  # March in New York
    assert read.budget.remaining_percent == pytest.approx(50.0)
    # --period judges it over a rolling span instead
    [over] = status.read_status(
        [slo], "http://p:9090", period_seconds=7 * DAY, at=_at("2024-03-15")
    )
    assert _Recorder.last.queries[0] == slo.error_ratio_query("7d")
    assert over.budget.period_seconds == 7 * DAY


# -- what a hostile or careless spec must not do ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "objective", "budget"),
    [
        (
            SLOTH_GETTING_STARTED.replace("objective: 99.9", "objective: 99.9999999999"),
            99.9999999999,
            1e-12,
        ),
        (OPENSLO_INLINE.replace("target: 0.98", "target: 0.999999999"), 99.9999999, 1e-9),
        (OPENSLO_INLINE.replace("target: 0.98", "targetPercent: 99.99999"), 99.99999, 1e-7),
    ],
)  # fmt: skip
def test_many_nines_keep_their_budget_never_a_rounded_zero(
    text: str, objective: float, budget: float
) -> None:
    [slo] = parse_text(text, "slos/x.yml")
    assert slo.objective == objective and slo.budget_fraction == pytest.approx(budget)
    spent = compute_budget(
        objective=slo.objective,
        period_seconds=DAY,
        period_error_ratio=budget / 2,
        window_error_ratios={"1h": budget * 20, "5m": budget * 20},
    )
    assert spent.remaining_percent == pytest.approx(50.0)
    assert spent.burn_rates["1h"] == pytest.approx(20.0)
    recordings, alerts = rule_groups([slo])
    assert recordings["rules"][0]["labels"]["slo_objective"] == objective_text(objective)
    assert "100" not in recordings["rules"][0]["labels"]["slo_objective"]
    assert all(f"{budget:.10g}" in a["expr"] and "* 0)" not in a["expr"] for a in alerts["rules"])


def test_a_query_ending_in_a_comment_still_closes() -> None:
    # A block scalar's last line a PromQL comment: what Terry writes after the query must
    # not land inside it.
    errors = 'http_request_duration_seconds_count{job="myservice",code=~"(5..|429)"}'
    commented = "|\n          sum(rate(errors_total[{{.window}}]))\n          # 5xx answers only"
    text = SLOTH_GETTING_STARTED.replace(
        f"error_query: sum(rate({errors}[{{{{.window}}}}]))", f"error_query: {commented}"
    )
    [slo] = parse_text(text, "slos/x.yml")
    for group in rule_groups([slo]):
        for rule in group["rules"]:
            assert promql_problem(rule["expr"]) is None, rule["expr"]
    assert "# 5xx answers only\n) or vector(0))" in slo.error_ratio_query("5m")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            SLOTH_GETTING_STARTED.replace('429)"}[{{.window}}]))', '429)"}[{{.window}}])'),
            "slos[0].sli.events.error_query: not PromQL (unclosed left parenthesis)",
        ),
        (
            SLOTH_RAW_HOME_WIFI.replace("[{{.window}}]", "[{{.window}}", 1),
            "slos[0].sli.raw.error_ratio_query: not PromQL",
        ),
        (
            OPENSLO_INLINE.replace('code!~"5.."}', 'code!~"5.."}[{{.window}}] +'),
            "spec.indicator.spec.ratioMetric.good.metricSource.spec.query: not PromQL",
        ),
        (
            SLOTH_GETTING_STARTED.replace(',code=~"(5..|429)"', ""),
            "slos[0].sli.events: error_query and total_query are the same query",
        ),
        (
            OPENSLO_INLINE.replace(',code!~"5.."', ""),
            "spec.indicator.spec.ratioMetric.good.metricSource.spec.query: the same query as "
            "spec.indicator.spec.ratioMetric.total.metricSource.spec.query",
        ),
    ],
)  # fmt: skip
def test_queries_prometheus_would_refuse_are_refused_naming_the_field(
    text: str, message: str
) -> None:
    _refused(text, message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 5000 + "]" * 5000, "not YAML"),  # libyaml: "maximum nesting depth"
        (
            CALENDAR.replace("duration: 1M", "duration: 100000Y"),
            "spec.timeWindow[0].duration: 100000Y is longer than Terry reads a window",
        ),
        (
            OPENSLO_INLINE.replace("duration: 28d", "duration: 99999999w"),
            "spec.timeWindow[0].duration: 99999999w is longer",
        ),
    ],
)
def test_absurd_specs_are_config_errors_never_a_crash(text: str, message: str) -> None:
    _refused(text, message)


def test_rule_groups_of_different_slos_never_share_a_name() -> None:
    # service a-b with SLO c, and service a with SLO b-c: both valid Sloth names
    one = SLOTH_HOME_WIFI.replace('service: "home-wifi"', 'service: "a-b"')
    two = SLOTH_HOME_WIFI.replace('service: "home-wifi"', 'service: "a"')
    slos = parse_text(one, "slos/one.yml") + parse_text(two, "slos/two.yml")
    names = [g["name"] for g in rule_groups(slos)]
    assert len(names) == len(set(names)), names


def test_a_file_name_with_template_markers_is_inert_in_the_alert_text(tmp_path: Path) -> None:
    # Prometheus expands annotations as Go templates: Terry's own text quoting a file name
    # holding {{ ... }} prints it, never runs it.
    (tmp_path / "slos").mkdir()
    hostile = '{{ query "up" }}.yml'
    (tmp_path / "slos" / hostile).write_text(SLOTH_GETTING_STARTED)
    [slo] = load_slos(tmp_path)
    alert = rule_groups([slo])[1]["rules"][0]
    quoted = '({{ "slos/{{ query \\"up\\" }}.yml" }}).'
    assert quoted in alert["annotations"]["description"]


def test_openslo_objects_may_come_as_one_list() -> None:
    as_list = "\n".join(
        ("- " if line.startswith("apiVersion") else "  ") + line if line.strip() else ""
        for line in OPENSLO_INLINE.replace("---\n", "").splitlines()
    )
    [slo] = parse_text(as_list, "slos/foo.yml")
    assert slo.key == "foo/foo-slo"


def test_openslo_prometheus_query_may_be_spelled_promql() -> None:
    [plain] = parse_text(OPENSLO_INLINE, "slos/foo.yml")
    [spelled] = parse_text(OPENSLO_INLINE.replace("query:", "promql:"), "slos/foo.yml")
    assert spelled.error_ratio_query("1h") == plain.error_ratio_query("1h")
    empty = OPENSLO_INLINE.replace('query: http_requests_total{service="foo"}\n', "promql: ''\n")
    _refused(empty, "spec.indicator.spec.ratioMetric.total.metricSource.spec.promql: give the")
