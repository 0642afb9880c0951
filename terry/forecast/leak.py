"""Memory growth that looks like a leak: steady, monotone, well fitted, never reset.

A leak is suspected when, over the whole window (one robust line, a daily cycle allowed):

- the growth is significant (slope t-value of at least ``z_significant``) and large (the
  line rises by ``min_relative_growth`` of its starting level or more);
- the line explains the series (robust r2 of at least ``min_r2``);
- it is monotone: of the medians of ``buckets`` equal-time slices (daily cycle removed),
  at least ``min_monotone`` of the steps between neighbours rise;
- there are no resets: no drop found by the level-shift detector. A sawtooth (growth, then
  a restart or a cache flush) is memory that is given back, not a leak.

Every check is reported in ``reasons``, passed or not, so an incident can show why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from terry.forecast.trend import (
    DAY,
    HOUR,
    ForecastSettings,
    LevelShift,
    clean_series,
    fit_trend,
)

__all__ = ["Leak", "LeakSettings", "detect_leak"]


@dataclass(frozen=True)
class LeakSettings:
    min_points: int = 24
    min_span: float = 12 * HOUR
    z_significant: float = 3.0
    min_relative_growth: float = 0.05
    min_r2: float = 0.8
    buckets: int = 12
    min_monotone: float = 0.8
    trend: ForecastSettings = field(default_factory=ForecastSettings)


@dataclass(frozen=True)
class Leak:
    """Whether a memory series looks like a leak, and the evidence either way."""

    suspected: bool
    reasons: tuple[str, ...]  # one line per check: what was measured and what it needs
    start: float
    end: float
    points: int
    slope: float | None  # units per second
    growth: float  # the fitted line's rise over the window, in the series' units
    relative_growth: float  # growth ÷ the line's level at the window's start
    t_value: float
    r2: float
    monotone: float  # share of rising steps between neighbouring slice medians
    resets: tuple[LevelShift, ...]  # drops found in the window

    def summary(self) -> str:
        verdict = "leak suspected" if self.suspected else "no leak"
        return f"{verdict}: " + "; ".join(self.reasons)


def _monotone(t: np.ndarray, y: np.ndarray, buckets: int) -> float:
    edges = np.linspace(t[0], t[-1], buckets + 1)
    index = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, buckets - 1)
    medians = [float(np.median(y[index == b])) for b in range(buckets) if np.any(index == b)]
    if len(medians) < 2:
        return 0.0
    steps = np.diff(medians)
    return float(np.mean(steps > 0))


def detect_leak(
    timestamps: ArrayLike, values: ArrayLike, *, settings: LeakSettings | None = None
) -> Leak:
    """Judge one used-memory series (bytes or a fraction) over its whole window."""
    s = settings or LeakSettings()
    t, y = clean_series(timestamps, values)
    span = float(t[-1] - t[0]) if t.size else 0.0
    if t.size < s.min_points or span < s.min_span:
        return Leak(
            suspected=False,
            reasons=(
                f"not enough data: {t.size} samples over {span / HOUR:.1f} h, need "
                f"{s.min_points} over {s.min_span / HOUR:.1f} h",
            ),
            start=float(t[0]) if t.size else 0.0,
            end=float(t[-1]) if t.size else 0.0,
            points=int(t.size),
            slope=None,
            growth=0.0,
            relative_growth=0.0,
            t_value=0.0,
            r2=0.0,
            monotone=0.0,
            resets=(),
        )
    trend = fit_trend(t, y, settings=s.trend, segments=False)
    growth = trend.slope * span
    first = trend.level - growth
    relative = growth / max(abs(first), abs(trend.level), 1e-300)
    monotone = _monotone(t, y - trend.cycle_at(t), s.buckets)
    resets = tuple(shift for shift in trend.level_shifts if shift.size < 0)
    t_value = trend.t_value
    checks = [
        (
            t_value >= s.z_significant,
            f"slope t-value {t_value:.1f} (needs {s.z_significant:g})",
        ),
        (
            relative >= s.min_relative_growth,
            f"grew {relative:.1%} over {span / DAY:.1f} d (needs {s.min_relative_growth:.0%})",
        ),
        (trend.r2 >= s.min_r2, f"fit r2 {trend.r2:.2f} (needs {s.min_r2:.2f})"),
        (
            monotone >= s.min_monotone,
            f"{monotone:.0%} of steps between {s.buckets} slices rise (needs {s.min_monotone:.0%})",
        ),
        (not resets, f"{len(resets)} reset(s) (needs none)"),
    ]
    return Leak(
        suspected=all(ok for ok, _ in checks),
        reasons=tuple(f"{'ok' if ok else 'no'}: {text}" for ok, text in checks),
        start=float(t[0]),
        end=float(t[-1]),
        points=int(t.size),
        slope=trend.slope,
        growth=growth,
        relative_growth=relative,
        t_value=t_value,
        r2=trend.r2,
        monotone=monotone,
        resets=resets,
    )
