"""Error budget arithmetic, pure: from error ratios to what a person and the gate read.

With objective ``o`` (99.9%), the budget is the share of events allowed to fail,
``b = 1 - o`` (0.1%). Over the SLO's period the error ratio ``e`` spends ``e / b`` of it:
remaining ``1 - e / b`` (negative once overspent), in minutes ``(1 - e / b) * b * period``
(the budget as time: 43.2 minutes of full outage in 30 days at 99.9%). The burn rate over
a window is ``e_window / b``: 1 spends exactly the budget in one period, 14.4 spends 2% of a
30-day budget in an hour.

Alerting follows the SRE workbook's multiwindow, multi-burn-rate alerts: a pair burns when
both its long and its short window burn faster than the pair's threshold (1h and 5m at
14.4, 6h and 30m at 6, for a 30-day period: 2% and 5% of the budget; scaled to the SLO's
period, ``Pair.threshold``); the short window makes the alert stop soon after the burning
does.

Unknown is not healthy: a ratio Terry could not read is ``None`` and makes the state
``unknown``, never ``ok``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

__all__ = [
    "LOW_PERCENT",
    "PAIRS",
    "WINDOWS",
    "Budget",
    "BudgetState",
    "Pair",
    "budget_fraction",
    "burn_rate",
    "compute_budget",
    "objective_text",
    "pair_warnings",
    "percent_of",
    "percent_text",
    "worst",
]

# Below this share of budget left, changes that are not fixes wait (policies/slo.rego).
LOW_PERCENT = 10.0


_SECONDS = {"5m": 300.0, "30m": 1800.0, "1h": 3600.0, "6h": 21600.0}
THIRTY_DAYS = 30 * 86400.0


@dataclass(frozen=True)
class Pair:
    """One multiwindow alert: long and short window, and the share of the period's budget
    that, spent within the long window, pages (the SRE workbook's 2% in an hour, 5% in six)."""

    long: str
    short: str
    budget_share: float

    @property
    def name(self) -> str:
        return f"{self.long}/{self.short}"

    def threshold(self, period_seconds: float = THIRTY_DAYS) -> float:
        """The burn rate both windows must exceed: the share of the budget times the
        periods in a long window (14.4 and 6 for 30 days; 13.44 and 5.6 for 28, as Sloth's
        own windows have it; 3.36 and 1.4 for 7). One threshold for every period would page
        a 7-day SLO only once it had lost 8.6% of its budget in an hour."""
        return round(self.budget_share * period_seconds / _SECONDS[self.long], 10)


PAIRS = (Pair("1h", "5m", 0.02), Pair("6h", "30m", 0.05))
WINDOWS = tuple(dict.fromkeys(w for p in PAIRS for w in (p.long, p.short)))


def pair_warnings(objective: float, period_seconds: float) -> list[str]:
    """What cannot page well in an SLO's burn-rate pairs, its period far from a month: a
    threshold no error ratio can reach (a burn of at most ``1 / budget``, every event
    failing), or one under 1 (a burn that would not even spend the budget in its period)."""
    fraction, said = budget_fraction(objective), []
    for pair in PAIRS:
        threshold = pair.threshold(period_seconds)
        if threshold * fraction >= 1:
            said.append(
                f"{pair.name} can never page: it needs a burn above {threshold:g}x, and at "
                f"{objective_text(objective)}% every event failing burns {1 / fraction:g}x"
            )
        elif threshold < 1:
            said.append(
                f"{pair.name} pages at a burn of {threshold:g}x, which would not spend the "
                "budget in its period"
            )
    return said


class BudgetState(StrEnum):
    OK = "ok"
    LOW = "low"  # under LOW_PERCENT left
    EXHAUSTED = "exhausted"  # nothing left
    UNKNOWN = "unknown"  # Prometheus could not tell


_RANK = {BudgetState.OK: 0, BudgetState.LOW: 1, BudgetState.UNKNOWN: 2, BudgetState.EXHAUSTED: 3}


def worst(states: list[BudgetState]) -> BudgetState:
    """The state that asks most caution (exhausted > unknown > low > ok); ok for none."""
    return max(states, key=_RANK.__getitem__, default=BudgetState.OK)


def _known(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) and value >= 0 else None


def budget_fraction(objective: float) -> float:
    """The share of events allowed to fail: 0.001 for 99.9, computed on the objective as
    written (decimal), so that 99.9 gives 0.001 and not 0.0010000000000000009, and twelve
    nines (99.9999999999) leave a budget of 1e-12, not a rounded 0."""
    return float((100 - Decimal(repr(objective))) / 100)


def percent_of(fraction: float) -> float:
    """An OpenSLO ``target`` (0.999) as Terry's objective in percent (99.9), on the decimal
    as written: ``0.999 * 100`` in floating point is 99.89999999999999."""
    return float(Decimal(repr(fraction)) * 100)


def objective_text(objective: float) -> str:
    """An objective as written (99.9, 99.95, 99.9999999), never rounded to 100 nor in
    exponent notation."""
    return format(Decimal(repr(objective)).normalize(), "f")


def percent_text(percent: float) -> str:
    """A budget left as people read it, never rounded across the lines its state is judged
    by: 9.9996 is "9.9" (low is under 10, so not "10.0"), 0.0004 is "0.0004" (exhausted is
    at or below 0, so not "0"). Cut toward zero to one decimal from 1 up, two significant
    digits below."""
    if percent == 0 or not math.isfinite(percent):
        return f"{percent:g}"
    if abs(percent) >= 1:
        return f"{math.trunc(percent * 10) / 10:.1f}"
    digits = 1 - math.floor(math.log10(abs(percent)))  # two significant digits
    cut = Decimal(repr(percent)).quantize(Decimal(1).scaleb(-digits), rounding="ROUND_DOWN")
    return format(cut.normalize(), "f")


def burn_rate(error_ratio: float | None, budget_fraction: float) -> float | None:
    ratio = _known(error_ratio)
    return None if ratio is None else ratio / budget_fraction


@dataclass(frozen=True)
class Budget:
    objective: float  # percent
    period_seconds: float
    sli: float | None  # percent of good events over the period
    error_ratio: float | None
    remaining_fraction: float | None  # 1 = untouched, 0 = spent, below 0 = overspent
    remaining_minutes: float | None
    budget_minutes: float  # the whole budget, as minutes of full outage
    burn_rates: dict[str, float | None]  # window ("1h") -> burn rate
    burning: tuple[str, ...]  # the pairs ("1h/5m") burning now
    state: BudgetState

    @property
    def remaining_percent(self) -> float | None:
        f = self.remaining_fraction
        return None if f is None else f * 100.0


def compute_budget(
    *,
    objective: float,
    period_seconds: float,
    period_error_ratio: float | None,
    window_error_ratios: dict[str, float | None],
    slo_period_seconds: float | None = None,
) -> Budget:
    """The budget over ``period_seconds``; burning is judged by the thresholds of the SLO's
    own period (``slo_period_seconds``, default the same), as its alerting rules are."""
    fraction = budget_fraction(objective)
    judged = slo_period_seconds or period_seconds
    budget_minutes = fraction * period_seconds / 60.0
    ratio = _known(period_error_ratio)
    rates = {w: burn_rate(window_error_ratios.get(w), fraction) for w in WINDOWS}
    burning = tuple(
        p.name
        for p in PAIRS
        if (long := rates[p.long]) is not None
        and (short := rates[p.short]) is not None
        and long > p.threshold(judged)
        and short > p.threshold(judged)
    )
    if ratio is None:
        return Budget(
            objective, period_seconds, None, None, None, None, budget_minutes, rates, burning,
            BudgetState.UNKNOWN,
        )  # fmt: skip
    remaining = 1.0 - ratio / fraction
    if remaining <= 0:
        state = BudgetState.EXHAUSTED
    elif remaining * 100.0 < LOW_PERCENT:
        state = BudgetState.LOW
    else:
        state = BudgetState.OK
    return Budget(
        objective=objective,
        period_seconds=period_seconds,
        sli=(1.0 - ratio) * 100.0,
        error_ratio=ratio,
        remaining_fraction=remaining,
        remaining_minutes=remaining * budget_minutes,
        budget_minutes=budget_minutes,
        burn_rates=rates,
        burning=burning,
        state=state,
    )
