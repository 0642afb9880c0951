"""Forecasting's pure core: when a series will cross a threshold, memory that looks like a
leak, hosts whose node metrics stand out, and synthetic series with known answers.

Numbers in, frozen dataclasses out: no Prometheus, no store, no incidents here.
"""

from terry.forecast.anomaly import (
    AnomalyReport,
    AnomalySettings,
    FeatureEvidence,
    HostAnomaly,
    HostMetrics,
    detect_anomalies,
)
from terry.forecast.leak import Leak, LeakSettings, detect_leak
from terry.forecast.trend import (
    DAY,
    HOUR,
    Forecast,
    ForecastSettings,
    LevelShift,
    Outcome,
    Trend,
    fit_trend,
    forecast,
    level_shifts,
)

__all__ = [
    "DAY",
    "HOUR",
    "AnomalyReport",
    "AnomalySettings",
    "FeatureEvidence",
    "Forecast",
    "ForecastSettings",
    "HostAnomaly",
    "HostMetrics",
    "Leak",
    "LeakSettings",
    "LevelShift",
    "Outcome",
    "Trend",
    "detect_anomalies",
    "detect_leak",
    "fit_trend",
    "forecast",
    "level_shifts",
]
