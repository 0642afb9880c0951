"""OpenSLO's ``apiVersion: openslo/v1``, ``kind: SLO``: a ``ratioMetric`` with ``good`` or
``bad`` over ``total``, or a ``raw`` ratio with its ``rawType``, each a Prometheus
``metricSource`` (its ``type``, or a ``metricSourceRef`` naming a ``DataSource`` document);
the indicator inline or an ``SLI`` document named by ``indicatorRef``, for the SLO or for
each objective (a composite SLO). ``timeWindow`` is one duration, rolling or calendar-aligned.

What both OpenSLO versions share is here too: each objective is an SLO of its own, judged
alone against its target (``NAME`` when there is one, ``NAME-0``, ``NAME-1``... when there
are several, as Sloth names them), and budgeting is ``Occurrences`` only."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import Field, ValidationError

from terry.errors import ConfigError
from terry.slo.budget import percent_of
from terry.slo.calendar import CalendarSpec, CalendarWindow, time_window
from terry.slo.fields import NAME, Labels, Model, Number, explain
from terry.slo.objective import DEFAULT_PERIOD, SLO, SLO_DIR, normal_query
from terry.slo.ratio import Counts, Query, ratio_queries

__all__ = [
    "Meta",
    "Read",
    "Refs",
    "SpecBase",
    "collect_refs",
    "from_openslo",
    "objective_slos",
]

# One objective read: its target in percent, its displayName, and (errors, total, good).
Read = tuple[float, str, tuple[str, str | None, bool]]
_SHORTHAND = re.compile(r"^\s*(\d+)\s*([smhdwMQY])\s*$")  # OpenSLO's duration-shorthand


# -- what both versions share --------------------------------------------------------------


class Meta(Model):
    name: str = Field(pattern=NAME)
    displayName: str = ""
    labels: Labels = Field(default_factory=dict)


class SpecBase(Model):
    """The fields of an SLO's ``spec`` that both versions have."""

    description: str = ""
    service: str = Field(pattern=NAME)


def _occurrences(method: str, source: str) -> None:
    """Refuse any budgeting method but ``Occurrences``."""
    if method.lower() != "occurrences":
        raise ConfigError(
            f"{source}: spec.budgetingMethod: Input should be 'Occurrences': Terry budgets "
            f"by occurrences (bad events over all events); {method!r} is not supported"
        )


def _description(base: str, objective: str, several: bool) -> str:
    if not several or not objective:
        return base
    return f"{base} ({objective})" if base else objective


class _Spec(Protocol):
    @property
    def description(self) -> str: ...
    @property
    def service(self) -> str: ...
    @property
    def budgetingMethod(self) -> str: ...
    @property
    def objectives(self) -> Sequence[Any]: ...


class _Document(Protocol):
    """A validated ``SLO`` document of either version."""

    @property
    def metadata(self) -> Meta: ...
    @property
    def spec(self) -> _Spec: ...


def objective_slos(
    slo: _Document,
    window: Callable[[], tuple[float, CalendarWindow | None]],
    read: Callable[[int, Any], Read],
    source: str,
) -> list[SLO]:
    """One SLO per objective of a validated ``SLO`` document: its budgeting method checked,
    then its ``window`` read, then each objective (``read`` with its index)."""
    meta, spec = slo.metadata, slo.spec
    _occurrences(spec.budgetingMethod, source)
    period, calendar = window()
    done = [read(n, objective) for n, objective in enumerate(spec.objectives)]
    several = len(done) > 1
    base = spec.description or meta.displayName
    return [
        SLO(
            service=spec.service,
            name=f"{meta.name}-{n}" if several else meta.name,
            objective=percent,
            period_seconds=period,
            errors=errors,
            total=total,
            good=good,
            description=_description(base, display, several),
            source=source,
            format="openslo",
            labels=meta.labels,
            calendar=calendar,
        )
        for n, (percent, display, (errors, total, good)) in enumerate(done)
    ]


# -- openslo/v1 ----------------------------------------------------------------------------


class _MetricSource(Model):
    type: str | None = None
    metricSourceRef: str | None = None
    spec: dict[str, Any] = Field(default_factory=dict)


class _Metric(Model):
    metricSource: _MetricSource


class _Ratio(Model):
    counter: bool = True
    good: _Metric | None = None
    bad: _Metric | None = None
    total: _Metric | None = None
    # A ratio computed already (a recording rule's, say): of successes or of failures.
    raw: _Metric | None = None
    rawType: Literal["success", "failure"] | None = None


class _IndicatorSpec(Model):
    ratioMetric: _Ratio | None = None
    thresholdMetric: dict[str, Any] | None = None


class _Indicator(Model):
    metadata: Meta | None = None
    spec: _IndicatorSpec


class _TimeWindow(Model):
    duration: str
    isRolling: bool | None = None  # omitted: rolling, unless a calendar is given
    calendar: CalendarSpec | None = None


class _Objective(Model):
    displayName: str = ""
    target: Number | None = Field(default=None, gt=0, lt=1)
    targetPercent: Number | None = Field(default=None, gt=0, lt=100)
    # A composite SLO's objectives each have their own indicator.
    indicator: _Indicator | None = None
    indicatorRef: str | None = None


class _OpenSLOSpec(SpecBase):
    indicator: _Indicator | None = None
    indicatorRef: str | None = None
    timeWindow: list[_TimeWindow] = Field(default_factory=list, max_length=1)
    budgetingMethod: str = "Occurrences"
    objectives: list[_Objective] = Field(min_length=1)


class _OpenSLO(Model):
    apiVersion: Literal["openslo/v1"]
    kind: Literal["SLO"]
    metadata: Meta
    spec: _OpenSLOSpec


class _OpenSLI(Model):
    apiVersion: Literal["openslo/v1"]
    kind: Literal["SLI"]
    metadata: Meta
    spec: _IndicatorSpec


@dataclass(frozen=True)
class Refs:
    """What OpenSLO documents name across ``slos/``: SLIs (with their file) and the types
    of DataSources."""

    slis: dict[str, tuple[_IndicatorSpec, str]] = field(default_factory=dict)
    datasources: dict[str, str] = field(default_factory=dict)


def collect_refs(docs: list[tuple[dict[str, Any], str]]) -> Refs:
    """The ``SLI`` and ``DataSource`` documents among ``docs`` (each with its file)."""
    refs = Refs()
    for doc, source in docs:
        if doc.get("kind") == "SLI":
            try:
                sli = _OpenSLI.model_validate(doc)
            except ValidationError as exc:
                raise explain(exc, source) from exc
            if (known := refs.slis.get(sli.metadata.name)) is not None:
                raise ConfigError(
                    f"{source}: SLI {sli.metadata.name!r} is defined in {known[1]} too: an "
                    "indicatorRef must name one"
                )
            refs.slis[sli.metadata.name] = (sli.spec, source)
        elif doc.get("kind") == "DataSource":
            name = (doc.get("metadata") or {}).get("name")
            kind = (doc.get("spec") or {}).get("type")
            if isinstance(name, str) and isinstance(kind, str):
                refs.datasources[name] = kind
    return refs


def _query(metric: _Metric | None, where: str, source: str, refs: Refs) -> Query | None:
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
    field = "query" if "query" in ms.spec or "promql" not in ms.spec else "promql"
    query = ms.spec.get(field)  # promql: as Nobl9's Prometheus source, which OpenSLO mirrors
    if not isinstance(query, str) or not query.strip():
        raise ConfigError(f"{source}: {path}.spec.{field}: give the PromQL query (spec.query)")
    return Query(normal_query(query), f"{path}.spec.{field}")


def _counts(indicator: _IndicatorSpec, where: str, source: str, refs: Refs) -> Counts:
    ratio = indicator.ratioMetric
    if ratio is None:
        if indicator.thresholdMetric is not None:
            raise ConfigError(
                f"{source}: {where}.thresholdMetric: Terry reads ratioMetric indicators only"
            )
        raise ConfigError(f"{source}: {where}.ratioMetric: a ratioMetric is required")
    at = f"{where}.ratioMetric"
    return Counts(
        where=at,
        counter=ratio.counter,
        good=_query(ratio.good, f"{at}.good", source, refs),
        bad=_query(ratio.bad, f"{at}.bad", source, refs),
        total=_query(ratio.total, f"{at}.total", source, refs),
        raw=_query(ratio.raw, f"{at}.raw", source, refs),
        raw_type=ratio.rawType,
    )


def _indicator(
    spec: _OpenSLOSpec, objective: _Objective, where: str, source: str, refs: Refs
) -> tuple[Counts, str]:
    """The objective's own indicator (a composite SLO's) or else the SLO's, and the file to
    name in its errors."""
    inline, ref, at = spec.indicator, spec.indicatorRef, "spec"
    if objective.indicator is not None or objective.indicatorRef is not None:
        inline, ref, at = objective.indicator, objective.indicatorRef, where
    if inline is not None and ref is not None:
        raise ConfigError(f"{source}: {at}: give indicator or indicatorRef, not both")
    if inline is not None:
        return _counts(inline.spec, f"{at}.indicator.spec", source, refs), source
    if ref is None:
        raise ConfigError(f"{source}: spec: give indicator or indicatorRef")
    if ref not in refs.slis:
        raise ConfigError(f"{source}: {at}.indicatorRef: no SLI named {ref!r} in {SLO_DIR}/")
    sli, sli_source = refs.slis[ref]
    named = f"{sli_source} (SLI {ref})"
    return _counts(sli, "spec", named, refs), named


def _percent(objective: _Objective, where: str, source: str) -> float:
    if (objective.target is None) == (objective.targetPercent is None):
        raise ConfigError(f"{source}: {where}: give exactly one of target and targetPercent")
    if objective.target is not None:
        return percent_of(objective.target)
    assert objective.targetPercent is not None
    return objective.targetPercent


def _window(windows: list[_TimeWindow], source: str) -> tuple[float, CalendarWindow | None]:
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
    return time_window(count, unit, window.isRolling, window.calendar, (path, "duration"), source)


def from_openslo(doc: dict[str, Any], source: str, refs: Refs) -> list[SLO]:
    """The SLOs of one ``openslo/v1`` ``SLO`` document; ``refs``: the SLIs and DataSources
    it may name (pydantic's ``ValidationError`` when a field is wrong)."""
    slo = _OpenSLO.model_validate(doc)
    spec = slo.spec

    def read(n: int, objective: _Objective) -> Read:
        where = f"spec.objectives[{n}]"
        percent = _percent(objective, where, source)
        counts, named = _indicator(spec, objective, where, source, refs)
        return percent, objective.displayName, ratio_queries(counts, named)

    return objective_slos(slo, lambda: _window(spec.timeWindow, source), read, source)
