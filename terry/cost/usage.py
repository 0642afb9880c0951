"""Utilisation over weeks, from Prometheus (node_exporter's metrics), per inventory host.

For each host, over ``cost.lookback`` (30 days) and ``cost.idle_lookback`` (7 days):

- CPU: the busy share of its busiest hour, one minus the idle rate of
  ``node_cpu_seconds_total{mode="idle"}`` over the rate of all its modes, over its CPUs, at
  its highest in the span (a subquery at 1h steps), and the mean over the span. "Under 20%
  for 30 days" means the busiest hour stayed under 20%.
- Memory: the used share ``1 - MemAvailable / MemTotal`` at its highest hour, and MemTotal.
- Disk: per filesystem, the used share ``1 - avail / size`` at its highest hour.
- Coverage: the share of the span's hours that have CPU samples. A host Prometheus has seen
  for a week has no 30-day figure to judge on; recommendations want 90% coverage.

A series names its host the way an alert does: the first of ``host_labels`` it carries,
looked up with ``Inventory.find``. Label values are data: looked up, never used as code.

Unknown is not healthy: Prometheus unreachable, a query refused, or a host without samples
leaves the figures ``None`` with the reason, and no recommendation is made on them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from terry.config import PrometheusConfig, prometheus_url
from terry.inventory.hosts import Inventory

__all__ = [
    "PromClient",
    "Usage",
    "UsageReading",
    "read_usage",
]

CPU_IDLE = 'node_cpu_seconds_total{mode="idle"}'


def _busy(window: str) -> str:
    """The busy share over ``window``: 1 - idle time over all CPU time. A ratio of two rates
    of series scraped together, so that where Prometheus extrapolates a rate (a series that
    starts, a scrape gap) both sides move alike: ``1 - rate(idle)`` alone reads a gap as load."""
    total = f"sum without (cpu, mode) (rate(node_cpu_seconds_total[{window}]))"
    return f"(1 - sum without (cpu, mode) (rate({CPU_IDLE}[{window}])) / {total})"


_HOURLY_BUSY = _busy("1h")
_MEMORY_USED = "(1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)"
_FS = 'fstype!~"tmpfs|ramfs|devtmpfs|overlay|squashfs|nsfs|autofs|proc|sysfs|fuse.*"'
_DISK_USED = f"(1 - node_filesystem_avail_bytes{{{_FS}}} / node_filesystem_size_bytes{{{_FS}}})"


def _span(seconds: float) -> str:
    whole = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def queries(lookback: float, idle_lookback: float) -> dict[str, str]:
    """The PromQL Terry asks, by figure (each answers one value per host or filesystem)."""
    w, i = _span(lookback), _span(idle_lookback)
    return {
        "cpu_peak": f"max_over_time({_HOURLY_BUSY}[{w}:1h])",
        "cpu_peak_idle": f"max_over_time({_HOURLY_BUSY}[{i}:1h])",
        "cpu_mean": _busy(w),
        "hours": f"count_over_time({_HOURLY_BUSY}[{w}:1h])",
        "hours_idle": f"count_over_time({_HOURLY_BUSY}[{i}:1h])",
        "memory_peak": f"max_over_time({_MEMORY_USED}[{w}:1h])",
        "memory_total": "node_memory_MemTotal_bytes",
        "disk_peak": f"max_over_time({_DISK_USED}[{w}:1h])",
    }


class PromError(Exception):
    """Why Prometheus gave no answer (a reason to show, never raised past this package)."""


class PromClient:
    """prometheus-api-client, no retries (a report waits for it once); failures as
    ``PromError`` with a reason that never holds the URL's credentials."""

    def __init__(self, prom: str | PrometheusConfig, timeout: float) -> None:
        from urllib3.util.retry import Retry

        from terry.prometheus import connect

        self.client = connect(prom, timeout=timeout, retry=Retry(total=0))
        self.timeout = timeout

    def _call(self, call: Any, query: str, **kwargs: Any) -> Any:
        from prometheus_api_client.exceptions import PrometheusApiClientException
        from requests.exceptions import ConnectionError, RequestException, Timeout

        try:
            return call(query, timeout=self.timeout, **kwargs)
        except (ConnectionError, Timeout) as exc:
            raise PromError(f"Prometheus could not be reached ({type(exc).__name__})") from exc
        except PrometheusApiClientException as exc:
            raise PromError(f"Prometheus refused the query ({str(exc)[:200]})") from exc
        except (RequestException, ValueError) as exc:
            raise PromError(f"Prometheus did not answer ({type(exc).__name__})") from exc

    def vector(self, query: str, at: float) -> list[tuple[dict[str, str], float]]:
        answer = self._call(self.client.custom_query, query, params={"time": f"{at:.3f}"})
        try:
            return [
                ({str(k): str(v) for k, v in item["metric"].items()}, float(item["value"][1]))
                for item in answer
            ]
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise PromError("Prometheus answered something that is not a vector") from exc

    def matrix(
        self, query: str, start: float, end: float, step: float
    ) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        answer = self._call(
            self.client.custom_query_range,
            query,
            start_time=datetime.fromtimestamp(start, UTC),
            end_time=datetime.fromtimestamp(end, UTC),
            step=f"{step:g}",
        )
        try:
            return [
                (
                    {str(k): str(v) for k, v in item["metric"].items()},
                    [(float(t), float(v)) for t, v in item["values"]],
                )
                for item in answer
            ]
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise PromError("Prometheus answered something that is not a matrix") from exc

    def close(self) -> None:
        self.client.close()


@dataclass(frozen=True)
class Usage:
    """One host's utilisation; shares are 0-1, None when Prometheus could not tell."""

    host: str
    cpu_peak: float | None = None  # busiest hour over the lookback
    cpu_peak_idle: float | None = None  # busiest hour over the idle lookback
    cpu_mean: float | None = None
    coverage: float = 0.0  # share of the lookback's hours with samples
    coverage_idle: float = 0.0
    memory_peak: float | None = None
    memory_total_gb: float | None = None
    disk_peak: dict[str, float] = field(default_factory=dict)  # mountpoint -> share


@dataclass(frozen=True)
class UsageReading:
    hosts: dict[str, Usage]
    error: str | None = None  # why every figure is unknown (Prometheus down, not configured)


def host_of(labels: dict[str, str], inventory: Inventory, host_labels: Sequence[str]) -> str | None:
    for name in host_labels:
        if name in labels:
            found = inventory.find(labels[name])
            return found.name if found else None
    return None


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def read_usage(
    inventory: Inventory,
    prom: str | PrometheusConfig | None,
    *,
    host_labels: Sequence[str],
    lookback: float,
    idle_lookback: float,
    at: float,
    timeout: float = 10.0,
) -> UsageReading:
    """Every inventory host's utilisation as Prometheus (``prom``: its configuration or URL)
    saw it before ``at``."""
    if not prometheus_url(prom):
        return UsageReading({}, "no Prometheus configured (prometheus.url): utilisation unknown")
    figures: dict[str, dict[str, Any]] = {name: {"disk_peak": {}} for name in inventory.hosts}
    assert prom is not None
    client = PromClient(prom, timeout)
    try:
        for key, query in queries(lookback, idle_lookback).items():
            for labels, value in client.vector(query, at):
                host = host_of(labels, inventory, host_labels)
                if host is None:
                    continue
                if key == "disk_peak":
                    mount = labels.get("mountpoint", "/")
                    if (found := _finite(value)) is not None:
                        figures[host]["disk_peak"][mount] = found
                elif key in ("hours", "hours_idle"):
                    span = lookback if key == "hours" else idle_lookback
                    share = min(value / max(span / 3600.0, 1.0), 1.0)
                    figures[host]["coverage" if key == "hours" else "coverage_idle"] = share
                elif key == "memory_total":
                    figures[host]["memory_total_gb"] = value / 2**30
                else:
                    figures[host][key] = _finite(value)
    except PromError as exc:
        return UsageReading({}, f"utilisation unknown: {exc}")
    finally:
        client.close()
    return UsageReading({h: Usage(host=h, **f) for h, f in figures.items()})
