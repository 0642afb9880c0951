"""A fleet forecast as JSON (schema ``terry.forecast/v1``), for ``terry forecast -o json``.

Times are ISO 8601 in UTC, spans in seconds, usage in percent; a number that is not finite
is null. Documented in docs/configuration.md (forecast).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from terry.forecast.anomaly import FeatureEvidence, HostAnomaly
from terry.forecast.findings import Action, anomaly_summary, disk_summary, leak_summary
from terry.forecast.nodes import AnomalyScan
from terry.forecast.prometheus import DiskForecast, FleetForecast, MemoryCheck
from terry.jsonable import to_jsonable

__all__ = ["SCHEMA", "to_report"]

SCHEMA = "terry.forecast/v1"


def _num(value: float | None, digits: int = 4) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _iso(epoch: float | None) -> str | None:
    if epoch is None or not math.isfinite(epoch):
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _disk(d: DiskForecast) -> dict[str, Any]:
    f = d.forecast
    trend = f.trend
    return {
        "host": d.host,
        "mountpoint": d.mountpoint,
        "used_percent": _num(d.used_percent, 2),
        "threshold_percent": d.threshold,
        "outcome": f.outcome.value,
        "reason": f.reason,
        "summary": disk_summary(d),
        "trend_percent_per_day": _num(d.slope_percent_per_day),
        "crossing_at": _iso(f.crossing_at),  # within the horizon only
        "projected_at": _iso(f.projected_at),  # however far away
        "crossing_in_seconds": _num(d.projected_in, 1),
        "earliest": _iso(f.earliest),
        "latest": _iso(f.latest),
        "confidence": _num(f.confidence, 3),
        "preventive": d.preventive,
        "stale": d.stale,
        "last_sample": _iso(d.last_sample),
        "model": None if trend is None else trend.model,
        "points": None if trend is None else trend.points,
        "level_shifts": [] if trend is None else [_iso(s.at) for s in trend.level_shifts],
        "labels": dict(d.labels),
    }


def _memory(m: MemoryCheck) -> dict[str, Any]:
    leak = m.leak
    return {
        "host": m.host,
        "used": _num(m.used, 1),
        "leak_suspected": m.suspected,
        "summary": leak_summary(m),
        "relative_growth": _num(leak.relative_growth),
        "slope_per_day": _num(None if leak.slope is None else leak.slope * 86400, 1),
        "t_value": _num(leak.t_value, 2),
        "r2": _num(leak.r2, 3),
        "monotone": _num(leak.monotone, 3),
        "resets": [_iso(s.at) for s in leak.resets],
        "reasons": list(leak.reasons),
        "stale": m.stale,
        "last_sample": _iso(m.last_sample),
        "labels": dict(m.labels),
    }


def _evidence(e: FeatureEvidence) -> dict[str, Any]:
    return {
        "feature": e.feature,
        "value": _num(e.value, 6),
        "fleet_median": _num(e.fleet_median, 6),
        "fleet_z": _num(e.fleet_z, 2),
        "history_median": _num(e.history_median, 6),
        "history_z": _num(e.history_z, 2),
        "z": _num(e.z, 2),  # the larger of the two, by magnitude
        "description": e.describe(),
    }


def _anomaly(scan: AnomalyScan, a: HostAnomaly) -> dict[str, Any]:
    return {
        "host": a.host,
        "score": _num(a.score, 3),
        "summary": anomaly_summary(scan, a),
        "features": [e.feature for e in scan.outstanding(a)],
        "evidence": [_evidence(e) for e in a.evidence],
    }


def _scan(scan: AnomalyScan) -> dict[str, Any]:
    return {
        "features": list(scan.features),
        "window_seconds": scan.window,
        "current_seconds": scan.current,
        "step_seconds": scan.step,
        "compared": list(scan.compared),
        "scores": {h.host: _num(h.score, 3) for h in scan.report.hosts},
        "stale": list(scan.stale),
        "reason": scan.report.reason,  # why nothing was judged; empty when it was
    }


def to_report(fleet: FleetForecast, actions: tuple[Action, ...] | None = None) -> dict[str, Any]:
    """The JSON report; ``actions`` is None when the run did not propose (``--no-propose``)."""
    scan = fleet.anomalies
    return {
        "schema": SCHEMA,
        "now": _iso(fleet.now),
        "lookback_seconds": fleet.lookback,
        "step_seconds": fleet.step,
        "horizon_seconds": fleet.horizon,
        "lead_time_seconds": fleet.lead_time,
        "threshold_percent": fleet.threshold,
        "disks": [_disk(d) for d in fleet.disks],
        "memory": [_memory(m) for m in fleet.memory],
        "unmatched": list(fleet.unmatched),
        # null when forecast.anomaly.enabled is off; anomalies: the hosts that stand out
        "anomaly": None if scan is None else _scan(scan),
        "anomalies": [] if scan is None else [_anomaly(scan, a) for a in scan.anomalous],
        "proposed": actions is not None,
        "actions": [] if actions is None else to_jsonable(list(actions)),
    }
