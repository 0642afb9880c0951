"""A robust trend of one series, and when it will cross a threshold.

Pure: numbers in, frozen dataclasses out; no Prometheus, no store. The series is a list of
timestamps (epoch seconds) and values (a used fraction 0..1, bytes, anything additive).

How a forecast is made:

1. Clean: drop non-finite samples, sort by time; too few points or too short a span gives
   ``Outcome.NOT_ENOUGH_DATA``. Long series are reduced to at most ``max_points``
   equal-time bins (median of each).
2. Level shifts (a clean-up, a big copy): the difference of the medians of the ``half_window``
   samples after and before each point (fewer after, down to 3, near the end), against the
   robust spread of those differences. A candidate is a jump ``shift_sigmas`` times that
   spread; medians make single spikes invisible, and smooth daily cycles move the
   differences slowly and raise the spread, so they are not shifts either. A steady ramp
   moves the medians too, so each candidate must then be a step and not a ramp: around it
   (``3 × half_window`` samples either side) a line that bends once, wherever fits best, is
   set against the same line with a jump at the candidate, and the jump must stay
   significant (``z_significant`` standard errors) and much larger than what the line moves
   across the gap between the two samples. A ramp, a ramp that starts or a ramp across
   missing samples is no shift. A shift undone within a few samples is a transient.
3. Fit (``HuberRegressor``, so outliers weigh little): the segment after the last level
   shift when it holds ``min_points`` over ``cycle_min_span`` (or the whole window is shorter),
   otherwise the whole window with one level per segment and a common slope. When the
   fitted data spans ``cycle_min_span`` or more, a daily sine and cosine are fitted too, so
   a daily cycle neither biases the slope nor is mistaken for growth. When that data spans
   at least twice ``recent_span`` and the slope of the last ``recent_span`` alone differs
   from it by ``z_significant`` combined standard errors, the recent fit wins: growth that
   sped up or stopped without a level shift. A shorter window cannot be split that way, so
   there the point where the rate changed is searched for: a line that bends once (a slope
   before the bend, another since), fitted at up to 40 points with ``half_window`` samples
   either side, by Huber's loss through reweighted least squares. The best bend is taken when
   its change of slope is ``shift_sigmas`` standard errors (a search finds chance bends more
   often than one test does) and a jump there does not explain the samples better; the
   trend is then that bent line, its slope the rate since the bend: a ramp that starts
   part-way through a short lookback is growth, not "flat" or a level shift.
4. Significance: the slope's standard error comes from the robust residual spread, inflated
   for the residuals' lag-1 autocorrelation ((1 + r) / (1 - r)). Growth whose t-value is
   below ``z_significant`` is ``FLAT`` (no forecast), a significant fall is ``FALLING``.
   This is what keeps flat noisy series from raising false alarms.
5. Crossing: where the trend line meets the threshold. The interval uses the slope and level
   ``z_interval`` standard errors either way; the earliest also adds the daily cycle's
   amplitude (the first daily peak to touch the threshold). The confidence is how likely the
   trend reaches the threshold within the horizon: the normal probability that level +
   slope × horizon is at or over it, from their standard errors and covariance (over 0.5
   for every crossing reported; growth that is only just significant is not "0%").
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import HuberRegressor

__all__ = [
    "DAY",
    "HOUR",
    "Forecast",
    "ForecastSettings",
    "LevelShift",
    "Outcome",
    "Trend",
    "clean_series",
    "fit_trend",
    "forecast",
    "level_shifts",
]

DAY = 86_400.0
HOUR = 3_600.0

Floats = NDArray[np.float64]

_MAD_TO_SIGMA = 1.4826
_HUBER_K = 1.345  # Huber's threshold, in robust sigmas (95% efficiency on normal noise)


class Outcome(StrEnum):
    CROSSING = "crossing"  # the trend reaches the threshold within the horizon
    BEYOND_HORIZON = "beyond_horizon"  # growing, but reaches it after the horizon
    ABOVE_THRESHOLD = "above_threshold"  # the trend is at or over the threshold already
    FLAT = "flat"  # no growth distinguishable from noise
    FALLING = "falling"  # a significant fall
    NOT_ENOUGH_DATA = "not_enough_data"


@dataclass(frozen=True)
class ForecastSettings:
    min_points: int = 24
    min_span: float = 6 * HOUR
    max_points: int = 2016  # longer series are reduced to this many equal-time bins
    half_window: int = 8  # samples each side when looking for level shifts
    shift_sigmas: float = 6.0
    cycle_min_span: float = 1.5 * DAY  # fit a daily cycle when the data spans this much
    recent_span: float = 2 * DAY  # a slope change within this much of the end is followed
    z_significant: float = 3.0  # slope t-value needed to call it growth (or a fall)
    z_interval: float = 2.0  # the crossing interval: slope and level ± this many errors

    def __post_init__(self) -> None:
        if self.z_interval > self.z_significant:
            raise ValueError("z_interval must not exceed z_significant")
        if self.min_points < 4 or self.half_window < 1:
            raise ValueError("min_points must be at least 4 and half_window at least 1")


@dataclass(frozen=True)
class LevelShift:
    at: float  # timestamp of the first sample after the shift
    size: float  # the jump, in the series' units (negative: a drop)


@dataclass(frozen=True)
class Trend:
    """A robust line (plus a daily cycle when the data spans enough) through a series."""

    now: float  # the time ``level`` is for
    start: float  # the first timestamp the fit used
    points: int  # samples the fit used
    level: float  # the trend's value at ``now`` (daily cycle excluded)
    level_se: float
    slope: float  # units per second
    slope_se: float  # corrected for autocorrelated residuals
    noise: float  # robust standard deviation of the residuals
    autocorrelation: float  # lag-1 autocorrelation of the residuals (0 when negative)
    cycle_sin: float  # the fitted daily cycle: sin and cos terms (both 0 when none)
    cycle_cos: float
    r2: float  # robust share of the spread the fit explains, 0..1
    level_shifts: tuple[LevelShift, ...]  # every shift found in the window
    # "whole" window; the last "segment" after a shift; "offsets": one level per segment and a
    # common slope; "recent": the last ``recent_span`` only, its slope differing significantly;
    # "bend": a line that bends once, at ``changed_at`` (``slope`` is the rate since then)
    model: str
    changed_at: float | None = None  # where the rate changed ("bend")
    level_slope_cov: float = 0.0  # covariance of ``level`` and ``slope`` (value × value/s)

    @property
    def cycle_amplitude(self) -> float:
        return math.hypot(self.cycle_sin, self.cycle_cos)

    def cycle_at(self, timestamps: ArrayLike) -> Floats:
        """The fitted daily cycle's value at each timestamp (zeros when none was fitted)."""
        phase = _day_phase(np.asarray(timestamps, dtype=np.float64))
        return self.cycle_sin * np.sin(phase) + self.cycle_cos * np.cos(phase)

    def at(self, timestamps: ArrayLike) -> Floats:
        """The trend line (cycle excluded) at each timestamp."""
        return self.level + self.slope * (np.asarray(timestamps, dtype=np.float64) - self.now)

    @property
    def t_value(self) -> float:
        if self.slope == 0.0:
            return 0.0
        return (
            self.slope / self.slope_se if self.slope_se > 0 else math.copysign(math.inf, self.slope)
        )


@dataclass(frozen=True)
class Forecast:
    """When one series' trend will cross ``threshold``; ``reason`` says it in words."""

    outcome: Outcome
    reason: str
    threshold: float
    horizon: float  # seconds after ``now``
    now: float
    trend: Trend | None  # None only when there was not enough data
    projected_at: float | None  # where the trend meets the threshold, however far away
    crossing_at: float | None  # ``projected_at`` when it is within the horizon
    earliest: float | None  # interval for the crossing (set with ``projected_at``)
    latest: float | None
    # 0..1: how likely the trend reaches the threshold within the horizon, from the fit's
    # standard errors (over 0.5 for a crossing); 0 when it does not grow significantly
    confidence: float

    @property
    def slope(self) -> float | None:
        return None if self.trend is None else self.trend.slope

    @property
    def level(self) -> float | None:
        return None if self.trend is None else self.trend.level

    @property
    def seconds_to_crossing(self) -> float | None:
        return None if self.crossing_at is None else self.crossing_at - self.now


def clean_series(timestamps: ArrayLike, values: ArrayLike) -> tuple[Floats, Floats]:
    """Finite samples only, sorted by time, one per timestamp (the last one wins)."""
    t = np.asarray(timestamps, dtype=np.float64).ravel()
    y = np.asarray(values, dtype=np.float64).ravel()
    if t.shape != y.shape:
        raise ValueError(f"{t.size} timestamps but {y.size} values")
    keep = np.isfinite(t) & np.isfinite(y)
    t, y = t[keep], y[keep]
    order = np.argsort(t, kind="stable")
    t, y = t[order], y[order]
    if t.size > 1:
        last = np.append(t[1:] != t[:-1], True)
        t, y = t[last], y[last]
    return t, y


def _day_phase(t: Floats) -> Floats:
    return 2 * np.pi * (np.mod(t, DAY) / DAY)


def _mad_sigma(x: Floats) -> float:
    if x.size == 0:
        return 0.0
    return float(_MAD_TO_SIGMA * np.median(np.abs(x - np.median(x))))


def _reduce(t: Floats, y: Floats, max_points: int) -> tuple[Floats, Floats]:
    """At most ``max_points`` equal-time bins, each its samples' median time and value."""
    if t.size <= max_points:
        return t, y
    edges = np.linspace(t[0], t[-1], max_points + 1)
    bins = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, max_points - 1)
    starts = np.flatnonzero(np.append(True, bins[1:] != bins[:-1]))
    ends = np.append(starts[1:], t.size)
    bt = np.array([np.median(t[a:b]) for a, b in zip(starts, ends, strict=True)])
    by = np.array([np.median(y[a:b]) for a, b in zip(starts, ends, strict=True)])
    return bt, by


def _robust_lstsq(design: Floats, y: Floats) -> tuple[Floats, Floats, float, float]:
    """Huber regression by reweighted least squares, started from least squares (so a few
    samples far from the many, such as those after a recent bend, are fitted, while a spike
    weighs little): coefficients, their covariance (inflated for the residuals' lag-1
    autocorrelation), the residuals' robust sigma and that correlation."""
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    weights = np.ones_like(y)
    for _ in range(20):
        residuals = y - design @ coef
        sigma = _mad_sigma(residuals)
        if sigma <= 0:
            break
        weights = np.minimum(1.0, _HUBER_K * sigma / np.maximum(np.abs(residuals), 1e-300))
        root = np.sqrt(weights)
        updated, *_ = np.linalg.lstsq(design * root[:, None], y * root, rcond=None)
        done = np.allclose(updated, coef, rtol=1e-9, atol=1e-12 * max(sigma, 1e-300))
        coef = updated
        if done:
            break
    residuals = y - design @ coef
    sigma = _mad_sigma(residuals)
    rho = _lag1(residuals, sigma)
    inflation = (1 + rho) / (1 - rho)
    cov = sigma**2 * inflation * np.linalg.pinv((design * weights[:, None]).T @ design)
    return coef, cov, sigma, rho


def _lag1(residuals: Floats, sigma: float) -> float:
    """Lag-1 autocorrelation of residuals clipped at 3 sigmas, in 0..0.98."""
    if residuals.size <= 2 or sigma <= 0:
        return 0.0
    clipped = np.clip(residuals - np.median(residuals), -3 * sigma, 3 * sigma)
    if np.std(clipped) == 0:
        return 0.0
    rho = float(np.corrcoef(clipped[:-1], clipped[1:])[0, 1])
    return min(max(rho, 0.0), 0.98) if math.isfinite(rho) else 0.0


def _is_step(t: Floats, y: Floats, index: int, lo: int, hi: int, z: float) -> bool:
    """Whether the samples ``lo:hi`` around the boundary before ``index`` hold a step and not
    a ramp. A line that bends once, wherever in the window fits best, is set against the
    same line with a jump at the boundary: the jump must stay significant (``z`` standard
    errors, for autocorrelated residuals too) whichever the bend, and be much larger than
    what the line itself moves across the gap between the two samples. A ramp, a ramp that
    starts or stops (a knee) or a ramp across missing samples is no level shift."""
    tt, yy = t[lo:hi], y[lo:hi]
    if index - lo < 3 or hi - index < 3:
        return True  # too little either side to tell a bend from a jump: keep what medians saw
    boundary = 0.5 * (t[index - 1] + t[index])
    unit = max(float(tt[-1] - tt[0]), 1e-9)
    x = (tt - boundary) / unit
    after = (x > 0).astype(np.float64)
    gap = float(t[index] - t[index - 1]) / unit
    for bend in x[np.unique(np.linspace(1, x.size - 2, min(40, x.size - 2)).round().astype(int))]:
        design = np.column_stack([np.ones_like(x), x, np.maximum(x - bend, 0.0), after])
        coef, cov, _sigma, _rho = _robust_lstsq(design, yy)
        jump, jump_se = abs(float(coef[3])), math.sqrt(max(float(cov[3, 3]), 0.0))
        moves = 3.0 * max(abs(float(coef[1])), abs(float(coef[1] + coef[2]))) * gap
        if jump <= max(z * jump_se, moves):
            return False  # this bend explains the samples without a jump
    return True


def _shift_indices(
    t: Floats, y: Floats, half_window: int, sigmas: float, z: float
) -> list[tuple[int, float]]:
    """(index of the first sample after, size) of each level shift, in time order."""
    m = half_window
    n = y.size
    if n < 4 * m:
        return []
    medians = np.median(sliding_window_view(y, m), axis=1)  # medians[j] = median(y[j:j+m])
    jumps = medians[m:] - medians[:-m]  # jumps[k]: boundary before sample k + m
    deviation = jumps - np.median(jumps)
    floor = 1e-9 * max(float(np.max(np.abs(y))), 1e-300)
    spread = max(_mad_sigma(jumps), floor)
    # the last samples: fewer after the boundary (down to 3), so a recent step is seen too
    tail = np.array([np.median(y[k:]) - medians[k - m] for k in range(n - m + 1, n - 2)])
    deviation = np.append(deviation, tail - np.median(jumps))
    candidates = np.flatnonzero(np.abs(deviation) > sigmas * spread)
    if candidates.size == 0:
        return []
    clusters = np.split(candidates, np.flatnonzero(np.diff(candidates) > m) + 1)
    located: list[tuple[int, float]] = []
    for cluster in clusters:
        # medians locate a shift to within a sample or two; the means of both sides pin it
        lo, hi = int(cluster[0]) + m, int(cluster[-1]) + m
        best, best_size = lo, 0.0
        for i in range(max(lo - 1, m), min(hi + 1, n - 3) + 1):
            size = float(np.mean(y[i : i + m]) - np.mean(y[i - m : i]))
            if abs(size) > abs(best_size):
                best, best_size = i, size
        located.append((best, best_size))
    # where the medians jump because the series climbs (a ramp, or one that starts), there
    # is no shift: each must be a step against a line that bends, in 3 windows either side
    found: list[tuple[int, float]] = []
    for k, (index, size) in enumerate(located):
        lo = max(index - 3 * m, located[k - 1][0] if k else 0)
        hi = min(index + 3 * m, located[k + 1][0] if k + 1 < len(located) else n)
        if _is_step(t, y, index, lo, hi, z):
            found.append((index, size))
    # a shift undone within a few samples is a transient (a burst, an outage), not a shift
    kept: list[tuple[int, float]] = []
    for index, size in found:
        if kept:
            prev_index, prev_size = kept[-1]
            if (
                index - prev_index <= 4 * m
                and prev_size * size < 0
                and abs(prev_size + size) < 0.5 * max(abs(prev_size), abs(size))
            ):
                kept.pop()
                continue
        kept.append((index, size))
    return kept


def level_shifts(
    timestamps: ArrayLike, values: ArrayLike, *, settings: ForecastSettings | None = None
) -> tuple[LevelShift, ...]:
    """Every level shift in the series (see the module's description), in time order."""
    s = settings or ForecastSettings()
    t, y = clean_series(timestamps, values)
    t, y = _reduce(t, y, s.max_points)
    return tuple(
        LevelShift(at=float(t[i]), size=size)
        for i, size in _shift_indices(t, y, s.half_window, s.shift_sigmas, s.z_significant)
    )


def _fit(
    t: Floats,
    y: Floats,
    now: float,
    segment_starts: list[int],
    *,
    shifts: tuple[LevelShift, ...],
    model_name: str,
    cycle: bool,
    bend: float | None = None,
) -> Trend:
    """Huber fit of level + slope (+ daily cycle) (+ a level per earlier segment) (+ another
    slope before ``bend``, a timestamp: then ``slope`` is the rate since the bend)."""
    x = (t - now) / DAY
    columns = [x]
    if cycle:
        phase = _day_phase(t)
        columns += [np.sin(phase), np.cos(phase)]
    if bend is not None:
        columns.append(np.minimum(x - (bend - now) / DAY, 0.0))  # 0 after the bend
    for a, b in pairwise(segment_starts):  # every segment but the last
        indicator = np.zeros_like(x)
        indicator[a:b] = 1.0
        columns.append(indicator)
    design = np.column_stack(columns)

    centre = float(np.median(y))
    scale = _mad_sigma(y) or float(np.ptp(y)) or max(abs(centre), 1.0)
    if bend is None:
        ys = (y - centre) / scale
        huber = HuberRegressor(epsilon=1.35, alpha=0.0, max_iter=1000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            huber.fit(design, ys)
        coef = np.asarray(huber.coef_, dtype=np.float64) * scale
        intercept = float(huber.intercept_) * scale + centre
    else:
        # sklearn's Huber, started from zero with its own scale, takes the few samples after
        # a recent bend for outliers of the many before it; reweighting from least squares
        # fits them
        fitted, *_ = _robust_lstsq(np.column_stack([np.ones_like(x), design]), y)
        intercept, coef = float(fitted[0]), fitted[1:]
    residuals = y - (design @ coef + intercept)

    noise = _mad_sigma(residuals)
    noise = max(noise, 1e-12 * max(abs(intercept), scale))
    rho = _lag1(residuals, noise)
    inflation = (1 + rho) / (1 - rho)
    full = np.column_stack([np.ones_like(x), design])
    cov = noise**2 * inflation * np.linalg.pinv(full.T @ full)
    level_se = math.sqrt(max(float(cov[0, 0]), 0.0))
    slope_se = math.sqrt(max(float(cov[1, 1]), 0.0)) / DAY
    spread = _mad_sigma(y)
    r2 = 1.0 - (noise / spread) ** 2 if spread > 0 else 0.0
    return Trend(
        now=now,
        start=float(t[0]),
        points=int(t.size),
        level=intercept,
        level_se=level_se,
        slope=float(coef[0]) / DAY,
        slope_se=slope_se,
        noise=noise,
        autocorrelation=rho,
        cycle_sin=float(coef[1]) if cycle else 0.0,
        cycle_cos=float(coef[2]) if cycle else 0.0,
        r2=min(max(r2, 0.0), 1.0),
        level_shifts=shifts,
        model=model_name,
        changed_at=bend,
        level_slope_cov=float(cov[0, 1]) / DAY,
    )


def _bend(t: Floats, y: Floats, s: ForecastSettings, cycle: bool) -> float | None:
    """Where the growth rate changed, in a window too short to compare its last
    ``recent_span`` with the whole (a ramp that starts, speeds up or stops part-way): the
    time at which a line bending once fits best, when the change of slope there is as
    clear as a level shift must be (``shift_sigmas`` standard errors, for autocorrelated
    residuals too: the best of many bends tried stands out by chance more often than one
    slope does), a jump there does not explain the samples better, and at least
    ``half_window`` samples lie either side of it. None when no bend is."""
    n = t.size
    lo, hi = s.half_window, n - max(s.half_window, 4)
    if hi <= lo:
        return None
    unit = max(float(t[-1] - t[0]), 1e-9)
    x = (t - t[-1]) / unit
    base = [np.ones_like(x), x]
    if cycle:
        phase = _day_phase(t)
        base += [np.sin(phase), np.cos(phase)]
    best, best_sse = -1, math.inf
    for j in np.unique(np.linspace(lo, hi, min(40, hi - lo + 1)).round().astype(int)):
        design = np.column_stack([*base, np.minimum(x - x[j], 0.0)])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        sse = float(np.sum((y - design @ coef) ** 2))
        if sse < best_sse:
            best, best_sse = int(j), sse
    design = np.column_stack([*base, np.minimum(x - x[best], 0.0)])
    coef, cov, _sigma, _rho = _robust_lstsq(design, y)
    change, change_se = float(coef[-1]), math.sqrt(max(float(cov[-1, -1]), 0.0))
    if not abs(change) >= s.shift_sigmas * change_se:
        return None
    # a step too close to the end for the level-shift detector bends a line too: a rate
    # change is only one a jump there does not explain better
    m = s.half_window
    if _is_step(t, y, best, max(best - 3 * m, 0), min(best + 3 * m, n), s.z_significant):
        return None
    return float(t[best])


def fit_trend(
    timestamps: ArrayLike,
    values: ArrayLike,
    *,
    now: float | None = None,
    settings: ForecastSettings | None = None,
    segments: bool = True,
) -> Trend:
    """The robust trend of a series (steps 2 and 3 of the module's description).

    ``segments=False`` fits the whole window as one line even across level shifts (they are
    still reported) and never switches to the recent part: what leak detection wants.
    Raises ``ValueError`` under 4 samples; ``forecast`` checks ``min_points`` first.
    """
    s = settings or ForecastSettings()
    t, y = clean_series(timestamps, values)
    t, y = _reduce(t, y, s.max_points)
    if t.size < 4:
        raise ValueError(f"a trend needs at least 4 samples, got {t.size}")
    at = float(t[-1]) if now is None else float(now)
    found = _shift_indices(t, y, s.half_window, s.shift_sigmas, s.z_significant)
    shifts = tuple(LevelShift(at=float(t[i]), size=size) for i, size in found)
    starts = [0, *(i for i, _ in found)]
    whole_span = float(t[-1] - t[0])

    model, first, segment_starts = "whole", 0, [0]
    if segments and found:
        last = starts[-1]
        span_last = float(t[-1] - t[last])
        long_enough = (t.size - last) >= s.min_points and span_last >= s.min_span
        if long_enough and (span_last >= s.cycle_min_span or whole_span < s.cycle_min_span):
            model, first, segment_starts = "segment", last, [0]
        else:
            model, segment_starts = "offsets", starts
    tt, yy = t[first:], y[first:]
    cycle = float(tt[-1] - tt[0]) >= s.cycle_min_span
    trend = _fit(tt, yy, at, segment_starts, shifts=shifts, model_name=model, cycle=cycle)
    if not segments or model == "offsets":
        return trend
    if float(tt[-1] - tt[0]) < 2 * s.recent_span:
        # too short to compare the recent part with the whole: find where the rate changed
        bend = _bend(tt, yy, s, cycle)
        if bend is None:
            return trend
        return _fit(tt, yy, at, [0], shifts=shifts, model_name="bend", cycle=cycle, bend=bend)
    # the growth rate changed without a level shift (a new workload, a fixed log): the recent
    # part alone wins when its slope differs significantly from the whole fit's
    recent = tt >= tt[-1] - s.recent_span
    if int(recent.sum()) < s.min_points:
        return trend
    late = _fit(
        tt[recent],
        yy[recent],
        at,
        [0],
        shifts=shifts,
        model_name="recent",
        cycle=s.recent_span >= s.cycle_min_span,
    )
    error = math.hypot(late.slope_se, trend.slope_se)
    difference = abs(late.slope - trend.slope)
    change = difference / error if error > 0 else (math.inf if difference > 0 else 0.0)
    return late if change >= s.z_significant else trend


def _reach_probability(trend: Trend, threshold: float, horizon: float) -> float:
    """How likely the trend reaches ``threshold`` within ``horizon`` seconds of its ``now``:
    the normal probability that level + slope × horizon is at or over it, with the level's
    and the slope's standard errors (autocorrelation included) and their covariance."""
    mean = trend.level + trend.slope * horizon - threshold
    variance = (
        trend.level_se**2 + (horizon * trend.slope_se) ** 2 + 2 * horizon * trend.level_slope_cov
    )
    if variance <= 0:
        return 1.0 if mean >= 0 else 0.0
    return min(max(0.5 * math.erfc(-mean / math.sqrt(2 * variance)), 0.0), 1.0)


def _days(seconds: float) -> str:
    if seconds >= DAY:
        return f"{seconds / DAY:.1f} d"
    if seconds >= HOUR:
        return f"{seconds / HOUR:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def forecast(
    timestamps: ArrayLike,
    values: ArrayLike,
    threshold: float,
    *,
    horizon: float = 7 * DAY,
    now: float | None = None,
    settings: ForecastSettings | None = None,
) -> Forecast:
    """When the series' robust trend will reach ``threshold`` (see the module's description).

    ``now`` defaults to the last sample's time; ``horizon`` is in seconds after ``now``.
    """
    s = settings or ForecastSettings()
    t, y = clean_series(timestamps, values)
    span = float(t[-1] - t[0]) if t.size else 0.0
    at = (float(t[-1]) if t.size else 0.0) if now is None else float(now)

    def result(
        outcome: Outcome,
        reason: str,
        trend: Trend | None,
        projected: float | None = None,
        earliest: float | None = None,
        latest: float | None = None,
    ) -> Forecast:
        within = projected is not None and outcome is Outcome.CROSSING
        confidence = 0.0
        if projected is not None and trend is not None:
            confidence = _reach_probability(trend, threshold, horizon)
        return Forecast(
            outcome=outcome,
            reason=reason,
            threshold=threshold,
            horizon=horizon,
            now=at,
            trend=trend,
            projected_at=projected,
            crossing_at=projected if within else None,
            earliest=earliest,
            latest=latest,
            confidence=confidence,
        )

    if t.size < s.min_points or span < s.min_span:
        return result(
            Outcome.NOT_ENOUGH_DATA,
            f"not enough data: {t.size} samples over {_days(span)}, need {s.min_points} "
            f"over {_days(s.min_span)}",
            None,
        )
    trend = fit_trend(t, y, now=at, settings=s)
    after = {
        "segment": f" since the level shift {_days(at - trend.start)} ago",
        "recent": f" over the last {_days(at - trend.start)} (the rate changed)",
        "bend": f" since the rate changed {_days(at - (trend.changed_at or at))} ago",
    }.get(trend.model, "")
    if trend.level >= threshold:
        return result(
            Outcome.ABOVE_THRESHOLD,
            f"the trend is at {trend.level:.4g}, at or above the threshold {threshold:.4g}",
            trend,
        )
    t_value = trend.t_value
    if t_value <= -s.z_significant:
        return result(Outcome.FALLING, f"falling{after} (t = {t_value:.1f})", trend)
    if t_value < s.z_significant:
        return result(
            Outcome.FLAT,
            f"flat{after}: growth not distinguishable from noise (t = {t_value:.1f}, "
            f"needs {s.z_significant:g})",
            trend,
        )
    z = s.z_interval
    gap = threshold - trend.level
    projected = at + gap / trend.slope
    fast = trend.slope + z * trend.slope_se
    slow = trend.slope - z * trend.slope_se  # > 0: z_interval <= z_significant
    earliest = at + max(gap - z * trend.level_se - trend.cycle_amplitude, 0.0) / fast
    latest = at + (gap + z * trend.level_se) / slow
    if projected - at > horizon:
        return result(
            Outcome.BEYOND_HORIZON,
            f"growing{after}, reaches {threshold:.4g} in {_days(projected - at)}, "
            f"beyond the horizon of {_days(horizon)}",
            trend,
            projected,
            earliest,
            latest,
        )
    return result(
        Outcome.CROSSING,
        f"growing{after}, reaches {threshold:.4g} in {_days(projected - at)} "
        f"({_days(earliest - at)} to {_days(latest - at)})",
        trend,
        projected,
        earliest,
        latest,
    )
