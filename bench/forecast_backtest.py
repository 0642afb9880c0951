"""Forecast backtest: predicted time to full on synthetic series with known answers.

For every disk kind of ``terry.forecast.series`` (7 days of a used fraction every 5 minutes,
threshold 0.9, horizon 7 days) the script generates N seeded series (default 100,
``--quick`` 20) and forecasts each two ways, in the same run:

- Terry: ``terry.forecast.forecast`` (level shifts, Huber fit, daily cycle, significance);
- naive baseline: a least-squares line over the whole window; a crossing whenever the line
  rises and meets the threshold within the horizon (no step handling, no significance).

Growing kinds (linear, noisy_linear, step_linear, daily_cycle, knee) have a known crossing
1-6 days after the window; the error is |predicted - true| / true time to full, with a
missing prediction counted as infinite ("missed" in the table); "in interval" is the share
whose true crossing lies within Terry's earliest..latest. Flat kinds (flat_noise,
flat_cycle, step_flat, stall) never cross; a reported crossing within the horizon is a false
alarm. Leak detection runs on the memory
kinds (leak, sawtooth, steady) as well.

Targets: on linear growth the median relative error ≤ 10% and p90 ≤ 20%; no false alarm on
any flat kind; leaks found and no sawtooth or steady series called a leak. Unlike the timing
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

from terry.forecast import DAY, Outcome, detect_leak, forecast
from terry.forecast.series import (
    DISK_KINDS,
    GROWING_KINDS,
    MEMORY_KINDS,
    Synthetic,
    disk_series,
    memory_series,
)

HORIZON = 7 * DAY
LINEAR_MEDIAN, LINEAR_P90 = 0.10, 0.20


@dataclass(frozen=True)
class Prediction:
    projected_at: float | None  # where the method's line meets the threshold, any distance
    alarm: bool  # a crossing within the horizon
    interval: tuple[float, float] | None = None  # earliest, latest (Terry only)


def terry_way(s: Synthetic) -> Prediction:
    f = forecast(s.timestamps, s.values, s.threshold, horizon=HORIZON, now=s.now)
    interval = None
    if f.earliest is not None and f.latest is not None:
        interval = (f.earliest, f.latest)
    return Prediction(f.projected_at, f.outcome is Outcome.CROSSING, interval)


def naive_way(s: Synthetic) -> Prediction:
    slope, intercept = np.polyfit(s.timestamps - s.now, s.values, 1)
    if slope <= 0:
        return Prediction(None, False)
    if intercept >= s.threshold:
        return Prediction(s.now, True)
    projected = s.now + (s.threshold - intercept) / slope
    return Prediction(projected, projected - s.now <= HORIZON)


def _percent(error: float) -> str:
    return "missed" if math.isinf(error) else f"{error:.1%}"


@dataclass(frozen=True)
class Row:
    kind: str
    way: str
    n: int
    errors: tuple[float, ...]  # growing kinds only
    alarms: int
    covered: int | None  # true crossings inside the predicted interval (None: no intervals)
    seconds: float  # per series

    def cells(self) -> list[object]:
        growing = bool(self.errors)
        within = sum(e <= 0.10 for e in self.errors)
        return [
            self.kind,
            self.way,
            self.n,
            _percent(pct(self.errors, 50)) if growing else "",
            _percent(pct(self.errors, 90)) if growing else "",
            f"{within / self.n:.0%}" if growing else "",
            f"{self.alarms / self.n:.0%}" if growing else "",
            f"{self.covered / self.n:.0%}" if growing and self.covered is not None else "",
            "" if growing else f"{self.alarms}/{self.n}",
            f"{self.seconds * 1000:.0f}",
        ]


def run_kind(kind: str, n: int, offset: int) -> list[Row]:
    rows = []
    series = [disk_series(kind, offset + i) for i in range(n)]
    for way, method in (("terry", terry_way), ("naive", naive_way)):
        errors: list[float] = []
        alarms = 0
        covered = 0 if way == "terry" else None
        started = time.perf_counter()
        for s in series:
            p = method(s)
            alarms += p.alarm
            if s.crossing_at is not None:
                if p.projected_at is None:
                    errors.append(math.inf)
                else:
                    errors.append(abs(p.projected_at - s.crossing_at) / (s.crossing_at - s.now))
                if covered is not None and p.interval is not None:
                    covered += p.interval[0] <= s.crossing_at <= p.interval[1]
        elapsed = (time.perf_counter() - started) / n
        rows.append(Row(kind, way, n, tuple(errors), alarms, covered, elapsed))
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
    for k, kind in enumerate(DISK_KINDS):
        rows.extend(run_kind(kind, n, offset=10_000 * (k + 1)))
    print(f"\nforecast backtest: {n} seeded series per kind, 7 d of 5-min samples, horizon 7 d")
    print(
        table(
            [
                "kind",
                "way",
                "n",
                "median err",
                "p90 err",
                "within 10%",
                "crossing reported",
                "in interval",
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

    def terry_row(kind: str) -> Row:
        return next(r for r in rows if r.kind == kind and r.way == "terry")

    linear = terry_row("linear")
    median, p90 = pct(linear.errors, 50), pct(linear.errors, 90)
    flat_alarms = sum(terry_row(k).alarms for k in DISK_KINDS if k not in GROWING_KINDS)
    checks = [
        (
            median <= LINEAR_MEDIAN and p90 <= LINEAR_P90,
            f"linear growth: median error {median:.1%} (≤ {LINEAR_MEDIAN:.0%}), "
            f"p90 {p90:.1%} (≤ {LINEAR_P90:.0%})",
        ),
        (flat_alarms == 0, f"flat kinds: {flat_alarms} false alarm(s) (none allowed)"),
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
