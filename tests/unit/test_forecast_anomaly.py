"""Anomalous hosts around the pure core: the ``forecast.anomaly`` section, series cut into
rows (now and history), feature queries mapped to inventory hosts (a loopback server
speaking Prometheus' API), and what an anomaly incident and the JSON report carry."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from terry.config import DEFAULT_ANOMALY_FEATURES
from terry.errors import ConfigError
from terry.forecast import HostMetrics, detect_anomalies
from terry.forecast.findings import anomaly_fingerprint, anomaly_incident, leak_fingerprint
from terry.forecast.nodes import AnomalyScan, host_rows, span_means
from terry.forecast.prometheus import RangeSeries, forecast_fleet
from terry.forecast.report import to_report
from tests.unit.test_forecast_fleet import (
    INVENTORY,
    NOW,
    Answer,
    _config,
    _load,
    _matrix,
    fake,  # noqa: F401 (fixture)
)

pytestmark = pytest.mark.unit

MINUTE = 60.0


def _series(t: list[float] | np.ndarray, y: list[float] | np.ndarray) -> RangeSeries:
    return RangeSeries({}, np.asarray(t, dtype=np.float64), np.asarray(y, dtype=np.float64))


def test_the_anomaly_section_has_defaults_and_is_validated(tmp_path: Path) -> None:
    default = _load(tmp_path, {}).forecast.anomaly
    assert default.enabled and (default.window, default.current) == (6 * 3600, 900)
    assert default.resolution == 180 and default.features == DEFAULT_ANOMALY_FEATURES
    assert set(default.features) >= {"load_per_cpu", "memory_used", "cpu_busy", "net_rx_bytes"}
    custom = _load(
        tmp_path, {"anomaly": {"window": "1h", "current": "5m", "features": {"load": "x"}}}
    ).forecast.anomaly
    assert (custom.window, custom.current, custom.resolution) == (3600, 300, 60)
    for bad, message in [
        ({"current": "2h", "window": "1h"}, r"current \(2h\) is longer than window \(60m\)"),
        ({"step": "20m"}, r"step \(20m\) is longer than current"),
        ({"features": {}}, r"features is empty"),
        ({"features": {"Load 1": "node_load1"}}, r"forecast\.anomaly\.features"),
        ({"features": {"load": "  "}}, r"forecast\.anomaly\.features\.load"),
        ({"min_z": 0}, r"forecast\.anomaly\.min_z"),
        ({"score_threshold": 1}, r"forecast\.anomaly\.score_threshold"),
        ({"min_hosts": 1}, r"forecast\.anomaly\.min_hosts"),
    ]:
        with pytest.raises(ConfigError, match=message):
            _load(tmp_path, {"anomaly": bad})


def test_spans_are_cut_from_the_end() -> None:
    end = 10_000.0
    t = end - np.array([29, 25, 21, 19, 11, 10, 9, 1, 0]) * MINUTE
    y = [1, 2, 3, 10, 20, 30, math.nan, 5, 7]
    # 10-minute spans, oldest first: (end-30m, end-20m], (end-20m, end-10m], (end-10m, end]
    means = span_means(_series(t, y), end=end, span=10 * MINUTE, count=3)
    assert means.tolist() == [2.0, 20.0, 6.0]  # end - 10m belongs to the middle span
    # a span without a sample is NaN; a sample older than the window is left out
    gap = span_means(_series([end - 45 * MINUTE, end], [4, 8]), end=end, span=600, count=3)
    assert math.isnan(gap[0]) and math.isnan(gap[1]) and gap[2] == 8


def test_rows_per_host_now_and_history() -> None:
    end = 10_000.0
    t = end - np.arange(59, -1, -1) * MINUTE  # an hour, one sample a minute
    ramp = np.arange(60, dtype=np.float64)
    series = {
        "load": {
            "web-01": _series(t, ramp),
            "db-01": _series(t[:30], ramp[:30]),  # stopped half an hour ago
        },
        "memory": {"web-01": _series(t, 0.5 + 0 * ramp), "web-02": _series(t[-10:], ramp[-10:])},
    }
    rows, stale = host_rows(("load", "memory"), series, end=end, window=3600, current=900)
    by_host = {r.host: r for r in rows}
    assert stale == ("db-01",) and set(by_host) == {"web-01", "web-02"}
    web01 = by_host["web-01"]
    # four 15-minute spans: the last is now, the three before are its history
    assert web01.values == (52.0, 0.5)
    assert web01.history == ((7.0, 0.5), (22.0, 0.5), (37.0, 0.5))
    web02 = by_host["web-02"]  # no load series, ten minutes of memory: no history
    assert math.isnan(web02.values[0]) and web02.values[1] == 54.5 and web02.history == ()


def _fleet_server(fake: Any, *, odd: bool) -> Any:  # noqa: F811
    """web-01 named by ``host``, web-02 by its address and port, db-01 and a ghost; with
    ``odd``, web-01's load is ten times the others' for its last ten minutes."""
    t = np.arange(NOW - 3600, NOW + 1, 60.0)
    rng = np.random.default_rng(3)
    names = [{"host": "web-01"}, {"instance": "10.0.0.2:9100"}, {"host": "db-01"}]
    ghost = {"host": "ghost-07"}

    def respond(query: str) -> Answer:
        if query == "node_load1":
            loads = [1.0 + rng.normal(0, 0.05, t.size) for _ in names]
            if odd:
                loads[0] = np.where(t > NOW - 600, 10.0, loads[0])
            return _matrix([*zip(names, [t] * 3, loads, strict=True), (ghost, t, 0 * t + 50)])
        if query == "memory_fraction":
            return _matrix([(n, t, 0.4 + rng.normal(0, 0.01, t.size)) for n in names])
        return _matrix([])  # no filesystems

    return fake(respond)


def _anomaly_config(tmp_path: Path, url: str, **anomaly: Any) -> Any:
    return _config(
        tmp_path,
        url,
        memory_query=None,
        anomaly={
            "window": "1h",
            "current": "10m",
            "features": {"load": "node_load1", "memory": "memory_fraction"},
            "min_hosts": 3,
            **anomaly,
        },
    )


def test_feature_queries_become_rows_of_inventory_hosts(fake: Any, tmp_path: Path) -> None:  # noqa: F811
    server = _fleet_server(fake, odd=True)
    fleet = forecast_fleet(_anomaly_config(tmp_path, server.url), INVENTORY, now=NOW)
    scan = fleet.anomalies
    assert scan is not None and scan.features == ("load", "memory")
    assert scan.compared == ("db-01", "web-01", "web-02")  # web-02 by 10.0.0.2:9100
    assert (scan.window, scan.current, scan.step) == (3600, 600, 120)
    assert any("ghost-07" in u and "not in the inventory" in u for u in fleet.unmatched)
    [odd] = scan.anomalous
    assert odd.host == "web-01" and [e.feature for e in scan.outstanding(odd)] == ["load"]
    load = odd.evidence[0]
    assert load.value == pytest.approx(10.0) and load.fleet_median == pytest.approx(1.0, abs=0.1)
    assert load.history_median == pytest.approx(1.0, abs=0.1)
    queried = [q["query"][0] for q in server.queries]
    assert queried.count("node_load1") == 1 and queried.count("memory_fraction") == 1
    assert all(q["step"] == ["120"] for q in server.queries if q["query"][0] == "node_load1")

    # limited to two hosts: fewer than min_hosts, so no one is judged; nothing outside listed
    only = forecast_fleet(
        _anomaly_config(tmp_path, server.url), INVENTORY, hosts=["web-01", "db-01"], now=NOW
    )
    assert only.anomalies is not None and only.anomalies.compared == ("db-01", "web-01")
    assert only.anomalies.report.reason == "2 host(s) with recent node metrics, need 3"
    assert only.anomalies.anomalous == () and only.anomalies.judged("web-01") is None
    assert only.unmatched == ()

    # switched off: no feature is queried and the report says null
    before = len(server.queries)
    off = forecast_fleet(_anomaly_config(tmp_path, server.url, enabled=False), INVENTORY, now=NOW)
    assert off.anomalies is None
    disk_query = _config(tmp_path, server.url).forecast.disk_promql
    assert [q["query"][0] for q in server.queries[before:]] == [disk_query]
    report = to_report(off)
    assert report["anomaly"] is None and report["anomalies"] == []


def test_an_anomaly_incident_carries_its_evidence_and_the_report_too(
    fake: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    server = _fleet_server(fake, odd=True)
    fleet = forecast_fleet(_anomaly_config(tmp_path, server.url), INVENTORY, now=NOW)
    assert fleet.anomalies is not None
    [odd] = fleet.anomalies.anomalous
    labels, annotations = anomaly_incident(fleet.anomalies, odd)
    assert labels == {
        "alertname": "HostAnomaly",
        "kind": "anomaly",
        "host": "web-01",
        "severity": "info",
        "features": "load",
    }
    assert annotations["summary"] == (
        f"web-01's node metrics stand out: load (anomaly score {odd.score:.2f})"
    )
    assert annotations["evidence_load"].startswith("load = 10 (fleet median 1")
    assert "; own history " in annotations["evidence_load"]
    assert annotations["description"].startswith(
        "Node metrics over the last 10m, against 2 other host(s) and the host's own 60m"
    )
    assert annotations["description"].endswith(
        "For review only: Terry proposes no change for an anomaly."
    )
    assert all(isinstance(v, str) for v in [*labels.values(), *annotations.values()])

    report = json.loads(json.dumps(to_report(fleet)))  # plain JSON: no NaN
    [entry] = report["anomalies"]
    assert entry["host"] == "web-01" and entry["features"] == ["load"]
    load = entry["evidence"][0]
    assert load["feature"] == "load" and load["value"] == pytest.approx(10.0)
    assert load["z"] == max(load["fleet_z"], load["history_z"], key=abs)
    assert load["description"] == annotations["evidence_load"]
    assert report["anomaly"]["compared"] == ["db-01", "web-01", "web-02"]
    assert report["anomaly"]["reason"] == "" and set(report["anomaly"]["scores"]) == {
        "db-01",
        "web-01",
        "web-02",
    }

    calm = forecast_fleet(
        _anomaly_config(tmp_path, _fleet_server(fake, odd=False).url), INVENTORY, now=NOW
    )
    assert calm.anomalies is not None and calm.anomalies.anomalous == ()
    assert calm.anomalies.judged("web-01") is not None


def test_an_anomaly_fingerprint_is_per_host_and_its_own() -> None:
    assert anomaly_fingerprint("web-01") != anomaly_fingerprint("web-02")
    assert anomaly_fingerprint("web-01") != leak_fingerprint("web-01")
    assert len(anomaly_fingerprint("x" * 1000)) <= 128


def test_too_little_data_judges_no_one() -> None:
    rows = (HostMetrics("a", (1.0,)), HostMetrics("b", (2.0,)))
    scan = AnomalyScan(
        features=("load",),
        window=600,
        current=600,
        step=60,
        report=detect_anomalies(rows, ("load",)),
        stale=(),
        min_z=4.0,
    )
    assert scan.report.reason.startswith("not enough data")
    assert scan.judged("a") is None and scan.anomalous == ()
