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


# -- short lookbacks: steady growth is growth after a few points -----------------------------

# The lab's settings (tests/lab/test_forecast_lab.py): 75 s of samples every 2 s.
LAB = ForecastSettings(min_points=15, min_span=30.0)


def _lab_ramp(start_share: float, seed: int = 0, noise: float = 0.0002) -> tuple:
    """A disk flat at 30% that starts growing 1%/min part-way through 76 s of 2 s samples."""
    rng = np.random.default_rng(seed)
    t = 1_767_225_600.0 + np.arange(38) * 2.0
    begins = t[0] + start_share * (t[-1] - t[0])
    y = 0.3 + 0.01 / 60 * np.maximum(t - begins, 0.0) + rng.normal(0, noise, t.size)
    return t, y, begins


@pytest.mark.parametrize("start_share", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("seed", SEEDS)
def test_a_ramp_that_starts_part_way_through_a_short_lookback_is_growth(
    start_share: float, seed: int
) -> None:
    t, y, begins = _lab_ramp(start_share, seed)
    f = forecast(t, y, 0.8, horizon=DAY, settings=LAB)
    assert f.outcome is Outcome.CROSSING, f.reason
    assert f.trend is not None and f.trend.model == "bend"
    assert f.trend.level_shifts == ()  # a ramp that starts is no level shift
    assert f.trend.changed_at is not None and abs(f.trend.changed_at - begins) <= 6.0
    assert f.slope is not None and f.slope * 60 == pytest.approx(0.01, rel=0.2)
    # 0.3 + 1%/min reaches 0.8 fifty minutes after the ramp began (from 11 samples of the
    # ramp at 0.7: within 15%)
    true_crossing = begins + 50 * 60
    assert abs(f.projected_at - true_crossing) <= 0.15 * (true_crossing - t[-1])
    assert f.reason.startswith("growing since the rate changed ")
    assert f.confidence > 0.5


@pytest.mark.parametrize("kind", ["linear", "ramp_mid", "knee"])
@pytest.mark.parametrize("seed", SEEDS)
def test_growth_in_a_short_lookback_is_predicted(kind: str, seed: int) -> None:
    s = disk_series(kind, seed, window=12 * HOUR)
    f = forecast(s.timestamps, s.values, s.threshold, horizon=12 * HOUR, now=s.now)
    assert f.outcome is Outcome.CROSSING, f.reason
    assert _relative_error(s, f.crossing_at) <= 0.10
    assert f.confidence > 0.5


@pytest.mark.parametrize("kind", ["flat_noise", "step_flat", "stall"])
@pytest.mark.parametrize("window", [12 * HOUR, 76.0])
def test_no_false_alarm_in_a_short_lookback(kind: str, window: float) -> None:
    settings = LAB if window < HOUR else ForecastSettings()
    for seed in range(10):
        s = disk_series(kind, seed, window=window, step=2.0 if window < HOUR else 300.0)
        f = forecast(
            s.timestamps, s.values, s.threshold, horizon=window, now=s.now, settings=settings
        )
        assert f.outcome is not Outcome.CROSSING, (seed, f.reason)


def test_a_ramp_is_no_level_shift() -> None:
    # flat, then a steady climb; then the same climb across an hour with no samples
    rng = np.random.default_rng(4)
    t = np.arange(0, 2 * DAY, 300.0)
    y = 0.4 + 0.2 * np.maximum(t - DAY, 0.0) / DAY + rng.normal(0, 0.0005, t.size)
    assert level_shifts(t, y) == ()
    gap = (t < 1.5 * DAY) | (t >= 1.5 * DAY + HOUR)
    assert level_shifts(t[gap], y[gap]) == ()
    # a real step on the same climb still is one
    y[t >= 1.5 * DAY] += 0.05
    shifts = level_shifts(t, y)
    assert [s.at for s in shifts] == [1.5 * DAY]
    assert shifts[0].size == pytest.approx(0.05, abs=0.01)


def test_a_step_at_the_end_of_a_short_lookback_is_no_growth() -> None:
    t = np.arange(38) * 2.0
    y = 0.5 + np.random.default_rng(2).normal(0, 0.005, t.size)
    y[32:] += 0.1  # six samples after the step
    f = forecast(t, y, 0.9, horizon=DAY, settings=LAB)
    assert f.outcome is not Outcome.CROSSING, f.reason
    assert f.trend is not None and [s.at for s in f.trend.level_shifts] == [64.0]


def test_growth_that_is_only_just_significant_is_not_zero_confidence() -> None:
    # 1%/h under noise that leaves the slope's t-value between 3 and 4.5 (where an interval
    # as wide as the time to the crossing used to read "confidence 0%")
    found = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        t = np.arange(0, 8 * HOUR, 300.0)
        y = 0.5 + 0.01 * t / HOUR + rng.normal(0, 0.05, t.size)
        f = forecast(t, y, 0.8, horizon=2 * DAY)
        if f.outcome is Outcome.CROSSING and f.trend is not None and f.trend.t_value < 4.5:
            found.append(f)
            assert 0.5 < f.confidence <= 1.0, f.reason
    assert found  # the case this is about happened


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
