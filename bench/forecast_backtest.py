"""Forecast backtest: predicted time to full on synthetic series with known answers.

For every disk kind of ``terry.forecast.series`` (a used fraction, threshold 0.9) the script
generates N seeded series (default 100, ``--quick`` 20) per lookback and forecasts each two
ways, in the same run:

- Terry: ``terry.forecast.forecast`` (level shifts, rate changes, Huber fit, daily cycle,
  significance);
- naive baseline: a least-squares line over the whole window; a crossing whenever the line
  rises and meets the threshold within the horizon (no step handling, no significance).

Lookbacks (the same kinds shrunk in time, ``series.disk_series(window=...)``; the horizon is
the window's length, and the true crossing lies 1/7 to 6/7 of it after the window):

- ``7d``: 7 days every 5 minutes (2016 points), Terry's default settings, every kind;
- ``12h``: 12 hours every 5 minutes (144 points), default settings;
- ``76s``: 76 seconds every 2 seconds (38 points) with the lab's settings (``min_points``
  15, ``min_span`` 30 s: tests/lab/test_forecast_lab.py);

the short ones without the kinds that carry a daily cycle (a cycle a day long cannot be told
from growth in a window of hours).

Growing kinds (linear, noisy_linear, step_linear, daily_cycle, knee, ramp_mid) have a known
crossing; the error is |predicted - true| / true time to full, with a missing prediction
counted as infinite ("missed" in the table); "in interval" is the share whose true crossing
lies within Terry's earliest..latest; "confidence" is the median of Terry's confidence over
the crossings it reported. Flat kinds (flat_noise, flat_cycle, step_flat, stall) never
cross; a reported crossing within the horizon is a false alarm. Leak detection runs on the
memory kinds (leak, sawtooth, steady) as well.

Targets: on linear growth (7d) the median relative error ≤ 10% and p90 ≤ 20%; steady growth
(linear and ramp_mid, every lookback) reported as a crossing for at least 95% of the series
with a median error ≤ 10% and a median confidence ≥ 50%; no false alarm on any flat kind in
any lookback; leaks found and no sawtooth or steady series called a leak. Unlike the timing
scripts this one is a correctness check: it exits 1 when a target is missed.

    python bench/forecast_backtest.py [--quick] [--series N]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass

import numpy as np
from _common import load_note, pct, table

from terry.forecast import DAY, ForecastSettings, Outcome, detect_leak, forecast
from terry.forecast.series import (
    DISK_KINDS,
    FLAT_KINDS,
    MEMORY_KINDS,
    SHORT_KINDS,
    Synthetic,
    disk_series,
    memory_series,
)

LINEAR_MEDIAN, LINEAR_P90 = 0.10, 0.20
STEADY_KINDS = ("linear", "ramp_mid")
STEADY_REPORTED, STEADY_MEDIAN, STEADY_CONFIDENCE = 0.95, 0.10, 0.50
# Seeds per kind: 10,000 × (position here + 1), new kinds at the end, so a kind's series
# stay the ones earlier runs measured.
SEED_ORDER = (
    "linear",
    "noisy_linear",
    "step_linear",
    "daily_cycle",
    "knee",
    "flat_noise",
    "flat_cycle",
    "step_flat",
    "stall",
    "ramp_mid",
)


@dataclass(frozen=True)
class Lookback:
    name: str
    window: float
    step: float
    kinds: tuple[str, ...]
    settings: ForecastSettings


LOOKBACKS = (
    Lookback("7d", 7 * DAY, 300.0, DISK_KINDS, ForecastSettings()),
    Lookback("12h", 12 * 3600.0, 300.0, SHORT_KINDS, ForecastSettings()),
    Lookback("76s", 76.0, 2.0, SHORT_KINDS, ForecastSettings(min_points=15, min_span=30.0)),
)


@dataclass(frozen=True)
class Prediction:
    projected_at: float | None  # where the method's line meets the threshold, any distance
    alarm: bool  # a crossing within the horizon
    interval: tuple[float, float] | None = None  # earliest, latest (Terry only)
    confidence: float | None = None  # Terry only, when it reported a crossing


def terry_way(s: Synthetic, lookback: Lookback) -> Prediction:
    f = forecast(
        s.timestamps,
        s.values,
        s.threshold,
        horizon=lookback.window,
        now=s.now,
        settings=lookback.settings,
    )
    interval = None
    if f.earliest is not None and f.latest is not None:
        interval = (f.earliest, f.latest)
    alarm = f.outcome is Outcome.CROSSING
    return Prediction(f.projected_at, alarm, interval, f.confidence if alarm else None)


def naive_way(s: Synthetic, lookback: Lookback) -> Prediction:
    slope, intercept = np.polyfit(s.timestamps - s.now, s.values, 1)
    if slope <= 0:
        return Prediction(None, False)
    if intercept >= s.threshold:
        return Prediction(s.now, True)
    projected = s.now + (s.threshold - intercept) / slope
    return Prediction(projected, projected - s.now <= lookback.window)


def _percent(error: float) -> str:
    return "missed" if math.isinf(error) else f"{error:.1%}"


@dataclass(frozen=True)
class Row:
    lookback: str
    kind: str
    way: str
    n: int
    errors: tuple[float, ...]  # growing kinds only
    alarms: int
    covered: int | None  # true crossings inside the predicted interval (None: no intervals)
    confidences: tuple[float, ...]  # Terry's, for the crossings it reported
    seconds: float  # per series

    @property
    def growing(self) -> bool:
        return bool(self.errors)

    @property
    def confidence(self) -> float | None:
        return float(np.median(self.confidences)) if self.confidences else None

    def cells(self) -> list[object]:
        growing = self.growing
        within = sum(e <= 0.10 for e in self.errors)
        confidence = self.confidence
        return [
            self.lookback,
            self.kind,
            self.way,
            self.n,
            _percent(pct(self.errors, 50)) if growing else "",
            _percent(pct(self.errors, 90)) if growing else "",
            f"{within / self.n:.0%}" if growing else "",
            f"{self.alarms / self.n:.0%}" if growing else "",
            f"{self.covered / self.n:.0%}" if growing and self.covered is not None else "",
            f"{confidence:.0%}" if growing and confidence is not None else "",
            "" if growing else f"{self.alarms}/{self.n}",
            f"{self.seconds * 1000:.0f}",
        ]


def run_kind(lookback: Lookback, kind: str, n: int, offset: int) -> list[Row]:
    rows = []
    series = [
        disk_series(kind, offset + i, window=lookback.window, step=lookback.step) for i in range(n)
    ]
    for way, method in (("terry", terry_way), ("naive", naive_way)):
        errors: list[float] = []
        confidences: list[float] = []
        alarms = 0
        covered = 0 if way == "terry" else None
        started = time.perf_counter()
        for s in series:
            p = method(s, lookback)
            alarms += p.alarm
            if p.confidence is not None:
                confidences.append(p.confidence)
            if s.crossing_at is not None:
                if p.projected_at is None:
                    errors.append(math.inf)
                else:
                    errors.append(abs(p.projected_at - s.crossing_at) / (s.crossing_at - s.now))
                if covered is not None and p.interval is not None:
                    covered += p.interval[0] <= s.crossing_at <= p.interval[1]
        elapsed = (time.perf_counter() - started) / n
        rows.append(
            Row(
                lookback.name,
                kind,
                way,
                n,
                tuple(errors),
                alarms,
                covered,
                tuple(confidences),
                elapsed,
            )
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 series per kind")
    parser.add_argument("--series", type=int, help="series per kind (default 100)")
    args = parser.parse_args()
    n = args.series or (20 if args.quick else 100)
    print(load_note())
    started = time.perf_counter()
    rows: list[Row] = []
    for lookback in LOOKBACKS:
        for kind in lookback.kinds:
            # the same seeds for a kind in every lookback: the same series, shrunk in time
            offset = 10_000 * (SEED_ORDER.index(kind) + 1)
            rows.extend(run_kind(lookback, kind, n, offset))
    print(
        f"\nforecast backtest: {n} seeded series per kind and lookback "
        f"({', '.join(f'{lb.name}: {round(lb.window / lb.step)} points' for lb in LOOKBACKS)}), "
        "horizon = lookback"
    )
    print(
        table(
            [
                "lookback",
                "kind",
                "way",
                "n",
                "median err",
                "p90 err",
                "within 10%",
                "crossing reported",
                "in interval",
                "confidence",
                "false alarms",
                "ms/series",
            ],
            [r.cells() for r in rows],
        )
    )

    leak_rows = []
    leak_counts: dict[str, int] = {}
    for k, kind in enumerate(MEMORY_KINDS):
        suspected = sum(
            detect_leak(s.timestamps, s.values).suspected
            for s in (memory_series(kind, 20_000 * (k + 1) + i) for i in range(n))
        )
        leak_counts[kind] = suspected
        leak_rows.append([kind, n, f"{suspected}/{n}"])
    print("\nleak detection: 3 d of used memory every 5 min (8 GiB host)")
    print(table(["kind", "n", "leak suspected"], leak_rows))

    def terry_row(lookback: str, kind: str) -> Row:
        return next(
            r for r in rows if r.lookback == lookback and r.kind == kind and r.way == "terry"
        )

    linear = terry_row("7d", "linear")
    median, p90 = pct(linear.errors, 50), pct(linear.errors, 90)
    steady = [
        terry_row(lb.name, kind) for lb in LOOKBACKS for kind in STEADY_KINDS if kind in lb.kinds
    ]
    short_of = [
        f"{r.kind}@{r.lookback}: {r.alarms}/{r.n} reported, median error "
        f"{_percent(pct(r.errors, 50))}, confidence "
        f"{'-' if r.confidence is None else f'{r.confidence:.0%}'}"
        for r in steady
        if r.alarms < STEADY_REPORTED * r.n
        or pct(r.errors, 50) > STEADY_MEDIAN
        or (r.confidence or 0.0) < STEADY_CONFIDENCE
    ]
    false_alarms = {
        f"{kind}@{lb.name}": terry_row(lb.name, kind).alarms
        for lb in LOOKBACKS
        for kind in lb.kinds
        if kind in FLAT_KINDS
    }
    flat_alarms = sum(false_alarms.values())
    checks = [
        (
            median <= LINEAR_MEDIAN and p90 <= LINEAR_P90,
            f"linear growth (7d): median error {median:.1%} (≤ {LINEAR_MEDIAN:.0%}), "
            f"p90 {p90:.1%} (≤ {LINEAR_P90:.0%})",
        ),
        (
            not short_of,
            f"steady growth ({', '.join(STEADY_KINDS)}, every lookback): reported for "
            f"≥ {STEADY_REPORTED:.0%}, median error ≤ {STEADY_MEDIAN:.0%}, median confidence "
            f"≥ {STEADY_CONFIDENCE:.0%}" + (f"; short: {'; '.join(short_of)}" if short_of else ""),
        ),
        (
            flat_alarms == 0,
            f"flat kinds, every lookback: {flat_alarms} false alarm(s) (none allowed)"
            + "".join(f"; {name}: {count}" for name, count in false_alarms.items() if count),
        ),
        (
            leak_counts["leak"] == n
            and leak_counts["sawtooth"] == 0
            and leak_counts["steady"] == 0,
            f"leaks: {leak_counts['leak']}/{n} found, {leak_counts['sawtooth']} sawtooth and "
            f"{leak_counts['steady']} steady called leaks (all found, none wrong)",
        ),
    ]
    print(f"\n{load_note()}; {time.perf_counter() - started:.0f} s in all")
    for ok, text in checks:
        print(f"target: {text}: {'met' if ok else 'NOT met'}")
    return 0 if all(ok for ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
