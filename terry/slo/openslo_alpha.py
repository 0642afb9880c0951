"""OpenSLO's ``apiVersion: openslo/v1alpha``, ``kind: SLO``, as Sloth reads it:
``ratioMetrics`` (or ``ratioMetric``) with ``good`` (or ``bad``) and ``total`` queries of
``source: prometheus`` under each objective, ``target`` 0..1, ``timeWindows`` as ``count``
and ``unit`` (``30`` ``Day``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, Field

from terry.errors import ConfigError
from terry.slo.budget import percent_of
from terry.slo.calendar import CalendarSpec, CalendarWindow, time_window
from terry.slo.fields import Model, Number
from terry.slo.objective import DEFAULT_PERIOD, SLO, normal_query
from terry.slo.openslo import Meta, Read, SpecBase, objective_slos
from terry.slo.ratio import Counts, Query, ratio_queries

__all__ = ["from_openslo_alpha"]

_UNITS = {
    "second": "s", "minute": "m", "hour": "h", "day": "d",
    "week": "w", "month": "M", "quarter": "Q", "year": "Y",
}  # fmt: skip


class _AlphaQuery(Model):
    source: str
    queryType: str = ""
    query: str = Field(min_length=1)


class _AlphaRatio(Model):
    counter: bool | None = None
    incremental: bool | None = None  # the README's other word for counter
    good: _AlphaQuery | None = None
    bad: _AlphaQuery | None = None
    total: _AlphaQuery | None = None


class _AlphaObjective(Model):
    displayName: str = ""
    target: Number = Field(gt=0, lt=1)
    ratioMetrics: _AlphaRatio | None = Field(
        default=None, validation_alias=AliasChoices("ratioMetrics", "ratioMetric")
    )


class _AlphaWindow(Model):
    unit: str
    count: int
    isRolling: bool | None = None
    calendar: CalendarSpec | None = None


class _AlphaSpec(SpecBase):
    budgetingMethod: str = "Occurrences"
    timeWindows: list[_AlphaWindow] = Field(default_factory=list, max_length=1)
    objectives: list[_AlphaObjective] = Field(min_length=1)


class _AlphaSLO(Model):
    apiVersion: Literal["openslo/v1alpha"]
    kind: Literal["SLO"]
    metadata: Meta
    spec: _AlphaSpec


def _query(query: _AlphaQuery | None, where: str, source: str) -> Query | None:
    if query is None:
        return None
    if query.source.lower() not in ("prometheus", "sloth"):
        raise ConfigError(
            f"{source}: {where}.source: Terry reads Prometheus queries only, not {query.source!r}"
        )
    return Query(normal_query(query.query), f"{where}.query")


def _counts(ratio: _AlphaRatio, where: str, source: str) -> Counts:
    counter = ratio.counter if ratio.counter is not None else ratio.incremental
    return Counts(
        where=where,
        counter=True if counter is None else counter,
        good=_query(ratio.good, f"{where}.good", source),
        bad=_query(ratio.bad, f"{where}.bad", source),
        total=_query(ratio.total, f"{where}.total", source),
    )


def _window(windows: list[_AlphaWindow], source: str) -> tuple[float, CalendarWindow | None]:
    if not windows:
        return DEFAULT_PERIOD, None
    window, path = windows[0], "spec.timeWindows[0]"
    unit = _UNITS.get(window.unit.lower())
    if unit is None:
        raise ConfigError(
            f"{source}: {path}.unit: {window.unit!r} is not a unit: write Minute, Hour, Day, "
            "Week, Month, Quarter or Year"
        )
    return time_window(
        window.count, unit, window.isRolling, window.calendar, (path, "count"), source
    )


def from_openslo_alpha(doc: dict[str, Any], source: str) -> list[SLO]:
    """The SLOs of one ``openslo/v1alpha`` ``SLO`` document (pydantic's ``ValidationError``
    when a field is wrong)."""
    slo = _AlphaSLO.model_validate(doc)
    spec = slo.spec

    def read(n: int, objective: _AlphaObjective) -> Read:
        where = f"spec.objectives[{n}].ratioMetrics"
        if objective.ratioMetrics is None:
            raise ConfigError(
                f"{source}: {where}: Terry reads ratio objectives only (good or bad over "
                "total); threshold metrics are not supported"
            )
        counts = _counts(objective.ratioMetrics, where, source)
        percent = percent_of(objective.target)
        return percent, objective.displayName, ratio_queries(counts, source)

    return objective_slos(slo, lambda: _window(spec.timeWindows, source), read, source)
