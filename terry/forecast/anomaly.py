"""Hosts whose node metrics stand out from the fleet: an IsolationForest, for review only.

Each host gives one row of current values (one per feature, in the order of ``features``)
and optionally earlier rows of the same features (its history). The forest is fitted on
every row (all hosts' history and current rows; more rows make it steadier) and scores the
current rows. A host is anomalous when the forest says so (its score is above
``score_threshold``; IsolationForest's own cut-off is 0.5) *and* at least one feature is
``min_z`` robust standard deviations from the fleet's median or from the host's own
history: the forest finds the odd row, the z-scores name the metric, and a host is not
reported without a metric to show. Deterministic: a fixed ``random_state``.

Missing values (NaN) take the feature's median over all rows and are never evidence.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sklearn.ensemble import IsolationForest

__all__ = [
    "AnomalyReport",
    "AnomalySettings",
    "FeatureEvidence",
    "HostAnomaly",
    "HostMetrics",
    "detect_anomalies",
]

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class HostMetrics:
    host: str
    values: tuple[float, ...]  # now, one per feature
    history: tuple[tuple[float, ...], ...] = ()  # earlier rows, same features


@dataclass(frozen=True)
class AnomalySettings:
    n_estimators: int = 100
    random_state: int = 0
    score_threshold: float = 0.5
    min_z: float = 4.0
    min_rows: int = 5  # rows in all (hosts + history) before the forest is fitted
    relative_floor: float = 0.05  # a robust spread is at least this share of |median|
    evidence: int = 3  # features named per host, most outstanding first


@dataclass(frozen=True)
class FeatureEvidence:
    feature: str
    value: float
    fleet_median: float
    fleet_z: float  # robust z against the fleet's current values
    history_median: float | None  # None without history
    history_z: float | None

    @property
    def z(self) -> float:
        """The larger of the two z-scores, by magnitude."""
        history = self.history_z if self.history_z is not None else 0.0
        return self.fleet_z if abs(self.fleet_z) >= abs(history) else history

    def describe(self) -> str:
        text = (
            f"{self.feature} = {self.value:.4g} "
            f"(fleet median {self.fleet_median:.4g}, z {self.fleet_z:+.1f}"
        )
        if self.history_median is not None and self.history_z is not None:
            text += f"; own history {self.history_median:.4g}, z {self.history_z:+.1f}"
        return text + ")"


@dataclass(frozen=True)
class HostAnomaly:
    host: str
    score: float  # 0..1, higher is odder (IsolationForest's -score_samples)
    anomalous: bool
    evidence: tuple[FeatureEvidence, ...]  # the most outstanding features first

    def summary(self) -> str:
        return "; ".join(e.describe() for e in self.evidence)


@dataclass(frozen=True)
class AnomalyReport:
    features: tuple[str, ...]
    hosts: tuple[HostAnomaly, ...]  # the oddest first
    reason: str  # empty when the forest was fitted, otherwise why not

    @property
    def anomalous(self) -> tuple[HostAnomaly, ...]:
        return tuple(h for h in self.hosts if h.anomalous)


def _centre_and_spread(rows: Floats, floor: float) -> tuple[Floats, Floats]:
    """Per column: median and a robust spread (MAD, else mean absolute deviation, floored)."""
    with warnings.catch_warnings():  # an all-NaN column is a NaN median, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(rows, axis=0)
        deviation = np.abs(rows - median)
        spread = 1.4826 * np.nanmedian(deviation, axis=0)
        mean_dev = 1.2533 * np.nanmean(deviation, axis=0)
    spread = np.where(spread > 0, spread, mean_dev)
    spread = np.maximum(spread, floor * np.abs(median))
    return median, np.where(spread > 0, spread, math.inf)


def detect_anomalies(
    hosts: Sequence[HostMetrics],
    features: Sequence[str],
    *,
    settings: AnomalySettings | None = None,
) -> AnomalyReport:
    s = settings or AnomalySettings()
    names = tuple(features)
    for h in hosts:
        if len(h.values) != len(names) or any(len(r) != len(names) for r in h.history):
            raise ValueError(f"host {h.host}: every row needs {len(names)} values ({names})")
    current = np.array([h.values for h in hosts], dtype=np.float64).reshape(len(hosts), len(names))
    history = [np.array(h.history, dtype=np.float64).reshape(-1, len(names)) for h in hosts]
    training = np.vstack([*history, current])
    if training.shape[0] < s.min_rows or not names:
        return AnomalyReport(
            features=names,
            hosts=tuple(HostAnomaly(h.host, 0.0, False, ()) for h in hosts),
            reason=f"not enough data: {training.shape[0]} rows, need {s.min_rows}",
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fill = np.nanmedian(training, axis=0)
    fill = np.where(np.isfinite(fill), fill, 0.0)
    filled = np.where(np.isfinite(training), training, fill)
    forest = IsolationForest(n_estimators=s.n_estimators, random_state=s.random_state)
    forest.fit(filled)
    scores = -forest.score_samples(np.where(np.isfinite(current), current, fill))

    fleet_median, _ = _centre_and_spread(current, s.relative_floor)
    # the spread of every row (history too) is steadier than that of a few current ones
    _, fleet_spread = _centre_and_spread(training, s.relative_floor)
    results: list[HostAnomaly] = []
    for row, (host, past) in enumerate(zip(hosts, history, strict=True)):
        own_median: Floats | None = None
        own_spread: Floats | None = None
        if past.shape[0] >= 2:
            own_median, own_spread = _centre_and_spread(past, s.relative_floor)
        evidence: list[FeatureEvidence] = []
        for col, name in enumerate(names):
            value = float(current[row, col])
            if not math.isfinite(value):
                continue
            history_median = history_z = None
            if own_median is not None and own_spread is not None and math.isfinite(own_median[col]):
                history_median = float(own_median[col])
                history_z = (value - history_median) / float(own_spread[col])
            evidence.append(
                FeatureEvidence(
                    feature=name,
                    value=value,
                    fleet_median=float(fleet_median[col]),
                    fleet_z=(value - float(fleet_median[col])) / float(fleet_spread[col]),
                    history_median=history_median,
                    history_z=history_z,
                )
            )
        evidence.sort(key=lambda e: abs(e.z), reverse=True)
        top = tuple(evidence[: s.evidence])
        score = float(scores[row])
        outstanding = bool(top) and abs(top[0].z) >= s.min_z
        results.append(
            HostAnomaly(
                host=host.host,
                score=score,
                anomalous=score > s.score_threshold and outstanding,
                evidence=top,
            )
        )
    results.sort(key=lambda h: h.score, reverse=True)
    return AnomalyReport(features=names, hosts=tuple(results), reason="")
