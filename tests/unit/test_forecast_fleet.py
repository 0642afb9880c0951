"""``terry forecast``'s parts around the pure core: durations, the ``forecast:`` section,
the range query and how every Prometheus failure becomes a TerryError, and how series
become per-host forecasts (against a loopback HTTP server speaking Prometheus' API)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from terry.config import Config, load_config
from terry.durations import format_duration, parse_duration
from terry.errors import ConfigError
from terry.forecast import Outcome
from terry.forecast.findings import disk_fingerprint, disk_summary, leak_fingerprint
from terry.forecast.prometheus import PrometheusError, forecast_fleet, query_range
from terry.forecast.report import to_report
from terry.inventory.hosts import Host, Inventory
from terry.ports import free_port

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("10m", 600), ("6h", 21600), ("7d", 604800), ("1.5h", 5400), ("2w", 1209600)],
)
def test_durations_read_as_people_write_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(seconds) == seconds


@pytest.mark.parametrize("bad", ["7x", "", "-3m", "0s", True, "1e3d", [1], "m"])
def test_bad_durations_say_what_is_accepted(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_durations_are_shown_short() -> None:
    shown = [format_duration(s) for s in (45, 180, 5400, 9000, 57600, 86400 * 9.7)]
    assert shown == ["45s", "3m", "90m", "2.5h", "16h", "9.7d"]


def _load(tmp_path: Path, forecast: dict[str, Any]) -> Config:
    (tmp_path / "terry.yml").write_text(json.dumps({"forecast": forecast}))
    return load_config(tmp_path, environ={})


def test_the_forecast_section_has_defaults_and_derives_the_step(tmp_path: Path) -> None:
    default = _load(tmp_path, {}).forecast
    assert (default.lookback, default.horizon, default.lead_time) == (604800, 604800, 172800)
    assert default.resolution == pytest.approx(604.8) and default.disk_threshold == 80
    assert 'fstype!~"tmpfs' in default.disk_promql and default.propose is True
    lab = _load(tmp_path, {"lookback": "3m", "step": "2s", "min_span": "30s"}).forecast
    assert (lab.lookback, lab.resolution, lab.min_span) == (180, 2, 30)
    assert _load(tmp_path, {"lookback": "10m"}).forecast.resolution == 1.0  # the floor
    custom = _load(tmp_path, {"disk_query": "my:used_fraction"}).forecast
    assert custom.disk_promql == "my:used_fraction"


@pytest.mark.parametrize(
    ("forecast", "message"),
    [
        ({"lookback": "7x"}, r"forecast\.lookback: .*'7x' is not a duration"),
        ({"lead_time": -1}, r"forecast\.lead_time: .*not a positive duration"),
        ({"step": "10s"}, r"forecast: .*60480 points; Prometheus answers at most 11000"),
        ({"lookback": "1h", "min_span": "2h"}, r"min_span \(2h\) is longer than lookback"),
        ({"disk_threshold": 100}, r"forecast\.disk_threshold"),
        ({"min_points": 2}, r"forecast\.min_points"),
        ({"typo": 1}, r"forecast\.typo"),
        ({"horizon": "20000d"}, r"forecast\.horizon"),  # past ten years no date is written
    ],
)
def test_bad_forecast_settings_are_config_errors(
    tmp_path: Path, forecast: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, forecast)


Answer = tuple[int, str, bytes]


class FakePrometheus:
    """``/api/v1/query_range`` answered by ``respond(query) -> (status, type, body)``."""

    def __init__(self, respond: Callable[[str], Answer]) -> None:
        self.queries: list[dict[str, list[str]]] = []
        queries = self.queries

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                params = parse_qs(urlsplit(self.path).query)
                queries.append(params)
                status, kind, body = respond(params.get("query", [""])[0])
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://user:secret@127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[Callable[[Callable[[str], Answer]], FakePrometheus]]:
    made: list[FakePrometheus] = []

    def make(respond: Callable[[str], Answer]) -> FakePrometheus:
        made.append(FakePrometheus(respond))
        return made[-1]

    yield make
    for server in made:
        server.close()


def _matrix(series: list[tuple[dict[str, str], np.ndarray, np.ndarray]]) -> Answer:
    result = [
        {"metric": labels, "values": [[float(a), f"{b:.9g}"] for a, b in zip(t, y, strict=True)]}
        for labels, t, y in series
    ]
    body = {"status": "success", "data": {"resultType": "matrix", "result": result}}
    return 200, "application/json", json.dumps(body).encode()


def _query(url: str) -> list[Any]:
    return query_range(url, "up", start=NOW - 600, end=NOW, step=60, timeout=2)


def test_a_range_answer_becomes_series(fake: Any) -> None:
    t = np.arange(NOW - 600, NOW + 1, 60.0)
    server = fake(lambda _q: _matrix([({"host": "a"}, t, np.full(t.size, 0.5))]))
    [series] = _query(server.url)
    assert series.labels == {"host": "a"} and series.values.tolist() == [0.5] * t.size
    params = server.queries[0]
    assert params["step"] == ["60"] and params["start"] == [str(int(NOW - 600))]


@pytest.mark.parametrize(
    ("status", "kind", "body", "error", "message"),
    [
        (
            400,
            "application/json",
            b'{"status":"error","errorType":"bad_data","error":"parse error at char 6"}',
            ConfigError,
            r"refused the forecast query \(400 bad_data: parse error at char 6\); "
            r"the query was: up",
        ),
        (
            422,
            "application/json",
            b'{"status":"error","errorType":"execution","error":"many-to-many matching"}',
            ConfigError,
            r"\(422 execution: many-to-many matching\)",
        ),
        (503, "text/plain", b"overloaded", PrometheusError, r"answered 503 .*: overloaded"),
        (401, "text/plain", b"no", PrometheusError, r"answered 401"),
        (200, "text/html", b"<html>login</html>", PrometheusError, r"did not answer like"),
        (
            200,
            "application/json",
            b'{"status":"success","data":{"result":[{"metric":{},"values":[["x"]]}]}}',
            PrometheusError,
            r"malformed series",
        ),
    ],
)
def test_prometheus_failures_are_terry_errors(
    fake: Any, status: int, kind: str, body: bytes, error: type, message: str
) -> None:
    server = fake(lambda _q: (status, kind, body))
    with pytest.raises(error, match=message) as caught:
        _query(server.url)
    assert "secret" not in str(caught.value)  # the URL's password is never shown
    if status == 503:
        assert len(server.queries) == 3  # tried again twice


def test_an_unreachable_prometheus_is_a_prometheus_error() -> None:
    with pytest.raises(PrometheusError, match=r"could not be reached .*Connection refused"):
        _query(f"http://127.0.0.1:{free_port()}")
    assert PrometheusError.exit_code == 8


def _host(name: str, address: str | None = None) -> Host:
    return Host(name=name, address=address, environment="staging", tenant=None)


INVENTORY = Inventory(
    hosts={h.name: h for h in (_host("web-01"), _host("web-02", "10.0.0.2"), _host("db-01"))}
)


def _config(tmp_path: Path, url: str, **forecast: Any) -> Config:
    return Config.model_validate(
        {
            "repo": tmp_path,
            "prometheus": {"url": url, "timeout": 2},
            "forecast": {"lookback": "1d", "step": "10m", "lead_time": "1d", **forecast},
        }
    )


def _fleet_server(fake: Any, disk: Callable[[np.ndarray], list[Any]]) -> FakePrometheus:
    t = np.arange(NOW - 86400, NOW + 1, 600.0)

    def respond(query: str) -> Answer:
        if "node_memory" in query:
            leak = 1e9 + 5e8 * (t - t[0]) / 86400
            return _matrix(
                [({"host": "web-01"}, t, leak), ({"host": "db-01"}, t, np.full(t.size, 2e9))]
            )
        return _matrix(disk(t))

    return fake(respond)


def test_series_become_forecasts_per_inventory_host_and_filesystem(
    fake: Any, tmp_path: Path
) -> None:
    rng = np.random.default_rng(5)
    fs = {"mountpoint": "/srv/data", "fstype": "ext4"}

    def disk(t: np.ndarray) -> list[Any]:
        growing = 0.50 + 0.20 * (t - t[0]) / 86400 + rng.normal(0, 1e-3, t.size)  # 70% now
        return [
            ({"host": "web-01", **fs}, t, growing),
            # by address and port, as a plain node_exporter scrape names it
            ({"instance": "10.0.0.2:9100", **fs}, t, 0.3 + rng.normal(0, 1e-3, t.size)),
            ({"host": "ghost", **fs}, t, growing),  # not in the inventory
            ({"host": "db-01"}, t, growing),  # no mountpoint label
            ({"host": "db-01", "mountpoint": "/var"}, t[:50], growing[:50]),  # stopped long ago
            ({"host": "db-01", "mountpoint": "/srv/data"}, t, np.full(t.size, 0.95)),  # above
            ({"host": "web-02", "mountpoint": "/data"}, t, np.full(t.size, np.nan)),  # no value
        ]

    server = _fleet_server(fake, disk)
    fleet = forecast_fleet(_config(tmp_path, server.url), INVENTORY, now=NOW)
    by = {(d.host, d.mountpoint): d for d in fleet.disks}
    assert set(by) == {
        ("web-01", "/srv/data"),
        ("web-02", "/srv/data"),
        ("db-01", "/var"),
        ("db-01", "/srv/data"),
    }
    web01 = by[("web-01", "/srv/data")]
    assert web01.forecast.outcome is Outcome.CROSSING and web01.preventive
    assert web01.projected_in == pytest.approx(86400 / 2, rel=0.05)  # 10 points at 20/day
    assert web01.slope_percent_per_day == pytest.approx(20, rel=0.05)
    assert disk_summary(web01).startswith("/srv/data on web-01 is 70% full and will reach 80%")
    assert by[("web-02", "/srv/data")].forecast.outcome is Outcome.FLAT
    assert by[("db-01", "/var")].stale and not by[("db-01", "/var")].preventive
    above = by[("db-01", "/srv/data")]
    assert above.forecast.outcome is Outcome.ABOVE_THRESHOLD and not above.preventive
    assert fleet.preventive == (web01,)
    assert any("ghost" in u and "not in the inventory" in u for u in fleet.unmatched)
    assert any("without a mountpoint label" in u for u in fleet.unmatched)
    assert "/data on web-02: no finite sample in the window" in " ".join(fleet.unmatched)
    # the lead time decides what is prevented, the horizon what is reported as crossing
    later = forecast_fleet(
        _config(tmp_path, server.url), INVENTORY, now=NOW, lead_time=3600, horizon=3600
    )
    web01 = next(d for d in later.disks if d.host == "web-01")
    assert web01.forecast.outcome is Outcome.BEYOND_HORIZON and not web01.preventive

    # memory: web-01 grows steadily, db-01 does not (leak checks need 12 h by default)
    memory = {m.host: m for m in fleet.memory}
    assert memory["web-01"].suspected and not memory["db-01"].suspected
    report = json.loads(json.dumps(to_report(fleet)))  # plain JSON: no NaN or Infinity
    assert report["schema"] == "terry.forecast/v1" and report["proposed"] is False
    assert [d["preventive"] for d in report["disks"]].count(True) == 1


def test_limit_and_min_points(fake: Any, tmp_path: Path) -> None:
    def disk(t: np.ndarray) -> list[Any]:
        return [
            ({"host": h, "mountpoint": "/"}, t, 0.2 + 0.3 * (t - t[0]) / 86400)
            for h in ("web-01", "ghost")
        ]

    server = _fleet_server(fake, disk)
    only = forecast_fleet(_config(tmp_path, server.url), INVENTORY, hosts=["db-01"], now=NOW)
    assert only.disks == () and [m.host for m in only.memory] == ["db-01"]
    assert only.unmatched == ()  # a limited report does not list what is outside it
    strict = forecast_fleet(_config(tmp_path, server.url, min_points=500), INVENTORY, now=NOW)
    assert all(d.forecast.outcome is Outcome.NOT_ENOUGH_DATA for d in strict.disks)


def test_a_percent_query_is_refused(fake: Any, tmp_path: Path) -> None:
    server = _fleet_server(fake, lambda t: [({"host": "web-01", "mountpoint": "/"}, t, 50 + 0 * t)])
    with pytest.raises(ConfigError, match="used fraction between 0 and 1"):
        forecast_fleet(_config(tmp_path, server.url), INVENTORY, now=NOW)


def test_no_prometheus_url_is_a_config_error(tmp_path: Path) -> None:
    config = Config.model_validate({"repo": tmp_path})
    with pytest.raises(ConfigError, match=r"prometheus\.url"):
        forecast_fleet(config, INVENTORY, now=NOW)


def test_fingerprints_are_bounded_and_distinct() -> None:
    odd = "/srv/" + "x" * 500 + "{{ lookup('pipe', 'id') }}"
    fps = {disk_fingerprint("web-01", "/srv/data"), disk_fingerprint("web-01", odd)}
    fps |= {disk_fingerprint("web-02", "/srv/data"), leak_fingerprint("web-01")}
    assert len(fps) == 4 and all(len(f) <= 64 and "{" not in f for f in fps)
