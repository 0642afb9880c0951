"""Synthetic series with known answers, for the tests and ``bench/forecast_backtest.py``.

Every generator takes a seed (numpy's ``default_rng``), so a series is the same on every
run. Disk kinds are a used fraction (0..1) sampled every ``step`` seconds over a window
(default 7 days every 5 minutes) that ends at ``now``, with the threshold 0.9;
``crossing_at`` is where the underlying trend (the line, without cycle or noise) reaches the
threshold, or None when it never does. Memory kinds are bytes used on an 8 GiB host.

A shorter window (a short lookback) gives the same series shrunk in time: where a knee, a
stall or a level shift falls, how far ahead the crossing is and how long the noise stays
correlated are fractions of the window, so only the number of points changes (the daily
cycle stays a day long; ``SHORT_KINDS`` are the kinds without one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from terry.forecast.trend import DAY, HOUR

__all__ = [
    "DISK_KINDS",
    "FLAT_KINDS",
    "GROWING_KINDS",
    "MEMORY_KINDS",
    "SHORT_KINDS",
    "START",
    "Synthetic",
    "disk_series",
    "memory_series",
]

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
GIB = float(1 << 30)

GROWING_KINDS = ("linear", "noisy_linear", "step_linear", "daily_cycle", "knee", "ramp_mid")
FLAT_KINDS = ("flat_noise", "flat_cycle", "step_flat", "stall")
DISK_KINDS = GROWING_KINDS + FLAT_KINDS
# Kinds that keep their meaning in a window shorter than a day (no daily cycle).
SHORT_KINDS = tuple(k for k in DISK_KINDS if k not in ("daily_cycle", "flat_cycle"))
_REFERENCE_WINDOW = 7 * DAY  # the window the kinds' times are written for
MEMORY_KINDS = ("leak", "sawtooth", "steady")

Floats = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Synthetic:
    kind: str
    seed: int
    timestamps: Floats
    values: Floats
    threshold: float
    now: float
    crossing_at: float | None  # the known answer: the trend reaches the threshold here
    shift_at: float | None = None  # where a level shift was put, if one was

    @property
    def time_to_full(self) -> float | None:
        return None if self.crossing_at is None else self.crossing_at - self.now


def _noise(rng: np.random.Generator, n: int, sigma: float, rho: float = 0.0) -> Floats:
    """Stationary AR(1) noise with standard deviation ``sigma``."""
    shocks = rng.normal(0.0, sigma, n)
    if rho == 0.0:
        return shocks
    out = np.empty(n)
    out[0] = shocks[0]
    gain = np.sqrt(1 - rho**2)
    for i in range(1, n):
        out[i] = rho * out[i - 1] + gain * shocks[i]
    return out


def _spikes(rng: np.random.Generator, n: int, share: float, low: float, high: float) -> Floats:
    out = np.zeros(n)
    hit = rng.random(n) < share
    out[hit] = rng.uniform(low, high, int(hit.sum())) * rng.choice([-1.0, 1.0], int(hit.sum()))
    return out


def disk_series(
    kind: str,
    seed: int,
    *,
    window: float = 7 * DAY,
    step: float = 300.0,
    threshold: float = 0.9,
) -> Synthetic:
    """One used-fraction series of ``kind`` (one of ``DISK_KINDS``).

    Times below are written for a 7-day window ("days"); another window scales them.
    """
    if kind not in DISK_KINDS:
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(DISK_KINDS)}")
    rng = np.random.default_rng(seed)
    now = START + window
    t = np.arange(START + step, now + step / 2, step)
    n = t.size
    scale = window / _REFERENCE_WINDOW
    days = (t - now) / (DAY * scale)  # <= 0, 0 at now; -7 at the window's start
    memory = step / (300.0 * scale)  # noise stays correlated for the same share of the window

    def noise(sigma: float, rho: float = 0.0) -> Floats:
        return _noise(rng, n, sigma, rho**memory)

    crossing: float | None = None
    shift: float | None = None

    if kind in GROWING_KINDS:
        # a line from start0 at the window's start to the threshold ``ahead`` days after now
        start0 = rng.uniform(0.1, 0.6)
        ahead = rng.uniform(1.0, 6.0)
        slope = (threshold - start0) / (window / (DAY * scale) + ahead)  # per day
        level = threshold - slope * ahead  # at now
        y = level + slope * days
        crossing = now + ahead * DAY * scale
        if kind == "linear":
            y = y + noise(rng.uniform(0.001, 0.005))
        elif kind == "noisy_linear":
            y = y + noise(rng.uniform(0.01, 0.03), rng.uniform(0.0, 0.9))
            y = y + _spikes(rng, n, 0.01, 0.05, 0.2)
        elif kind == "daily_cycle":
            amplitude = rng.uniform(0.01, 0.05)
            phase = rng.uniform(0, 2 * np.pi)
            y = y + amplitude * np.sin(2 * np.pi * t / DAY + phase)
            y = y + noise(rng.uniform(0.002, 0.01))
        elif kind == "knee":  # slower growth (0-30% of the rate) until 1.5-4 days ago
            knee_day = -rng.uniform(1.5, 4.0)
            before = days < knee_day
            factor = rng.uniform(0.0, 0.3)
            y_knee = level + slope * knee_day
            y[before] = y_knee + factor * slope * (days[before] - knee_day)
            y = y + noise(rng.uniform(0.002, 0.01), rng.uniform(0.0, 0.5))
        elif kind == "ramp_mid":  # flat at start0, then steady growth from 30-70% of the window
            ramp_day = -rng.uniform(0.3, 0.7) * window / (DAY * scale)
            slope = (threshold - start0) / (ahead - ramp_day)
            level = threshold - slope * ahead
            y = np.where(days < ramp_day, start0, level + slope * days)
            y = y + noise(rng.uniform(0.002, 0.01), rng.uniform(0.0, 0.5))
        else:  # step_linear: before the shift, another level and slope
            at = START + rng.uniform(1.0, 5.0) * DAY * scale
            shift = float(t[np.searchsorted(t, at)])
            before = t < shift
            jump = rng.uniform(0.05, 0.25) * (1.0 if rng.random() < 0.7 else -1.0)
            factor = rng.uniform(0.3, 1.5)
            shift_day = (shift - now) / (DAY * scale)
            y_at_shift = level + slope * shift_day
            y[before] = y_at_shift + jump + factor * slope * (days[before] - shift_day)
            y = y + noise(rng.uniform(0.002, 0.01), rng.uniform(0.0, 0.5))
    elif kind == "flat_noise":
        # near full and wandering (AR(1) up to 0.99: hours-long swings), but not growing
        y = rng.uniform(0.6, 0.89) + noise(rng.uniform(0.002, 0.03), rng.uniform(0, 0.99))
        y = y + _spikes(rng, n, 0.01, 0.05, 0.2)
    elif kind == "flat_cycle":
        amplitude = rng.uniform(0.01, 0.05)
        y = rng.uniform(0.5, 0.85) + amplitude * np.sin(
            2 * np.pi * t / DAY + rng.uniform(0, 2 * np.pi)
        )
        y = y + noise(rng.uniform(0.002, 0.01), rng.uniform(0.0, 0.5))
    elif kind == "stall":  # growth of 2-8%/day that stopped 2.5-4 days ago, near full
        stop_day = -rng.uniform(2.5, 4.0)
        y = np.full(n, rng.uniform(0.7, 0.88))
        early = days < stop_day
        y[early] += rng.uniform(0.02, 0.08) * (days[early] - stop_day)
        y = y + noise(rng.uniform(0.002, 0.01), rng.uniform(0.0, 0.5))
    else:  # step_flat: a shift up or down, flat either side
        at = START + rng.uniform(1.0, 6.0) * DAY * scale
        shift = float(t[np.searchsorted(t, at)])
        y = np.full(n, rng.uniform(0.3, 0.85))
        y[t < shift] -= rng.uniform(0.05, 0.2) * rng.choice([-1.0, 1.0])
        y = y + noise(rng.uniform(0.002, 0.01), rng.uniform(0.0, 0.5))
    return Synthetic(
        kind=kind,
        seed=seed,
        timestamps=t,
        values=np.clip(y, 0.0, 1.0),
        threshold=threshold,
        now=now,
        crossing_at=crossing,
        shift_at=shift,
    )


def memory_series(
    kind: str, seed: int, *, window: float = 3 * DAY, step: float = 300.0
) -> Synthetic:
    """Used memory in bytes on an 8 GiB host, of ``kind`` (one of ``MEMORY_KINDS``).

    ``leak``: steady growth of 0.5-1.5 GiB/day with a small daily cycle and noise;
    ``sawtooth``: the same growth reset to the baseline every 8-16 hours (a cache or a
    process that is restarted); ``steady``: flat with noise and a daily cycle.
    """
    if kind not in MEMORY_KINDS:
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(MEMORY_KINDS)}")
    rng = np.random.default_rng(seed)
    now = START + window
    t = np.arange(START + step, now + step / 2, step)
    n = t.size
    base = rng.uniform(1.5, 3.0) * GIB
    cycle = rng.uniform(0.01, 0.05) * GIB * np.sin(2 * np.pi * t / DAY + rng.uniform(0, 6.28))
    noise = _noise(rng, n, rng.uniform(0.005, 0.02) * GIB, 0.5)
    rate = rng.uniform(0.5, 1.5) * GIB / DAY
    if kind == "leak":
        y = base + rate * (t - START)
    elif kind == "sawtooth":
        period = rng.uniform(8, 16) * HOUR
        y = base + rate * np.mod(t - START + rng.uniform(0, period), period)
    else:
        y = np.full(n, base)
    return Synthetic(
        kind=kind,
        seed=seed,
        timestamps=t,
        values=y + cycle + noise,
        threshold=8 * GIB,
        now=now,
        crossing_at=None,
    )
