"""The hosts' node metrics as rows for the anomaly check, and what the check found.

Every feature (``forecast.anomaly.features``: a name and a PromQL query answering one value
per host) is read over ``window`` and cut, from the end, into spans of ``current``: the last
span's mean is the host's row *now*, the earlier spans' means its own history. A host with
no sample in the last span has no row now: it is not compared (its data is stale), and an
open anomaly incident of it stays open. Pure: series in, ``HostMetrics`` out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from terry.forecast.anomaly import (
    AnomalyReport,
    AnomalySettings,
    FeatureEvidence,
    HostAnomaly,
    HostMetrics,
    detect_anomalies,
)

if TYPE_CHECKING:
    from terry.forecast.ranges import RangeSeries

__all__ = ["AnomalyScan", "compare", "host_rows", "span_means"]

Floats = NDArray[np.float64]


def span_means(series: RangeSeries, *, end: float, span: float, count: int) -> Floats:
    """Means of the finite samples in ``count`` consecutive spans ending at ``end`` (oldest
    first; the last is ``(end - span, end]``); NaN for a span without a sample."""
    t, y = series.timestamps, series.values
    out = np.full(count, math.nan)
    keep = np.isfinite(y) & np.isfinite(t) & (t > end - count * span) & (t <= end)
    if not keep.any():
        return out
    # a sample at end - k * span belongs to the span ending there
    index = count - 1 - np.floor((end - t[keep]) / span).astype(np.int64)
    index = np.clip(index, 0, count - 1)
    sums = np.bincount(index, weights=y[keep], minlength=count)
    counts = np.bincount(index, minlength=count)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    return np.where(counts > 0, means, out)


def host_rows(
    features: Sequence[str],
    series: Mapping[str, Mapping[str, RangeSeries]],
    *,
    end: float,
    window: float,
    current: float,
) -> tuple[tuple[HostMetrics, ...], tuple[str, ...]]:
    """(a row now and the history of every host with a recent sample, hosts without one).

    ``series`` is feature name -> inventory host -> its series; a feature a host lacks is
    NaN (never evidence), a span a host lacks in every feature is no history row.
    """
    count = max(1, int(window // current))
    hosts = sorted({h for by_host in series.values() for h in by_host})
    rows: list[HostMetrics] = []
    stale: list[str] = []
    for host in hosts:
        columns = []
        for name in features:
            found = series.get(name, {}).get(host)
            columns.append(
                np.full(count, math.nan)
                if found is None
                else span_means(found, end=end, span=current, count=count)
            )
        matrix = np.column_stack(columns) if columns else np.empty((count, 0))
        now = matrix[-1]
        if not np.isfinite(now).any():
            stale.append(host)
            continue
        past = matrix[:-1][np.isfinite(matrix[:-1]).any(axis=1)]
        rows.append(
            HostMetrics(
                host=host,
                values=tuple(float(v) for v in now),
                history=tuple(tuple(float(v) for v in r) for r in past),
            )
        )
    return tuple(rows), tuple(stale)


def compare(
    rows: Sequence[HostMetrics],
    features: Sequence[str],
    *,
    settings: AnomalySettings,
    min_hosts: int,
) -> AnomalyReport:
    """The hosts that stand out, once there are at least ``min_hosts`` to compare."""
    if len(rows) < min_hosts:
        return AnomalyReport(
            features=tuple(features),
            hosts=tuple(HostAnomaly(r.host, 0.0, False, ()) for r in rows),
            reason=f"{len(rows)} host(s) with recent node metrics, need {min_hosts}",
        )
    return detect_anomalies(rows, features, settings=settings)


@dataclass(frozen=True)
class AnomalyScan:
    """What ``terry forecast`` found about the fleet's node metrics."""

    features: tuple[str, ...]
    window: float
    current: float
    step: float
    report: AnomalyReport
    stale: tuple[str, ...]  # hosts with series but no sample in the last span: not compared
    min_z: float  # a metric this far from the fleet or the host's history stands out

    def outstanding(self, host: HostAnomaly) -> tuple[FeatureEvidence, ...]:
        """The metrics that make the host stand out, the most outstanding first."""
        return tuple(e for e in host.evidence if abs(e.z) >= self.min_z)

    @property
    def anomalous(self) -> tuple[HostAnomaly, ...]:
        return self.report.anomalous

    def judged(self, host: str) -> HostAnomaly | None:
        """The host's verdict when the forest could judge it (None: not compared)."""
        if self.report.reason:
            return None
        return next((h for h in self.report.hosts if h.host == host), None)

    @property
    def compared(self) -> tuple[str, ...]:
        return tuple(sorted(h.host for h in self.report.hosts))
