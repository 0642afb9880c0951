"""docs/grafana/terry.json: an importable Grafana dashboard whose every query names a metric
family that Terry's own /metrics exports (the real app, on a real store).

A renamed metric, or a dashboard panel over a metric nobody exports, fails here rather than
as an empty panel in someone's Grafana.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from terry.config import load_config
from terry.gitops.init import init_repository
from terry.service.server import create_app
from terry.store import Store
from tests.conftest import REPO_ROOT, alert, make_cli, payload

pytestmark = pytest.mark.integration
DASHBOARD = REPO_ROOT / "docs" / "grafana" / "terry.json"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
READER = "r" * 32

# PromQL words that are not metric names (functions are recognised by the "(" after them).
_KEYWORDS = """
    by without on ignoring group_left group_right bool and or unless offset atan2 inf nan
    sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk
    limit_ratio
"""
KEYWORDS = frozenset(_KEYWORDS.split())
_STRING = re.compile(r"""(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)""")
_TOKEN = re.compile(
    r"""
    (?P<string>"")                                     # a label value (emptied first)
    | (?P<matchers>\{[^{}]*\})                          # label matchers
    | (?P<range>\[[^\[\]]*\])                           # [5m], [$__rate_interval:1m]
    | (?P<variable>\$\{[^}]*\}|\$\w+)                    # Grafana variables
    | (?P<number>(?:0x[0-9a-fA-F]+|[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)[smhdwy]*)
    | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
    | (?P<space>\s+)
    | (?P<other>[-+*/%^(),=!<>~@])
    """,
    re.VERBOSE,
)
_LABEL_LIST = {"by", "without", "on", "ignoring", "group_left", "group_right"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: the identifiers that are not functions,
    aggregation keywords, label names (in matchers or in by/without/on/ignoring lists) or
    label values. Anything PromQL does not have fails the test."""
    text = _STRING.sub('""', expr)  # so braces and words inside label values do not count
    tokens: list[tuple[str, str]] = []
    at = 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        assert match is not None, f"cannot read {text[at:]!r} in {expr!r}"
        at = match.end()
        if match.lastgroup != "space":
            tokens.append((match.lastgroup or "", match.group()))
    names: set[str] = set()
    in_label_list = False
    for index, (kind, word) in enumerate(tokens):
        following = tokens[index + 1][1] if index + 1 < len(tokens) else ""
        if kind == "other" and word == ")":
            in_label_list = False
        if kind != "name":
            continue
        if word in _LABEL_LIST:
            in_label_list = following == "("
        elif not (in_label_list or following == "(" or word.lower() in KEYWORDS):
            names.add(word)
    return names


def exported(families: list[Any]) -> dict[str, str]:
    """Every series name the exposition offers to PromQL, with its family's type."""
    names: dict[str, str] = {}
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("_sum", "_count", "_created"),
        "gauge": ("",),
    }
    for family in families:
        for suffix in suffixes.get(family.type, ("",)):
            names[family.name + suffix] = family.type
        for sample in family.samples:
            names[sample.name] = family.type
    return names


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def queries(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['id']} {panel['title']!r} {target['refId']}", target["expr"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            inner = re.fullmatch(r"label_values\((.+),\s*\w+\)", text)
            yield f"variable {variable['name']}", inner.group(1) if inner else text


def test_the_tokenizer_finds_metrics_and_nothing_else() -> None:
    expr = (
        'histogram_quantile(0.9, sum by (le, "x") (rate(a_bucket{job=~"$job", le!="}+Inf"}'
        "[$__rate_interval:1m]))) / on (instance) group_left (code) b_total offset 5m "
        "> bool 1e3 and max without(stage) (c{stage='fixed'}) or vector(0) * 2h"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}
    assert metric_names('sum(max by (route) (terry_notifications_dead{job=~"$job"}))') == {
        "terry_notifications_dead"
    }
    assert metric_names("up") == {"up"}
    with pytest.raises(AssertionError, match="cannot read"):
        metric_names("up # a comment is not in Grafana's expressions")


def test_the_dashboard_is_importable_grafana_json() -> None:
    board = dashboard()
    inputs = board["__inputs"]
    assert [(i["name"], i["type"], i["pluginId"]) for i in inputs] == [
        ("DS_PROMETHEUS", "datasource", "prometheus")
    ]
    assert board["schemaVersion"] >= 39 and board["uid"] and board["title"] == "Terry"
    assert board["id"] is None  # Grafana gives it one on import
    panels = board["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids), ids
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        where = f"panel {panel.get('id')}"
        assert panel["title"].strip() and panel["description"].strip(), where
        assert panel["type"] in {"stat", "timeseries", "bargauge", "table", "gauge"}, where
        assert panel["datasource"] == DATASOURCE, where
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("x", "y", "w", "h")), where
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24, where
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & mine, f"{where} overlaps another panel"
        cells |= mine
        targets = panel["targets"]
        assert targets, f"{where} has no query"
        refs = [t["refId"] for t in targets]
        assert len(refs) == len(set(refs)), where
        for target in targets:
            assert target["expr"].strip(), where
            assert target.get("datasource", DATASOURCE) == DATASOURCE, where
    for variable in board["templating"]["list"]:
        assert variable.get("datasource", DATASOURCE) == DATASOURCE, variable["name"]
    # every dashboard variable an expression uses is defined (besides Grafana's own $__...)
    defined = {v["name"] for v in board["templating"]["list"]}
    for where, expr in queries(board):
        used = set(re.findall(r"\$\{?(\w+)", expr)) - {"__range", "__rate_interval", "__interval"}
        assert used <= defined, f"{where} uses undefined {used - defined}"


# What Grafana puts in for its variables before Prometheus sees a query.
GRAFANA_VALUES = {"job": ".+", "__rate_interval": "1m", "__range": "1d", "__interval": "30s"}


def test_every_dashboard_query_is_promql_prometheus_parses(tmp_path: Path) -> None:
    # scripts/setup.sh installs Debian's prometheus, which ships promtool: never a skip.
    assert shutil.which("promtool"), "promtool is missing: run scripts/setup.sh (prometheus)"
    rules = []
    for index, (where, expr) in enumerate(queries(dashboard())):
        if where.startswith("variable"):
            continue  # label_values() is Grafana's, not PromQL; its metric is checked below
        promql = re.sub(r"\$\{?(\w+)\}?", lambda m: GRAFANA_VALUES[m.group(1)], expr)
        rules.append({"record": f"dashboard:query_{index}", "expr": promql})
    path = tmp_path / "dashboard_rules.yml"  # JSON is YAML
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(rules)} rules found" in proc.stdout


@pytest.fixture
def metrics(tmp_path: Path, store_url: str) -> list[Any]:
    """The families the real app's /metrics exports, over a store with three incidents: one
    waiting for diagnosis, one kept for a person, one resolved."""
    repo = init_repository(tmp_path / "ops").path
    cli = make_cli(repo, store_url)
    waiting = payload([alert("DiskFull", fingerprint="dash-1", host="web-01")])
    kept = payload([alert("DiskFull", fingerprint="dash-2", host="nowhere-9")])
    gone = alert("DiskFull", fingerprint="dash-3", host="web-02")
    for body, args in (
        (waiting, ["--no-remediate"]),
        (kept, []),
        (payload([gone]), ["--no-remediate"]),
        (payload([{**gone, "status": "resolved"}], status="resolved"), ["--no-remediate"]),
    ):
        ingested = cli("alert", "ingest", "-", *args, input=body)
        assert ingested.exit_code == 0, ingested.stdout + ingested.stderr
    config = load_config(repo, environ={"TERRY_DATABASE_URL": store_url})
    store = Store(config.store_url)
    try:
        app = create_app(config, store, token="t" * 32, readers={"ops": READER})
        with TestClient(app, headers={"Authorization": f"Bearer {READER}"}) as client:
            client.post(  # a refused post, so the webhook counter has a sample too
                "/api/v1/alerts", content=waiting, headers={"Authorization": "Bearer wrong"}
            )
            answer = client.get("/metrics")
    finally:
        store.dispose()
    assert answer.status_code == 200, answer.text
    return list(text_string_to_metric_families(answer.text))


def test_every_dashboard_query_names_a_metric_terry_exports(metrics: list[Any]) -> None:
    names = exported(metrics)
    by_family = {f.name: f for f in metrics}
    assert by_family["terry_alerts_received"].samples, "the stored alert is not counted"
    open_now = {s.labels["stage"]: s.value for s in by_family["terry_incidents_open"].samples}
    assert open_now == {"undiagnosed": 1.0, "remediating": 0.0, "needs_human": 1.0, "fixed": 0.0}
    for family in metrics:
        if family.name.startswith("terry_"):
            assert family.documentation.strip(), f"{family.name} has no HELP text"

    board = dashboard()
    read: set[str] = set()
    for where, expr in queries(board):
        found = metric_names(expr)
        assert found, f"{where} reads no metric: {expr}"
        unknown = sorted(n for n in found if n not in names)
        assert not unknown, f"{where} reads {unknown}, which Terry does not export: {expr}"
        read |= found
    # the list: each is on the dashboard
    for wanted in (
        "terry_alerts_received_total",
        "terry_incidents_open",
        "terry_proposals_total",
        "terry_runs_total",
        "terry_alert_to_verified_fix_seconds_bucket",
        "terry_notifications_pending",
        "terry_notifications_dead",
        "terry_notifications_delivered_total",
    ):
        assert wanted in read, f"no panel shows {wanted}"
    quantiles = [e for _w, e in queries(board) if "histogram_quantile" in e]
    assert quantiles and all(
        metric_names(e) <= {k for k, t in names.items() if t == "histogram"} for e in quantiles
    ), "histogram_quantile over something that is not a histogram"
