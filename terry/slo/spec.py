"""SLO specs as people write them, in two public formats, read into one ``SLO``.

Sloth's ``prometheus/v1`` (one service, several SLOs; ``sli.events`` with ``error_query`` and
``total_query``, or ``sli.raw.error_ratio_query``, each with ``{{.window}}``, or
``{{ .window }}``, where the range goes) and OpenSLO's ``kind: SLO``:

- ``apiVersion: openslo/v1``: a ``ratioMetric`` with ``good`` or ``bad`` over ``total``, or a
  ``raw`` ratio with its ``rawType``, each a Prometheus ``metricSource`` (its ``type``, or a
  ``metricSourceRef`` naming a ``DataSource`` document); the indicator inline or an ``SLI``
  document named by ``indicatorRef``, for the SLO or for each objective (a composite SLO);
- ``apiVersion: openslo/v1alpha`` (as Sloth reads it): ``ratioMetrics`` with ``good`` (or
  ``bad``) and ``total`` queries under each objective, ``timeWindows`` as ``count`` and
  ``unit``.

Each OpenSLO objective is an SLO of its own, judged alone against its target: ``NAME`` when
there is one, ``NAME-0``, ``NAME-1``... when there are several (as Sloth names them).
Budgeting is ``Occurrences`` only. The window is rolling (``28d``), or calendar-aligned
(``calendar`` with ``startTime`` and ``timeZone``; ``1M``, ``1Q``, ``1Y`` too): then the budget
is judged from the start of the current calendar period (``CalendarWindow``).
A YAML file may hold several documents; documents of other OpenSLO kinds are skipped.

An OpenSLO query without ``{{.window}}`` must be a plain series selector (a counter, as
``counter: true`` says): Terry takes its rate, ``sum(rate(Q[{{.window}}]))``.
Sloth has no period in the spec; Terry's default is 30 days, as Sloth's.

Every field that is wrong is a ``ConfigError`` naming the file and the field
(``slos/checkout.yml: slos[0].objective: ...``). Queries are the repository's text: they are
sent to Prometheus as queries and written into rule files as YAML strings, never run.
"""

from __future__ import annotations

import math
import re
from calendar import monthrange
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from terry.errors import ConfigError
from terry.slo.budget import budget_fraction

__all__ = [
    "DEFAULT_PERIOD",
    "MIN_ELAPSED",
    "SLO",
    "WINDOW",
    "CalendarWindow",
    "load_slos",
    "parse_document",
    "parse_text",
]

WINDOW = "{{.window}}"
DEFAULT_PERIOD = 30 * 86400.0
MIN_ELAPSED = 300.0  # a calendar period just begun is read over 5 minutes at least
SLO_DIR = "slos"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$"
_ANY_WINDOW = re.compile(r"\{\{\s*\.window\s*\}\}")  # Go templates allow {{ .window }}
_SERIES = r"(?:[A-Za-z_:][A-Za-z0-9_:]*\s*(?:\{[^{}]*\})?|\{[^{}]*\})"
_SELECTOR = re.compile(rf"^\s*(?P<series>{_SERIES})\s*$")
_SHORTHAND = re.compile(r"^\s*(\d+)\s*([smhdwMQY])\s*$")  # OpenSLO's duration-shorthand
_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_MONTHS = {"M": 1, "Q": 3, "Y": 12}
_NOMINAL = {"M": 30 * 86400.0, "Q": 90 * 86400.0, "Y": 365 * 86400.0}
_ALPHA_UNITS = {
    "second": "s", "minute": "m", "hour": "h", "day": "d",
    "week": "w", "month": "M", "quarter": "Q", "year": "Y",
}  # fmt: skip


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


@dataclass(frozen=True)
class SLO:
    """One objective of one service, whatever format it was written in.

    ``errors`` and ``total`` are PromQL with ``{{.window}}`` for the range; when ``good`` is
    true ``errors`` counts good events (OpenSLO's ``good``) and bad = total - good.
    ``period_seconds`` is the window's length (nominal for a calendar-aligned one)."""

    service: str
    name: str
    objective: float  # percent, e.g. 99.9
    period_seconds: float
    errors: str
    total: str | None  # None: ``errors`` is already a ratio (Sloth's raw error_ratio_query)
    good: bool = False
    description: str = ""
    source: str = ""  # the file it came from, relative to the repository
    format: Literal["sloth", "openslo"] = "sloth"
    labels: dict[str, str] = field(default_factory=dict)
    calendar: CalendarWindow | None = None  # None: a rolling window

    @property
    def budget_fraction(self) -> float:
        """The share of events allowed to fail: 0.001 for 99.9%."""
        return budget_fraction(self.objective)

    @property
    def key(self) -> str:
        return f"{self.service}/{self.name}"

    def period_at(self, at: float) -> tuple[float, float]:
        """(length of the period that holds ``at``, seconds of it to read the SLI over): the
        window itself when it rolls; for a calendar-aligned one, the current calendar period
        and the time since it began (``MIN_ELAPSED`` at least)."""
        if self.calendar is None:
            return self.period_seconds, self.period_seconds
        start, end = self.calendar.bounds(at)
        return end - start, max(at - start, MIN_ELAPSED)

    def error_ratio_query(self, window: str) -> str:
        """PromQL answering one value: the share of failed events over ``window`` (``5m``).

        No failed series at all is no failure (``or vector(0)``); no traffic is no answer
        (a division by zero is NaN), which the status reads as unknown."""
        errors = self.errors.replace(WINDOW, window)
        if self.total is None:
            return f"sum({errors})"
        total = self.total.replace(WINDOW, window)
        if self.good:
            return f"1 - sum(({errors}) or vector(0)) / sum({total})"
        return f"sum(({errors}) or vector(0)) / sum({total})"


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


def _label_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list) and not any(isinstance(v, list | dict) for v in value):
        return ",".join(_label_value(v) for v in value)  # OpenSLO: a list of values
    raise ValueError("a label's value is a string (or a list of strings)")


def _labels(value: Any) -> dict[str, str]:
    """Labels as YAML gives them (``tier: 2``, ``generated: true``), as strings."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("labels are a mapping of names to values")
    return {str(k): _label_value(v) for k, v in value.items()}


Labels = Annotated[dict[str, str], BeforeValidator(_labels)]


def _normal(query: str) -> str:
    """The query with every spelling of the window (``{{ .window }}``) as ``{{.window}}``."""
    return _ANY_WINDOW.sub(WINDOW, query).strip()


# -- Sloth: prometheus/v1 ------------------------------------------------------------------


def _windowed(value: str) -> str:
    value = _normal(value)
    if WINDOW not in value:
        raise ValueError(f"the query must say where the range goes with {WINDOW}")
    return value


Windowed = Annotated[str, Field(min_length=1)]


class _SlothEvents(_Model):
    error_query: Windowed
    total_query: Windowed

    _check = field_validator("error_query", "total_query")(_windowed)


class _SlothRaw(_Model):
    error_ratio_query: Windowed

    _check = field_validator("error_ratio_query")(_windowed)


class _SlothSLI(_Model):
    events: _SlothEvents | None = None
    raw: _SlothRaw | None = None
    plugin: dict[str, Any] | None = None

    @field_validator("plugin")
    @classmethod
    def _no_plugin(cls, value: dict[str, Any] | None) -> None:
        if value is not None:
            named = f" ({value['id']})" if value.get("id") else ""
            raise ValueError(
                f"SLI plugins are Sloth's own{named}: Terry cannot run them; write the "
                "queries as sli.events (error_query, total_query) or sli.raw"
            )
        return None

    @model_validator(mode="after")
    def _one_kind(self) -> _SlothSLI:
        if self.events is not None and self.raw is not None:
            raise ValueError("give events or raw, not both")
        return self


class _SlothSLO(_Model):
    name: str = Field(pattern=_NAME)
    objective: float = Field(gt=0, lt=100)
    description: str = ""
    sli: _SlothSLI
    labels: Labels = Field(default_factory=dict)


class _SlothSpec(_Model):
    version: Literal["prometheus/v1"]
    service: str = Field(pattern=_NAME)
    labels: Labels = Field(default_factory=dict)
    slos: list[_SlothSLO] = Field(min_length=1)


def _from_sloth(doc: dict[str, Any], source: str) -> list[SLO]:
    spec = _SlothSpec.model_validate(doc)
    out = []
    for n, slo in enumerate(spec.slos):
        if slo.sli.events is not None:
            errors, total = slo.sli.events.error_query, slo.sli.events.total_query
        elif slo.sli.raw is not None:
            errors, total = slo.sli.raw.error_ratio_query, None
        else:
            raise ConfigError(f"{source}: slos[{n}].sli: give events or raw")
        out.append(
            SLO(
                service=spec.service,
                name=slo.name,
                objective=slo.objective,
                period_seconds=DEFAULT_PERIOD,
                errors=errors,
                total=total,
                description=slo.description,
                source=source,
                format="sloth",
                labels={**spec.labels, **slo.labels},
            )
        )
    return out


# -- OpenSLO: what both versions share -----------------------------------------------------


@dataclass(frozen=True)
class _Query:
    text: str
    where: str  # the field it came from, for messages


@dataclass(frozen=True)
class _Counts:
    """An OpenSLO ratio, whichever version wrote it: ``good`` or ``bad`` over ``total``, or
    ``raw`` with ``raw_type``."""

    where: str
    counter: bool = True
    good: _Query | None = None
    bad: _Query | None = None
    total: _Query | None = None
    raw: _Query | None = None
    raw_type: str | None = None


@dataclass(frozen=True)
class _Refs:
    """What OpenSLO documents name across ``slos/``: SLIs (with their file) and the types
    of DataSources."""

    slis: dict[str, tuple[_IndicatorSpec, str]] = field(default_factory=dict)
    datasources: dict[str, str] = field(default_factory=dict)


def _ranged(query: _Query, over: str, source: str, how: str) -> str:
    """The query as written when it says where the range goes; else ``over`` (a format
    with ``series`` and ``window``) of the series it selects."""
    if WINDOW in query.text:
        return query.text
    match = _SELECTOR.match(query.text)
    if match is None:
        raise ConfigError(
            f"{source}: {query.where}: without {WINDOW} the query must be a series selector "
            f"({how}), not {query.text[:80]!r}"
        )
    return over.format(series=match["series"].strip(), window=WINDOW)


def _ratio_queries(counts: _Counts, source: str) -> tuple[str, str | None, bool]:
    """(errors, total, good) of an OpenSLO ratio: ``good`` or ``bad`` over ``total``
    (counters: Terry takes their rate), or ``raw`` with ``rawType`` (a ratio already: its
    average over the window; of successes, the failures are one minus it)."""
    where = counts.where
    if counts.raw is not None:
        if counts.good or counts.bad or counts.total:
            raise ConfigError(f"{source}: {where}: raw stands alone (no good, bad or total)")
        if counts.raw_type is None:
            raise ConfigError(f"{source}: {where}.rawType: say success or failure")
        query = _ranged(
            counts.raw, "avg(avg_over_time({series}[{window}]))", source, "Terry averages it"
        )
        return (f"1 - ({query})" if counts.raw_type == "success" else query), None, False
    if counts.total is None:
        raise ConfigError(f"{source}: {where}: give total (with good or bad), or raw")
    if (counts.good is None) == (counts.bad is None):
        raise ConfigError(f"{source}: {where}: give exactly one of good and bad")
    counted = counts.good or counts.bad
    assert counted is not None
    over = (
        "sum(rate({series}[{window}]))"
        if counts.counter
        else "sum(sum_over_time({series}[{window}]))"
    )
    return (
        _ranged(counted, over, source, "Terry takes its rate"),
        _ranged(counts.total, over, source, "Terry takes its rate"),
        counts.good is not None,
    )


def _occurrences(method: str, source: str) -> None:
    if method.lower() != "occurrences":
        raise ConfigError(
            f"{source}: spec.budgetingMethod: Input should be 'Occurrences': Terry budgets "
            f"by occurrences (bad events over all events); {method!r} is not supported"
        )


class _Calendar(_Model):
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


def _calendar(cal: _Calendar, count: int, unit: str, where: str, source: str) -> CalendarWindow:
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
    return CalendarWindow(start, cal.timeZone, count, unit)


def _window(
    count: int,
    unit: str,
    rolling: bool | None,
    cal: _Calendar | None,
    where: tuple[str, str],
    source: str,
) -> tuple[float, CalendarWindow | None]:
    """(period, calendar) of one time window; ``where`` is the window's path and the
    field that gave its length."""
    path, length = where
    if count < 1:
        raise ConfigError(f"{source}: {path}.{length}: the window must be longer than 0")
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


def _description(base: str, objective: str, several: bool) -> str:
    if not several or not objective:
        return base
    return f"{base} ({objective})" if base else objective


# -- OpenSLO: openslo/v1 -------------------------------------------------------------------


class _MetricSource(_Model):
    type: str | None = None
    metricSourceRef: str | None = None
    spec: dict[str, Any] = Field(default_factory=dict)


class _Metric(_Model):
    metricSource: _MetricSource


class _Ratio(_Model):
    counter: bool = True
    good: _Metric | None = None
    bad: _Metric | None = None
    total: _Metric | None = None
    # A ratio computed already (a recording rule's, say): of successes or of failures.
    raw: _Metric | None = None
    rawType: Literal["success", "failure"] | None = None


class _IndicatorSpec(_Model):
    ratioMetric: _Ratio | None = None
    thresholdMetric: dict[str, Any] | None = None


class _Meta(_Model):
    name: str = Field(pattern=_NAME)
    displayName: str = ""
    labels: Labels = Field(default_factory=dict)


class _Indicator(_Model):
    metadata: _Meta | None = None
    spec: _IndicatorSpec


class _TimeWindow(_Model):
    duration: str
    isRolling: bool | None = None  # omitted: rolling, unless a calendar is given
    calendar: _Calendar | None = None


class _Objective(_Model):
    displayName: str = ""
    target: float | None = Field(default=None, gt=0, lt=1)
    targetPercent: float | None = Field(default=None, gt=0, lt=100)
    # A composite SLO's objectives each have their own indicator.
    indicator: _Indicator | None = None
    indicatorRef: str | None = None


class _OpenSLOSpec(_Model):
    description: str = ""
    service: str = Field(pattern=_NAME)
    indicator: _Indicator | None = None
    indicatorRef: str | None = None
    timeWindow: list[_TimeWindow] = Field(default_factory=list, max_length=1)
    budgetingMethod: str = "Occurrences"
    objectives: list[_Objective] = Field(min_length=1)


class _OpenSLO(_Model):
    apiVersion: Literal["openslo/v1"]
    kind: Literal["SLO"]
    metadata: _Meta
    spec: _OpenSLOSpec


class _OpenSLI(_Model):
    apiVersion: Literal["openslo/v1"]
    kind: Literal["SLI"]
    metadata: _Meta
    spec: _IndicatorSpec


def _v1_query(metric: _Metric | None, where: str, source: str, refs: _Refs) -> _Query | None:
    if metric is None:
        return None
    ms, path = metric.metricSource, f"{where}.metricSource"
    ref = ms.metricSourceRef
    if ms.type is None and ref is not None and ref not in refs.datasources:
        raise ConfigError(
            f"{source}: {path}.metricSourceRef: no DataSource named {ref!r} in {SLO_DIR}/ "
            "(or give type: Prometheus)"
        )
    kind = ms.type or (refs.datasources.get(ref) if ref is not None else None)
    if kind is None:
        raise ConfigError(f"{source}: {path}.type: give type: Prometheus")
    if kind.lower() != "prometheus":
        named = "type" if ms.type else "metricSourceRef"
        raise ConfigError(
            f"{source}: {path}.{named}: Terry reads Prometheus metric sources only, not {kind!r}"
        )
    query = ms.spec.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ConfigError(f"{source}: {path}.spec.query: give the PromQL query")
    return _Query(_normal(query), f"{path}.spec.query")


def _v1_counts(indicator: _IndicatorSpec, where: str, source: str, refs: _Refs) -> _Counts:
    ratio = indicator.ratioMetric
    if ratio is None:
        if indicator.thresholdMetric is not None:
            raise ConfigError(
                f"{source}: {where}.thresholdMetric: Terry reads ratioMetric indicators only"
            )
        raise ConfigError(f"{source}: {where}.ratioMetric: a ratioMetric is required")
    at = f"{where}.ratioMetric"
    return _Counts(
        where=at,
        counter=ratio.counter,
        good=_v1_query(ratio.good, f"{at}.good", source, refs),
        bad=_v1_query(ratio.bad, f"{at}.bad", source, refs),
        total=_v1_query(ratio.total, f"{at}.total", source, refs),
        raw=_v1_query(ratio.raw, f"{at}.raw", source, refs),
        raw_type=ratio.rawType,
    )


def _v1_indicator(
    spec: _OpenSLOSpec, objective: _Objective, where: str, source: str, refs: _Refs
) -> tuple[_Counts, str]:
    """The objective's own indicator (a composite SLO's) or else the SLO's, and the file to
    name in its errors."""
    inline, ref, at = spec.indicator, spec.indicatorRef, "spec"
    if objective.indicator is not None or objective.indicatorRef is not None:
        inline, ref, at = objective.indicator, objective.indicatorRef, where
    if inline is not None and ref is not None:
        raise ConfigError(f"{source}: {at}: give indicator or indicatorRef, not both")
    if inline is not None:
        return _v1_counts(inline.spec, f"{at}.indicator.spec", source, refs), source
    if ref is None:
        raise ConfigError(f"{source}: spec: give indicator or indicatorRef")
    if ref not in refs.slis:
        raise ConfigError(f"{source}: {at}.indicatorRef: no SLI named {ref!r} in {SLO_DIR}/")
    sli, sli_source = refs.slis[ref]
    named = f"{sli_source} (SLI {ref})"
    return _v1_counts(sli, "spec", named, refs), named


def _v1_percent(objective: _Objective, where: str, source: str) -> float:
    if (objective.target is None) == (objective.targetPercent is None):
        raise ConfigError(f"{source}: {where}: give exactly one of target and targetPercent")
    percent = objective.targetPercent if objective.target is None else objective.target * 100
    assert percent is not None
    return round(percent, 6)


def _v1_window(windows: list[_TimeWindow], source: str) -> tuple[float, CalendarWindow | None]:
    if not windows:
        return DEFAULT_PERIOD, None
    window, path = windows[0], "spec.timeWindow[0]"
    match = _SHORTHAND.match(window.duration)
    if match is None:
        raise ConfigError(
            f"{source}: {path}.duration: {window.duration!r} is not a duration: write a "
            "number and a unit (m, h, d, w; M, Q, Y for calendar windows), e.g. 28d"
        )
    count, unit = int(match[1]), match[2]
    return _window(count, unit, window.isRolling, window.calendar, (path, "duration"), source)


def _from_openslo(doc: dict[str, Any], source: str, refs: _Refs) -> list[SLO]:
    slo = _OpenSLO.model_validate(doc)
    spec = slo.spec
    _occurrences(spec.budgetingMethod, source)
    period, calendar = _v1_window(spec.timeWindow, source)
    several = len(spec.objectives) > 1
    out = []
    for n, objective in enumerate(spec.objectives):
        where = f"spec.objectives[{n}]"
        percent = _v1_percent(objective, where, source)
        counts, named = _v1_indicator(spec, objective, where, source, refs)
        errors, total, good = _ratio_queries(counts, named)
        base = spec.description or slo.metadata.displayName
        out.append(
            SLO(
                service=spec.service,
                name=f"{slo.metadata.name}-{n}" if several else slo.metadata.name,
                objective=percent,
                period_seconds=period,
                errors=errors,
                total=total,
                good=good,
                description=_description(base, objective.displayName, several),
                source=source,
                format="openslo",
                labels=slo.metadata.labels,
                calendar=calendar,
            )
        )
    return out


# -- OpenSLO: openslo/v1alpha (Sloth's OpenSLO) --------------------------------------------


class _AlphaQuery(_Model):
    source: str
    queryType: str = ""
    query: str = Field(min_length=1)


class _AlphaRatio(_Model):
    counter: bool | None = None
    incremental: bool | None = None  # the README's other word for counter
    good: _AlphaQuery | None = None
    bad: _AlphaQuery | None = None
    total: _AlphaQuery | None = None


class _AlphaObjective(_Model):
    displayName: str = ""
    target: float = Field(gt=0, lt=1)
    ratioMetrics: _AlphaRatio | None = Field(
        default=None, validation_alias=AliasChoices("ratioMetrics", "ratioMetric")
    )


class _AlphaWindow(_Model):
    unit: str
    count: int
    isRolling: bool | None = None
    calendar: _Calendar | None = None


class _AlphaSpec(_Model):
    description: str = ""
    service: str = Field(pattern=_NAME)
    budgetingMethod: str = "Occurrences"
    timeWindows: list[_AlphaWindow] = Field(default_factory=list, max_length=1)
    objectives: list[_AlphaObjective] = Field(min_length=1)


class _AlphaSLO(_Model):
    apiVersion: Literal["openslo/v1alpha"]
    kind: Literal["SLO"]
    metadata: _Meta
    spec: _AlphaSpec


def _alpha_query(query: _AlphaQuery | None, where: str, source: str) -> _Query | None:
    if query is None:
        return None
    if query.source.lower() not in ("prometheus", "sloth"):
        raise ConfigError(
            f"{source}: {where}.source: Terry reads Prometheus queries only, not {query.source!r}"
        )
    return _Query(_normal(query.query), f"{where}.query")


def _alpha_counts(ratio: _AlphaRatio, where: str, source: str) -> _Counts:
    counter = ratio.counter if ratio.counter is not None else ratio.incremental
    return _Counts(
        where=where,
        counter=True if counter is None else counter,
        good=_alpha_query(ratio.good, f"{where}.good", source),
        bad=_alpha_query(ratio.bad, f"{where}.bad", source),
        total=_alpha_query(ratio.total, f"{where}.total", source),
    )


def _alpha_window(windows: list[_AlphaWindow], source: str) -> tuple[float, CalendarWindow | None]:
    if not windows:
        return DEFAULT_PERIOD, None
    window, path = windows[0], "spec.timeWindows[0]"
    unit = _ALPHA_UNITS.get(window.unit.lower())
    if unit is None:
        raise ConfigError(
            f"{source}: {path}.unit: {window.unit!r} is not a unit: write Minute, Hour, Day, "
            "Week, Month, Quarter or Year"
        )
    return _window(window.count, unit, window.isRolling, window.calendar, (path, "count"), source)


def _from_openslo_alpha(doc: dict[str, Any], source: str) -> list[SLO]:
    slo = _AlphaSLO.model_validate(doc)
    spec = slo.spec
    _occurrences(spec.budgetingMethod, source)
    period, calendar = _alpha_window(spec.timeWindows, source)
    several = len(spec.objectives) > 1
    out = []
    for n, objective in enumerate(spec.objectives):
        where = f"spec.objectives[{n}].ratioMetrics"
        if objective.ratioMetrics is None:
            raise ConfigError(
                f"{source}: {where}: Terry reads ratio objectives only (good or bad over "
                "total); threshold metrics are not supported"
            )
        counts = _alpha_counts(objective.ratioMetrics, where, source)
        errors, total, good = _ratio_queries(counts, source)
        base = spec.description or slo.metadata.displayName
        out.append(
            SLO(
                service=spec.service,
                name=f"{slo.metadata.name}-{n}" if several else slo.metadata.name,
                objective=round(objective.target * 100, 6),
                period_seconds=period,
                errors=errors,
                total=total,
                good=good,
                description=_description(base, objective.displayName, several),
                source=source,
                format="openslo",
                labels=slo.metadata.labels,
                calendar=calendar,
            )
        )
    return out


# -- reading -------------------------------------------------------------------------------

_OPENSLO_SLO_VERSIONS = ("openslo/v1", "openslo/v1alpha")


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def _explain(exc: ValidationError, source: str) -> ConfigError:
    problems = [
        f"{_where(tuple(e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors()[:5]
    ]
    return ConfigError(f"{source}: {'; '.join(problems)}")


def _documents(text: str, source: str) -> list[dict[str, Any]]:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not YAML: {exc}") from exc
    for n, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise ConfigError(f"{source}: document {n + 1} is not a mapping")
    return docs


def _openslo_slo(doc: dict[str, Any], source: str, refs: _Refs) -> list[SLO]:
    version = doc.get("apiVersion")
    if version == "openslo/v1alpha":
        return _from_openslo_alpha(doc, source)
    if version == "openslo/v1":
        return _from_openslo(doc, source, refs)
    raise ConfigError(
        f"{source}: apiVersion: Terry reads OpenSLO SLOs of {' and '.join(_OPENSLO_SLO_VERSIONS)}"
        f", not {version!r}"
    )


def parse_document(doc: dict[str, Any], source: str, refs: _Refs | None = None) -> list[SLO]:
    """The SLOs of one YAML document: Sloth's when it has ``version``, OpenSLO's ``SLO``
    when it has ``kind``; other OpenSLO kinds hold none. ``refs``: the SLIs and DataSources
    that ``indicatorRef`` and ``metricSourceRef`` may name."""
    version = doc.get("apiVersion")
    try:
        if "version" in doc:
            return _from_sloth(doc, source)
        if doc.get("kind") == "SLO":
            return _openslo_slo(doc, source, refs or _Refs())
        if isinstance(version, str) and version.startswith("sloth.slok.dev/"):
            raise ConfigError(
                f"{source}: apiVersion: {version} ({doc.get('kind')}) is Sloth's Kubernetes "
                "resource, which Terry does not read: write its spec as a Sloth file "
                "(version: prometheus/v1, service, labels, slos with sli.events.error_query "
                "and total_query)"
            )
        if "kind" in doc and version is not None:
            return []  # Service, SLI, DataSource, AlertPolicy...: not objectives
    except ValidationError as exc:
        raise _explain(exc, source) from exc
    raise ConfigError(
        f"{source}: neither a Sloth spec (version: prometheus/v1) nor an OpenSLO document "
        "(apiVersion: openslo/v1, kind: SLO)"
    )


def _refs(docs: list[tuple[dict[str, Any], str]]) -> _Refs:
    refs = _Refs()
    for doc, source in docs:
        if doc.get("kind") == "SLI":
            try:
                sli = _OpenSLI.model_validate(doc)
            except ValidationError as exc:
                raise _explain(exc, source) from exc
            refs.slis[sli.metadata.name] = (sli.spec, source)
        elif doc.get("kind") == "DataSource":
            name = (doc.get("metadata") or {}).get("name")
            kind = (doc.get("spec") or {}).get("type")
            if isinstance(name, str) and isinstance(kind, str):
                refs.datasources[name] = kind
    return refs


def parse_text(text: str, source: str) -> list[SLO]:
    """The SLOs in one file's text (tests and single files)."""
    docs = [(d, source) for d in _documents(text, source)]
    refs = _refs(docs)
    return [s for doc, where in docs for s in parse_document(doc, where, refs)]


def load_slos(base: Path, directory: str = SLO_DIR) -> list[SLO]:
    """Every SLO under ``base/directory`` (``*.yml``, ``*.yaml``), sorted by service and
    name; none when the directory is missing. The same service and name twice is an error."""
    root = base / directory
    if not root.is_dir():
        return []
    files = sorted([*root.rglob("*.yml"), *root.rglob("*.yaml")])
    docs: list[tuple[dict[str, Any], str]] = []
    for path in files:
        source = str(path.relative_to(base))
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source}: cannot read: {exc}") from exc
        docs += [(d, source) for d in _documents(text, source)]
    refs = _refs(docs)
    slos = [s for doc, source in docs for s in parse_document(doc, source, refs)]
    seen: dict[str, str] = {}
    for slo in slos:
        if slo.key in seen:
            raise ConfigError(f"{slo.source}: SLO {slo.key} is also defined in {seen[slo.key]}")
        seen[slo.key] = slo.source
    return sorted(slos, key=lambda s: (s.service, s.name))
