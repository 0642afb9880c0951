"""What a forecast finds, as incidents: the fingerprints, labels and summaries of preventive
incidents (a filesystem on its way to full), suspected leaks and anomalous hosts, and the
``Action`` each check took. Acting on them is ``terry.sources.forecast``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from terry.durations import format_duration
from terry.forecast.anomaly import HostAnomaly
from terry.forecast.nodes import AnomalyScan
from terry.forecast.prometheus import DiskForecast, MemoryCheck

__all__ = [
    "ANOMALY_ALERTNAME",
    "ANOMALY_SOURCE",
    "DISK_ALERTNAME",
    "LEAK_ALERTNAME",
    "SOURCE",
    "Action",
    "anomaly_fingerprint",
    "anomaly_incident",
    "anomaly_summary",
    "disk_fingerprint",
    "disk_labels",
    "disk_summary",
    "leak_fingerprint",
    "leak_summary",
]

SOURCE = "forecast"
DISK_ALERTNAME = "DiskWillFillSoon"
LEAK_ALERTNAME = "MemoryLeakSuspected"
ANOMALY_SOURCE = "anomaly"
ANOMALY_ALERTNAME = "HostAnomaly"


@dataclass(frozen=True)
class Action:
    """What a forecast did about one filesystem, one host's memory or its node metrics."""

    kind: str  # disk | leak | anomaly
    host: str
    mountpoint: str | None
    # opened: a new incident (and, for a disk, its proposal); open: one is open already;
    # resolved: the forecast no longer predicts trouble; busy: another process is opening it
    effect: str
    incident_id: int | None
    proposal_id: int | None = None
    state: str | None = None  # the proposal's state when this run left it
    decision: str | None = None
    reasons: tuple[str, ...] = ()
    note: str = ""


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def disk_fingerprint(host: str, mountpoint: str) -> str:
    return f"forecast:disk:{_digest(host, mountpoint)}"


def leak_fingerprint(host: str) -> str:
    return f"forecast:leak:{_digest(host)}"


def anomaly_fingerprint(host: str) -> str:
    return f"anomaly:host:{_digest(host)}"


def _iso(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def disk_summary(d: DiskForecast) -> str:
    """One line: "/srv/data on lab-02 is 55% full and will reach 80% in about 3m (between
    2m and 5m)"."""
    f = d.forecast
    where = f"{d.mountpoint[:200]} on {d.host} is {d.used_percent:.0f}% full"
    if f.projected_at is None:
        return f"{where}; {f.reason}"
    text = (
        f"{where} and will reach {d.threshold}% in about {format_duration(f.projected_at - f.now)}"
    )
    if f.earliest is not None and f.latest is not None:
        text += (
            f" (between {format_duration(max(f.earliest - f.now, 0.0))} and "
            f"{format_duration(f.latest - f.now)})"
        )
    return text


def leak_summary(m: MemoryCheck) -> str:
    leak = m.leak
    if leak.slope is None:
        return f"memory on {m.host}: {leak.reasons[0]}"
    span = format_duration(leak.end - leak.start)
    verdict = "grows steadily: a leak is suspected" if m.suspected else "no leak"
    return f"memory on {m.host} grew {leak.relative_growth:.1%} over {span}; {verdict}"


def anomaly_summary(scan: AnomalyScan, a: HostAnomaly) -> str:
    """One line: "web-02's node metrics stand out: load_per_cpu, memory_used (score 0.74)"."""
    named = ", ".join(e.feature for e in scan.outstanding(a)) or "no single metric"
    return f"{a.host}'s node metrics stand out: {named} (anomaly score {a.score:.2f})"


def anomaly_incident(scan: AnomalyScan, a: HostAnomaly) -> tuple[dict[str, str], dict[str, str]]:
    """An anomaly's labels and annotations: which metrics, their values now, and against
    what (the fleet's median and the host's own history, with robust z-scores)."""
    labels = {
        "alertname": ANOMALY_ALERTNAME,
        "kind": "anomaly",
        "host": a.host,
        "severity": "info",
        "features": ",".join(e.feature for e in scan.outstanding(a)),
    }
    others = len(scan.report.hosts) - 1
    annotations = {
        "summary": anomaly_summary(scan, a),
        "description": (
            f"Node metrics over the last {format_duration(scan.current)}, against {others} "
            f"other host(s) and the host's own {format_duration(scan.window)} "
            f"(IsolationForest score {a.score:.3f}): {a.summary()}. For review only: Terry "
            "proposes no change for an anomaly."
        ),
        "anomaly_score": f"{a.score:.3f}",
        **{f"evidence_{e.feature}": e.describe() for e in a.evidence},
    }
    return labels, annotations


def disk_labels(d: DiskForecast) -> tuple[dict[str, str], dict[str, str]]:
    f = d.forecast
    slope = d.slope_percent_per_day
    labels = {
        "alertname": DISK_ALERTNAME,
        "host": d.host,
        "mountpoint": d.mountpoint,
        "threshold": str(d.threshold),
        "severity": "warning",
    }
    annotations = {
        "summary": disk_summary(d),
        "description": (
            f"Forecast from Prometheus: {f.reason}. Trend "
            f"{'' if slope is None else f'{slope:+.2f}'} %/day, used now "
            f"{d.used_percent:.1f}%, threshold {d.threshold}%; crossing at "
            f"{_iso(f.projected_at)} (between {_iso(f.earliest)} and {_iso(f.latest)}), "
            f"confidence {f.confidence:.2f}. Opened before any alert, with a lead time of "
            f"{format_duration(d.lead_time)}."
        ),
        "forecast_crossing_at": _iso(f.projected_at),
        "forecast_earliest": _iso(f.earliest),
        "forecast_latest": _iso(f.latest),
        "forecast_used_percent": f"{d.used_percent:.2f}",
    }
    return labels, annotations
