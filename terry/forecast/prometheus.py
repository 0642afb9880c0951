"""Forecasts for the fleet, from Prometheus range data.

For every inventory host and filesystem: the used fraction over ``forecast.lookback`` (one
``query_range`` at ``forecast.step``), its robust trend, and when it will cross
``forecast.disk_threshold`` (``terry.forecast.forecast``); for every host's used memory: does
it grow like a leak (``terry.forecast.detect_leak``); for every host's node metrics
(``forecast.anomaly.features``, one query each over ``forecast.anomaly.window``): does it
stand out from the fleet or from its own history (``terry.forecast.detect_anomalies``). A
series names its host the way an alert does: the first of ``host_labels`` it carries, looked
up with ``Inventory.find``.

Label values are data from Prometheus: they are looked up, compared and shown, never used
as code. Prometheus' failures are ``TerryError``s: a query it refuses (400, 422) is the
configuration's (``ConfigError``); unreachable, refusing, failing or answering something
that is not a range result is ``PrometheusError``.
"""

from __future__ import annotations

import ast
import json
import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from numpy.typing import NDArray

from terry.config import AnomalyConfig, Config, ForecastConfig, PrometheusConfig, prometheus_url
from terry.errors import ConfigError, TerryError
from terry.forecast.anomaly import AnomalySettings
from terry.forecast.leak import Leak, LeakSettings, detect_leak
from terry.forecast.nodes import AnomalyScan, compare, host_rows
from terry.forecast.ranges import RangeSeries
from terry.forecast.trend import Forecast, ForecastSettings, Outcome, forecast
from terry.inventory.hosts import Host, Inventory

__all__ = [
    "DiskForecast",
    "FleetForecast",
    "MemoryCheck",
    "PrometheusError",
    "RangeSeries",
    "forecast_fleet",
    "query_range",
]

Floats = NDArray[np.float64]
_NO_SAMPLE = "no finite sample in the window (NaN or infinite only): not forecast"


class PrometheusError(TerryError):
    """Prometheus could not be queried: unreachable, refusing, failing, or not answering
    like Prometheus. Exit code 8, as for the other services Terry depends on to act."""

    exit_code = 8


def _shown_url(url: str) -> str:
    """The URL without user and password (never in a message)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _refusal(exc: Exception) -> tuple[int | None, str]:
    """(status, Prometheus' own error text) from the client library's exception message,
    "HTTP Status Code 400 (b'{...}')"."""
    match = re.match(r"HTTP Status Code (\d+) \((.*)\)$", str(exc), re.S)
    if match is None:
        return None, str(exc)[:300]
    status, raw = int(match.group(1)), match.group(2)
    text = raw
    try:
        body = ast.literal_eval(raw)  # the repr of the response's bytes: a literal, never code
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        answer = json.loads(text)
        if isinstance(answer, dict) and answer.get("error"):
            kind = answer.get("errorType")
            text = f"{kind}: {answer['error']}" if kind else str(answer["error"])
    except (ValueError, SyntaxError, TypeError, MemoryError):
        pass
    return status, " ".join(text.split())[:300]


def _reason(exc: Exception) -> str:
    """Why a request failed, without the query string: "[Errno 111] Connection refused"."""
    inner = exc.args[0] if exc.args else None
    text = str(getattr(inner, "reason", None) or inner or exc)
    errno = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    if errno is not None:
        return errno.group(0).strip()
    if "timed out" in text.lower():
        return "timed out"
    return " ".join(text.split())[:200]


def query_range(
    prom: str | PrometheusConfig,
    query: str,
    *,
    start: float,
    end: float,
    step: float,
    timeout: float = 10.0,
    what: str = "forecast",
) -> list[RangeSeries]:
    """``/api/v1/query_range`` of the Prometheus ``prom`` (its configuration or URL) through
    prometheus-api-client; every failure a TerryError."""
    from prometheus_api_client.exceptions import PrometheusApiClientException
    from requests.exceptions import RequestException
    from urllib3.util.retry import Retry

    from terry.prometheus import MissingCredential, connect

    shown = _shown_url(prometheus_url(prom) or "")
    # Connection errors and 502/503/504 are tried again twice (0.5 s, 1 s), then reported.
    retry = Retry(
        total=2, backoff_factor=0.5, status_forcelist=(502, 503, 504), raise_on_status=False
    )
    client = connect(prom, timeout=timeout, retry=retry)
    try:
        answer = client.custom_query_range(
            query,
            start_time=datetime.fromtimestamp(start, UTC),
            end_time=datetime.fromtimestamp(end, UTC),
            step=f"{step:g}",
            timeout=timeout,  # seconds, passed on to requests (a float is fine)
        )
    except PrometheusApiClientException as exc:
        status, error = _refusal(exc)
        if status in (400, 422):  # bad_data / execution: the query is the configuration's
            raise ConfigError(
                f"Prometheus at {shown} refused the {what} query ({status} {error}); "
                f"the query was: {query}"
            ) from exc
        raise PrometheusError(
            f"Prometheus at {shown} answered {status} to the {what} query: {error}"
        ) from exc
    except ValueError as exc:  # includes requests' JSONDecodeError: not Prometheus' JSON
        raise PrometheusError(
            f"{shown} did not answer like Prometheus (no JSON): {str(exc)[:200]}"
        ) from exc
    except MissingCredential as exc:
        raise ConfigError(str(exc)) from exc
    except RequestException as exc:
        reason = _reason(exc)
        raise PrometheusError(
            f"Prometheus at {shown} could not be reached ({type(exc).__name__}): {reason}"
        ) from exc
    finally:
        client.close()
    return _parse_matrix(answer, shown, what)


def _parse_matrix(answer: Any, shown: str, what: str) -> list[RangeSeries]:
    if not isinstance(answer, list):
        raise PrometheusError(f"Prometheus at {shown} answered the {what} query with no matrix")
    out: list[RangeSeries] = []
    try:
        for item in answer:
            metric = item["metric"]
            if not isinstance(metric, dict):
                raise TypeError("metric is not a mapping")
            labels = {str(k): str(v) for k, v in metric.items()}
            pairs = item["values"]
            t = np.array([float(p[0]) for p in pairs], dtype=np.float64)
            y = np.array([float(p[1]) for p in pairs], dtype=np.float64)  # "NaN", "+Inf" ok
            order = np.argsort(t, kind="stable")
            out.append(RangeSeries(labels, t[order], y[order]))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise PrometheusError(
            f"Prometheus at {shown} answered the {what} query with a malformed series: {exc}"
        ) from exc
    return out


@dataclass(frozen=True)
class DiskForecast:
    """One filesystem of one host: where it is, where its trend goes, and whether Terry
    should act now (``preventive``)."""

    host: str
    mountpoint: str
    labels: dict[str, str]  # the series' labels, as Prometheus gave them
    used_percent: float  # the last sample
    last_sample: float  # epoch seconds
    threshold: int  # percent
    forecast: Forecast  # on the used fraction; its threshold is ``threshold`` / 100
    lead_time: float
    stale: bool  # no sample for a while: reported, never acted on

    @property
    def slope_percent_per_day(self) -> float | None:
        slope = self.forecast.slope
        return None if slope is None else slope * 100 * 86400

    @property
    def projected_in(self) -> float | None:
        """Seconds from the forecast's now to where the trend meets the threshold."""
        at = self.forecast.projected_at
        return None if at is None else at - self.forecast.now

    @property
    def preventive(self) -> bool:
        """Crossing within the lead time, still below the threshold, with fresh data."""
        ahead = self.projected_in
        return (
            not self.stale
            and self.forecast.outcome in (Outcome.CROSSING, Outcome.BEYOND_HORIZON)
            and ahead is not None
            and ahead <= self.lead_time
            and self.used_percent < self.threshold
        )


@dataclass(frozen=True)
class MemoryCheck:
    """One host's used memory over the lookback, judged for a leak."""

    host: str
    labels: dict[str, str]
    used: float  # the last sample, in the query's units (bytes by default)
    last_sample: float
    leak: Leak
    stale: bool

    @property
    def suspected(self) -> bool:
        return self.leak.suspected and not self.stale


@dataclass(frozen=True)
class FleetForecast:
    now: float  # epoch seconds: the end of the queried range
    lookback: float
    step: float
    horizon: float
    lead_time: float
    threshold: int  # percent
    disks: tuple[DiskForecast, ...]
    memory: tuple[MemoryCheck, ...]
    # Series not forecast, one line each: they name no inventory host, lack a label the
    # forecast needs, or hold no finite sample.
    unmatched: tuple[str, ...]
    anomalies: AnomalyScan | None = None  # None: forecast.anomaly.enabled is off

    @property
    def preventive(self) -> tuple[DiskForecast, ...]:
        return tuple(d for d in self.disks if d.preventive)


def _settings(fc: ForecastConfig) -> tuple[ForecastSettings, LeakSettings]:
    trend = ForecastSettings()
    if fc.min_points is not None:
        trend = replace(trend, min_points=fc.min_points)
    if fc.min_span is not None:
        trend = replace(trend, min_span=fc.min_span)
    leak = LeakSettings(trend=trend)
    if fc.min_points is not None:
        leak = replace(leak, min_points=fc.min_points)
    if fc.min_span is not None:
        leak = replace(leak, min_span=fc.min_span)
    return trend, leak


def _host(
    labels: dict[str, str], host_labels: list[str], inventory: Inventory
) -> tuple[Host | None, str]:
    """The inventory host a series names (as alerts are mapped), or None and why not."""
    named = next(((k, labels[k]) for k in host_labels if labels.get(k)), None)
    if named is None:
        return None, f"a series without a host label ({', '.join(host_labels)})"
    key, value = named
    host = inventory.find(value)
    if host is None:
        return None, f"{key}={value[:120]!r}: not in the inventory"
    return host, ""


def _pick(current: RangeSeries | None, candidate: RangeSeries) -> RangeSeries:
    """Of two series for the same host and filesystem: the longer, then the fresher."""
    if current is None:
        return candidate

    def rank(s: RangeSeries) -> tuple[int, float]:
        finite = np.isfinite(s.values)
        return int(finite.sum()), float(s.timestamps[finite][-1]) if finite.any() else 0.0

    return candidate if rank(candidate) > rank(current) else current


def _per_host(
    found: list[RangeSeries], mapped: Callable[[RangeSeries], Host | None]
) -> dict[str, RangeSeries]:
    """Inventory host name -> its series (of several: the longer, then the fresher)."""
    by_host: dict[str, RangeSeries] = {}
    for series in found:
        host = mapped(series)
        if host is not None:
            by_host[host.name] = _pick(by_host.get(host.name), series)
    return by_host


def _scan_anomalies(
    prom: PrometheusConfig,
    ac: AnomalyConfig,
    mapped: Callable[[RangeSeries], Host | None],
    *,
    end: float,
    timeout: float,
) -> AnomalyScan:
    """Every feature's series per host, cut into rows, and the hosts that stand out."""
    step = ac.resolution
    by_feature = {
        name: _per_host(
            query_range(
                prom,
                query,
                start=end - ac.window,
                end=end,
                step=step,
                timeout=timeout,
                what=f"anomaly feature {name}",
            ),
            mapped,
        )
        for name, query in ac.features.items()
    }
    features = tuple(ac.features)
    rows, stale = host_rows(features, by_feature, end=end, window=ac.window, current=ac.current)
    settings = AnomalySettings(score_threshold=ac.score_threshold, min_z=ac.min_z)
    return AnomalyScan(
        features=features,
        window=ac.window,
        current=ac.current,
        step=step,
        report=compare(rows, features, settings=settings, min_hosts=ac.min_hosts),
        stale=stale,
        min_z=ac.min_z,
    )


def _last(series: RangeSeries) -> tuple[float, float] | None:
    finite = np.isfinite(series.values)
    if not finite.any():
        return None
    return float(series.timestamps[finite][-1]), float(series.values[finite][-1])


def forecast_fleet(
    config: Config,
    inventory: Inventory,
    *,
    hosts: Collection[str] | None = None,
    horizon: float | None = None,
    lead_time: float | None = None,
    now: float | None = None,
) -> FleetForecast:
    """Query Prometheus and forecast every host's filesystems and memory.

    ``hosts`` limits the report to those inventory hosts (``--limit``); ``horizon`` and
    ``lead_time`` override ``forecast.horizon`` and ``forecast.lead_time``.
    """
    fc = config.forecast
    prom = config.prometheus
    if not prom.url:
        raise ConfigError(
            "terry forecast reads Prometheus: set prometheus.url in terry.yml "
            "(or TERRY_PROMETHEUS_URL)"
        )
    end = float(int(time.time() if now is None else now))
    step = fc.resolution
    start = end - fc.lookback
    horizon = fc.horizon if horizon is None else horizon
    lead_time = fc.lead_time if lead_time is None else lead_time
    trend_settings, leak_settings = _settings(fc)
    stale_after = max(2 * step, 300.0)
    wanted = None if hosts is None else set(hosts)
    unmatched: dict[str, None] = {}

    def mapped(series: RangeSeries) -> Host | None:
        host, why = _host(series.labels, config.host_labels, inventory)
        if host is None:
            if wanted is None:
                unmatched[why] = None
            return None
        return host if wanted is None or host.name in wanted else None

    timeout = config.prometheus.timeout
    disk_series: dict[tuple[str, str], RangeSeries] = {}
    disk_query = fc.disk_promql
    for series in query_range(
        prom, disk_query, start=start, end=end, step=step, timeout=timeout, what="disk"
    ):
        host = mapped(series)
        if host is None:
            continue
        mountpoint = series.labels.get("mountpoint")
        if not mountpoint:
            unmatched[f"a disk series of {host.name} without a mountpoint label"] = None
            continue
        finite = series.values[np.isfinite(series.values)]
        if finite.size and (float(finite.max()) > 1.0001 or float(finite.min()) < -0.0001):
            raise ConfigError(
                f"forecast.disk_query must answer a used fraction between 0 and 1; it "
                f"answered {float(finite.max()):g} for {mountpoint[:120]!r} on {host.name}"
            )
        key = (host.name, mountpoint)
        disk_series[key] = _pick(disk_series.get(key), series)

    disks: list[DiskForecast] = []
    threshold = fc.disk_threshold
    for (host_name, mountpoint), series in sorted(disk_series.items()):
        last = _last(series)
        if last is None:
            unmatched[f"{mountpoint[:120]} on {host_name}: {_NO_SAMPLE}"] = None
            continue
        found = forecast(
            series.timestamps,
            series.values,
            threshold / 100,
            horizon=horizon,
            now=end,
            settings=trend_settings,
        )
        disks.append(
            DiskForecast(
                host=host_name,
                mountpoint=mountpoint,
                labels=series.labels,
                used_percent=100 * last[1],
                last_sample=last[0],
                threshold=threshold,
                forecast=found,
                lead_time=lead_time,
                stale=end - last[0] > stale_after,
            )
        )

    memory: list[MemoryCheck] = []
    if fc.memory_query:
        memory_series = _per_host(
            query_range(
                prom,
                fc.memory_query,
                start=start,
                end=end,
                step=step,
                timeout=timeout,
                what="memory",
            ),
            mapped,
        )
        for host_name, series in sorted(memory_series.items()):
            last = _last(series)
            if last is None:
                unmatched[f"memory of {host_name}: {_NO_SAMPLE}"] = None
                continue
            memory.append(
                MemoryCheck(
                    host=host_name,
                    labels=series.labels,
                    used=last[1],
                    last_sample=last[0],
                    leak=detect_leak(series.timestamps, series.values, settings=leak_settings),
                    stale=end - last[0] > stale_after,
                )
            )
    anomalies = None
    if fc.anomaly.enabled:
        anomalies = _scan_anomalies(prom, fc.anomaly, mapped, end=end, timeout=timeout)
    return FleetForecast(
        now=end,
        lookback=fc.lookback,
        step=step,
        horizon=horizon,
        lead_time=lead_time,
        threshold=threshold,
        disks=tuple(disks),
        memory=tuple(memory),
        unmatched=tuple(unmatched),
        anomalies=anomalies,
    )
