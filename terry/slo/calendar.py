"""An SLO's time window as OpenSLO writes it: rolling (a length), or calendar-aligned
(``calendar`` with ``startTime`` and ``timeZone``), read into a period and, for the latter,
a ``CalendarWindow`` that tells where the current period starts and ends."""

from __future__ import annotations

import math
import time
from calendar import monthrange
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from terry.errors import ConfigError
from terry.slo.fields import Model

__all__ = ["CalendarSpec", "CalendarWindow", "time_window"]

_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_MONTHS = {"M": 1, "Q": 3, "Y": 12}
_NOMINAL = {"M": 30 * 86400.0, "Q": 90 * 86400.0, "Y": 365 * 86400.0}
# The longest window read: no Prometheus keeps ten years of samples to judge one over.
_LONGEST = 10 * 365 * 86400.0


@dataclass(frozen=True)
class CalendarWindow:
    """A calendar-aligned period (OpenSLO's ``calendar``): ``count`` ``unit``s (``s``, ``m``,
    ``h``, ``d``, ``w``, or ``M`` months, ``Q`` quarters, ``Y`` years) from ``start``, a
    wall-clock time in ``zone``, then the next as long again, and so on."""

    start: datetime  # naive: wall-clock time in zone
    zone: str
    count: int
    unit: str

    @property
    def nominal_seconds(self) -> float:
        """The period's usual length: a month is 30 days, a quarter 90, a year 365."""
        return self.count * _NOMINAL.get(self.unit, _SECONDS.get(self.unit, 0.0))

    def _edge(self, k: int) -> float:
        """Epoch seconds at which the ``k``-th period starts (0: ``start``; may be negative)."""
        zone = ZoneInfo(self.zone)
        if self.unit in _MONTHS:
            months = self.start.month - 1 + k * self.count * _MONTHS[self.unit]
            year, month = self.start.year + months // 12, months % 12 + 1
            day = min(self.start.day, monthrange(year, month)[1])
            local = self.start.replace(year=year, month=month, day=day)
        elif self.unit in ("d", "w"):  # calendar days: 23 or 25 hours across a DST change
            local = self.start + timedelta(seconds=k * self.count * _SECONDS[self.unit])
        else:
            first = self.start.replace(tzinfo=zone).timestamp()
            return first + k * self.count * _SECONDS[self.unit]
        return local.replace(tzinfo=zone).timestamp()

    def bounds(self, at: float) -> tuple[float, float]:
        """Start and end (epoch seconds) of the period that holds ``at``."""
        k = math.floor((at - self._edge(0)) / self.nominal_seconds)
        while self._edge(k) > at:
            k -= 1
        while self._edge(k + 1) <= at:
            k += 1
        return self._edge(k), self._edge(k + 1)


class CalendarSpec(Model):
    """OpenSLO's ``calendar`` of a time window, as written."""

    startTime: Any = None  # YAML reads 2022-01-01 12:00:00 as a datetime, quoted as text
    timeZone: str = "UTC"


def _start(value: Any, zone: ZoneInfo) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        return None
    return value.astimezone(zone).replace(tzinfo=None) if value.tzinfo else value


def _calendar(cal: CalendarSpec, count: int, unit: str, where: str, source: str) -> CalendarWindow:
    try:
        zone = ZoneInfo(cal.timeZone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"{source}: {where}.timeZone: {cal.timeZone!r} is not a time zone of the IANA "
            "database (e.g. America/New_York)"
        ) from exc
    start = _start(cal.startTime, zone)
    if start is None:
        raise ConfigError(
            f"{source}: {where}.startTime: write a date and time, e.g. 2022-01-01 00:00:00"
        )
    window = CalendarWindow(start, cal.timeZone, count, unit)
    try:
        window.bounds(time.time())
    except (ValueError, OverflowError) as exc:  # a start the calendar cannot count from
        raise ConfigError(
            f"{source}: {where}.startTime: no period from {start:%Y-%m-%d %H:%M} holds "
            f"today ({exc}): write a start within a few years of now"
        ) from None
    return window


def time_window(
    count: int,
    unit: str,
    rolling: bool | None,
    cal: CalendarSpec | None,
    where: tuple[str, str],
    source: str,
) -> tuple[float, CalendarWindow | None]:
    """(period, calendar) of one time window of ``count`` ``unit``s (``s``...``w``, ``M``,
    ``Q``, ``Y``); ``where`` is the window's path and the field that gave its length."""
    path, length = where
    if count < 1:
        raise ConfigError(f"{source}: {path}.{length}: the window must be longer than 0")
    if count * _NOMINAL.get(unit, _SECONDS.get(unit, 0.0)) > _LONGEST:
        raise ConfigError(
            f"{source}: {path}.{length}: {count}{unit} is longer than Terry reads a window "
            "(10 years; no Prometheus keeps the samples to judge it): write e.g. 28d or 1M"
        )
    if cal is None:
        if rolling is False:
            raise ConfigError(
                f"{source}: {path}: a calendar-aligned window (isRolling: false) needs "
                "calendar with startTime and timeZone"
            )
        if unit in _MONTHS:
            raise ConfigError(
                f"{source}: {path}.{length}: a rolling window of months, quarters or years "
                "has no fixed length: write it in days or weeks (e.g. 30d), or make it "
                "calendar-aligned (calendar with startTime and timeZone)"
            )
        return count * _SECONDS[unit], None
    if rolling:
        raise ConfigError(
            f"{source}: {path}: a window rolls (isRolling: true) or is calendar-aligned "
            "(calendar), not both"
        )
    window = _calendar(cal, count, unit, f"{path}.calendar", source)
    return window.nominal_seconds, window
