"""Forecasting's pure core: time to full, leaks and anomalous hosts, on series with known
answers (``terry.forecast.series``)."""

from __future__ import annotations

import numpy as np
import pytest

from terry.forecast import (
    DAY,
    HOUR,
    ForecastSettings,
    HostMetrics,
    Outcome,
    detect_anomalies,
    detect_leak,
    forecast,
    level_shifts,
)
from terry.forecast.series import Synthetic, disk_series, memory_series

pytestmark = pytest.mark.unit

SEEDS = (1, 2)


def _forecast(s: Synthetic, horizon: float = 7 * DAY):
    return forecast(s.timestamps, s.values, s.threshold, horizon=horizon, now=s.now)


def _relative_error(s: Synthetic, predicted: float | None) -> float:
    assert s.crossing_at is not None and predicted is not None
    return abs(predicted - s.crossing_at) / (s.crossing_at - s.now)


@pytest.mark.parametrize("seed", SEEDS)
def test_linear_growth_predicts_the_crossing_within_ten_percent(seed: int) -> None:
    s = disk_series("linear", seed)
    f = _forecast(s)
    assert f.outcome is Outcome.CROSSING, f.reason
    assert _relative_error(s, f.crossing_at) <= 0.10
    assert f.earliest is not None and f.latest is not None
    assert f.earliest <= f.crossing_at <= f.latest
    assert f.slope is not None and f.slope > 0
    assert f.level is not None and f.level < s.threshold
    assert 0.5 < f.confidence <= 1.0
    assert f.reason.startswith("growing, reaches 0.9 in")


@pytest.mark.parametrize("seed", SEEDS)
def test_flat_noisy_series_raises_no_alarm(seed: int) -> None:
    s = disk_series("flat_noise", seed)
    f = _forecast(s)
    assert f.outcome is Outcome.FLAT, f.reason
    assert f.crossing_at is None and f.projected_at is None
    assert f.reason.startswith("flat")


def test_flat_series_close_to_the_threshold_raises_no_alarm() -> None:
    rng = np.random.default_rng(7)
    t = np.arange(0, 7 * DAY, 300.0)
    y = 0.895 + rng.normal(0, 0.003, t.size)
    f = forecast(t, y, 0.9)
    assert f.outcome is Outcome.FLAT, f.reason


def test_falling_series_gives_no_crossing() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(0, 3 * DAY, 300.0)
    y = 0.8 - 0.05 * t / DAY + rng.normal(0, 0.005, t.size)
    f = forecast(t, y, 0.9)
    assert f.outcome is Outcome.FALLING
    assert f.crossing_at is None
    assert f.slope is not None and f.slope < 0


@pytest.mark.parametrize("seed", SEEDS)
def test_a_step_change_is_handled_by_fitting_after_it(seed: int) -> None:
    s = disk_series("step_linear", seed)
    f = _forecast(s)
    assert f.outcome is Outcome.CROSSING, f.reason
    assert f.trend is not None and f.trend.model == "segment"
    assert s.shift_at is not None
    assert abs(f.trend.level_shifts[-1].at - s.shift_at) <= 2 * 300
    assert _relative_error(s, f.crossing_at) <= 0.10
    assert "since the level shift" in f.reason


def test_a_clean_up_does_not_hide_the_growth_after_it() -> None:
    # 5%/day; 3 days ago a clean-up freed 30%; full (0.9) 2 days from now
    rng = np.random.default_rng(5)
    t = np.arange(0, 7 * DAY, 300.0)
    now = float(t[-1])
    y = 0.8 + 0.05 * (t - now) / DAY + rng.normal(0, 0.003, t.size)
    y[t < now - 3 * DAY] += 0.3
    f = forecast(t, y, 0.9)
    assert f.crossing_at is not None
    assert abs(f.crossing_at - (now + 2 * DAY)) <= 0.1 * 2 * DAY
    # a least-squares line over the whole window sees no growth at all
    slope, _ = np.polyfit(t - now, y, 1)
    assert slope < 0


def test_a_step_then_flat_is_no_alarm() -> None:
    s = disk_series("step_flat", 5)
    assert _forecast(s).outcome is Outcome.FLAT


@pytest.mark.parametrize("seed", SEEDS)
def test_a_daily_cycle_on_growth_stays_within_tolerance(seed: int) -> None:
    s = disk_series("daily_cycle", seed)
    f = _forecast(s)
    assert f.outcome is Outcome.CROSSING, f.reason
    assert _relative_error(s, f.crossing_at) <= 0.10
    assert f.trend is not None and f.trend.cycle_amplitude > 0.005


def test_a_daily_cycle_without_growth_is_flat() -> None:
    assert _forecast(disk_series("flat_cycle", 4)).outcome is Outcome.FLAT


def test_growth_that_sped_up_recently_follows_the_new_rate() -> None:
    s = disk_series("knee", 2)
    f = _forecast(s)
    assert f.outcome is Outcome.CROSSING, f.reason
    assert f.trend is not None and f.trend.model == "recent"
    assert _relative_error(s, f.crossing_at) <= 0.10


def test_growth_that_stopped_is_no_alarm() -> None:
    f = _forecast(disk_series("stall", 2))
    assert f.outcome is Outcome.FLAT, f.reason


def test_too_short_a_series_says_so() -> None:
    t = np.arange(0, 2 * HOUR, 300.0)
    f = forecast(t, 0.5 + 0.01 * t / HOUR, 0.9)
    assert f.outcome is Outcome.NOT_ENOUGH_DATA
    assert f.reason == "not enough data: 24 samples over 1.9 h, need 24 over 6.0 h"
    assert f.trend is None and f.crossing_at is None and f.slope is None
    assert forecast([], [], 0.9).outcome is Outcome.NOT_ENOUGH_DATA


def test_crossing_beyond_the_horizon_is_reported_but_not_as_a_crossing() -> None:
    s = disk_series("linear", 1)
    ahead = s.time_to_full
    assert ahead is not None
    f = _forecast(s, horizon=ahead / 2)
    assert f.outcome is Outcome.BEYOND_HORIZON
    assert f.crossing_at is None and f.projected_at is not None
    assert _relative_error(s, f.projected_at) <= 0.10


def test_a_trend_already_over_the_threshold() -> None:
    t = np.arange(0, 2 * DAY, 300.0)
    f = forecast(t, 0.92 + 0.01 * t / DAY, 0.9)
    assert f.outcome is Outcome.ABOVE_THRESHOLD
    assert f.crossing_at is None


def test_gaps_unsorted_samples_and_nan_are_tolerated() -> None:
    s = disk_series("linear", 3)
    rng = np.random.default_rng(0)
    keep = rng.random(s.timestamps.size) > 0.3
    t, y = s.timestamps[keep].copy(), s.values[keep].copy()
    y[::50] = np.nan
    order = rng.permutation(t.size)
    f = forecast(t[order], y[order], s.threshold, now=s.now)
    assert f.outcome is Outcome.CROSSING
    assert _relative_error(s, f.crossing_at) <= 0.10


def test_level_shifts_ignore_single_spikes() -> None:
    t = np.arange(0, 2 * DAY, 300.0)
    y = np.full(t.size, 0.5) + np.random.default_rng(1).normal(0, 0.002, t.size)
    y[100] += 0.3
    y[200:] += 0.1
    shifts = level_shifts(t, y)
    assert [s.at for s in shifts] == [t[200]]
    assert shifts[0].size == pytest.approx(0.1, abs=0.01)


def test_settings_refuse_an_interval_wider_than_significance() -> None:
    with pytest.raises(ValueError, match="z_interval"):
        ForecastSettings(z_interval=4.0, z_significant=3.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_leak_flags_steady_growth(seed: int) -> None:
    s = memory_series("leak", seed)
    leak = detect_leak(s.timestamps, s.values)
    assert leak.suspected, leak.summary()
    assert leak.slope is not None and leak.slope > 0
    assert leak.relative_growth > 0.05 and leak.r2 > 0.8 and not leak.resets
    assert leak.summary().startswith("leak suspected: ok: slope t-value")


@pytest.mark.parametrize("seed", SEEDS)
def test_leak_is_not_a_sawtooth(seed: int) -> None:
    s = memory_series("sawtooth", seed)
    leak = detect_leak(s.timestamps, s.values)
    assert not leak.suspected
    assert leak.resets and all(r.size < 0 for r in leak.resets)
    assert "no: " in leak.summary()


def test_leak_is_not_steady_memory_nor_a_short_series() -> None:
    s = memory_series("steady", 1)
    assert not detect_leak(s.timestamps, s.values).suspected
    short = detect_leak(s.timestamps[:10], s.values[:10])
    assert not short.suspected and short.reasons[0].startswith("not enough data")


FEATURES = ("load1", "memory_used", "disk_used", "net_rx_bytes")


def _fleet(outlier: bool, *, history: bool) -> list[HostMetrics]:
    rng = np.random.default_rng(11)
    base = np.array([1.0, 0.5, 0.6, 2e6])
    hosts = []
    for i in range(10):
        values = base * (1 + rng.normal(0, 0.05, base.size))
        if outlier and i == 4:
            values[1] = 0.97
        past = tuple(
            tuple(float(v) for v in base * (1 + rng.normal(0, 0.05, base.size)))
            for _ in range(12 if history else 0)
        )
        hosts.append(HostMetrics(f"web-{i:02d}", tuple(float(v) for v in values), past))
    return hosts


@pytest.mark.parametrize("history", [False, True])
def test_anomaly_flags_the_outlier_host_and_names_the_metric(history: bool) -> None:
    report = detect_anomalies(_fleet(True, history=history), FEATURES)
    assert [h.host for h in report.anomalous] == ["web-04"]
    top = report.hosts[0]
    assert top.host == "web-04" and top.score > 0.5
    first = top.evidence[0]
    assert first.feature == "memory_used" and first.value == 0.97
    assert first.fleet_median == pytest.approx(0.5, abs=0.05)
    assert first.fleet_z > 4.0
    assert (first.history_z is not None) is history
    assert top.summary().startswith("memory_used = 0.97 (fleet median 0.")


def test_anomaly_is_quiet_on_a_uniform_fleet_and_deterministic() -> None:
    fleet = _fleet(False, history=True)
    first = detect_anomalies(fleet, FEATURES)
    assert first.anomalous == ()
    assert detect_anomalies(fleet, FEATURES) == first


def test_anomaly_needs_rows_and_matching_features() -> None:
    report = detect_anomalies([HostMetrics("a", (1.0,)), HostMetrics("b", (2.0,))], ("load1",))
    assert report.anomalous == () and report.reason.startswith("not enough data")
    with pytest.raises(ValueError, match="needs 2 values"):
        detect_anomalies([HostMetrics("a", (1.0,))], ("load1", "memory_used"))
