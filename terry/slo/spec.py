"""SLO specs as people write them, in two public formats, read into one ``SLO``.

Sloth's ``prometheus/v1`` (one service, several SLOs; ``sli.events`` with ``error_query`` and
``total_query``, or ``sli.raw.error_ratio_query``, each with ``{{.window}}`` where the range
goes) and OpenSLO's ``kind: SLO`` (``apiVersion: openslo/v1``; a ``ratioMetric`` with
``good`` or ``bad`` over ``total``, or a ``raw`` ratio with its ``rawType``, each a
Prometheus ``metricSource``; the indicator inline or an ``SLI`` document named by
``indicatorRef``; one objective, ``Occurrences`` budgeting).
A YAML file may hold several documents; documents of other OpenSLO kinds are skipped.

An OpenSLO query without ``{{.window}}`` must be a plain series selector (a counter, as
``counter: true`` says): Terry takes its rate, ``sum(rate(Q[{{.window}}]))``. Sloth has no
period in the spec; Terry's default is 30 days, as Sloth's.

Every field that is wrong is a ``ConfigError`` naming the file and the field
(``slos/checkout.yml: slos[0].objective: ...``). Queries are the repository's text: they are
sent to Prometheus as queries and written into rule files as YAML strings, never run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from terry.durations import parse_duration
from terry.errors import ConfigError
from terry.slo.budget import budget_fraction

__all__ = ["DEFAULT_PERIOD", "SLO", "WINDOW", "load_slos", "parse_document", "parse_text"]

WINDOW = "{{.window}}"
DEFAULT_PERIOD = 30 * 86400.0
SLO_DIR = "slos"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
_SELECTOR = re.compile(r"^\s*[A-Za-z_:][A-Za-z0-9_:]*\s*(\{[^{}]*\})?\s*$")


@dataclass(frozen=True)
class SLO:
    """One objective of one service, whatever format it was written in.

    ``errors`` and ``total`` are PromQL with ``{{.window}}`` for the range; when ``good`` is
    true ``errors`` counts good events (OpenSLO's ``good``) and bad = total - good."""

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

    @property
    def budget_fraction(self) -> float:
        """The share of events allowed to fail: 0.001 for 99.9%."""
        return budget_fraction(self.objective)

    @property
    def key(self) -> str:
        return f"{self.service}/{self.name}"

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


# -- Sloth: prometheus/v1 ------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


def _windowed(value: str) -> str:
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
            raise ValueError("SLI plugins are Sloth's own; write events or raw queries")
        return None


class _SlothSLO(_Model):
    name: str = Field(pattern=_NAME)
    objective: float = Field(gt=0, lt=100)
    description: str = ""
    sli: _SlothSLI
    labels: dict[str, str] = Field(default_factory=dict)


class _SlothSpec(_Model):
    version: Literal["prometheus/v1"]
    service: str = Field(pattern=_NAME)
    labels: dict[str, str] = Field(default_factory=dict)
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
                errors=errors.strip(),
                total=total.strip() if total else None,
                description=slo.description,
                source=source,
                format="sloth",
                labels={**spec.labels, **slo.labels},
            )
        )
    return out


# -- OpenSLO: openslo/v1, kind SLO ---------------------------------------------------------


class _PromSpec(_Model):
    query: str = Field(min_length=1)


class _MetricSource(_Model):
    type: str
    spec: _PromSpec

    @field_validator("type")
    @classmethod
    def _prometheus(cls, value: str) -> str:
        if value.lower() != "prometheus":
            raise ValueError(f"Terry reads Prometheus metric sources only, not {value!r}")
        return value


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

    @field_validator("thresholdMetric")
    @classmethod
    def _no_threshold(cls, value: dict[str, Any] | None) -> None:
        if value is not None:
            raise ValueError("only ratioMetric indicators are supported")
        return None


class _Meta(_Model):
    name: str = Field(pattern=_NAME)
    displayName: str = ""
    labels: dict[str, Any] = Field(default_factory=dict)


class _Indicator(_Model):
    metadata: _Meta | None = None
    spec: _IndicatorSpec


class _TimeWindow(_Model):
    duration: str
    isRolling: bool = True

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value


class _Objective(_Model):
    displayName: str = ""
    target: float | None = Field(default=None, gt=0, lt=1)
    targetPercent: float | None = Field(default=None, gt=0, lt=100)


class _OpenSLOSpec(_Model):
    description: str = ""
    service: str = Field(pattern=_NAME)
    indicator: _Indicator | None = None
    indicatorRef: str | None = None
    timeWindow: list[_TimeWindow] = Field(default_factory=list, max_length=1)
    budgetingMethod: Literal["Occurrences"] = "Occurrences"
    objectives: list[_Objective] = Field(min_length=1, max_length=1)


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


def _openslo_query(metric: _Metric, counter: bool, where: str, source: str) -> str:
    query = metric.metricSource.spec.query.strip()
    if WINDOW in query:
        return query
    if not _SELECTOR.match(query):
        raise ConfigError(
            f"{source}: {where}.metricSource.spec.query: without {WINDOW} the query must be a "
            f"series selector (Terry takes its rate), not {query[:80]!r}"
        )
    return f"sum(rate({query}[{WINDOW}]))" if counter else f"sum(sum_over_time({query}[{WINDOW}]))"


def _ratio_queries(ratio: _Ratio, where: str, source: str) -> tuple[str, str | None, bool]:
    """(errors, total, good) of an OpenSLO ratioMetric: ``good`` or ``bad`` over ``total``
    (counters: Terry takes their rate), or ``raw`` with ``rawType`` (a ratio already: its
    average over the window; of successes, the failures are one minus it)."""
    if ratio.raw is not None:
        if ratio.good or ratio.bad or ratio.total:
            raise ConfigError(f"{source}: {where}: raw stands alone (no good, bad or total)")
        if ratio.rawType is None:
            raise ConfigError(f"{source}: {where}.rawType: say success or failure")
        query = ratio.raw.metricSource.spec.query.strip()
        if WINDOW not in query:
            if not _SELECTOR.match(query):
                raise ConfigError(
                    f"{source}: {where}.raw.metricSource.spec.query: without {WINDOW} the "
                    f"query must be a series selector (Terry averages it), not {query[:80]!r}"
                )
            query = f"avg(avg_over_time({query}[{WINDOW}]))"
        return (f"1 - ({query})" if ratio.rawType == "success" else query), None, False
    if ratio.total is None:
        raise ConfigError(f"{source}: {where}: give total (with good or bad), or raw")
    if (ratio.good is None) == (ratio.bad is None):
        raise ConfigError(f"{source}: {where}: give exactly one of good and bad")
    counted = ratio.good or ratio.bad
    assert counted is not None
    kind = "good" if ratio.good is not None else "bad"
    return (
        _openslo_query(counted, ratio.counter, f"{where}.{kind}", source),
        _openslo_query(ratio.total, ratio.counter, f"{where}.total", source),
        kind == "good",
    )


def _from_openslo(doc: dict[str, Any], source: str, indicators: dict[str, _IndicatorSpec]) -> SLO:
    slo = _OpenSLO.model_validate(doc)
    spec = slo.spec
    if spec.indicator is not None:
        indicator, where = spec.indicator.spec, "spec.indicator.spec.ratioMetric"
    elif spec.indicatorRef is not None:
        if spec.indicatorRef not in indicators:
            raise ConfigError(
                f"{source}: spec.indicatorRef: no SLI named {spec.indicatorRef!r} in {SLO_DIR}/"
            )
        indicator, where = indicators[spec.indicatorRef], f"SLI {spec.indicatorRef}: ratioMetric"
    else:
        raise ConfigError(f"{source}: spec: give indicator or indicatorRef")
    ratio = indicator.ratioMetric
    if ratio is None:
        raise ConfigError(f"{source}: {where}: a ratioMetric is required")
    objective = spec.objectives[0]
    if (objective.target is None) == (objective.targetPercent is None):
        raise ConfigError(
            f"{source}: spec.objectives[0]: give exactly one of target and targetPercent"
        )
    percent = objective.targetPercent if objective.target is None else objective.target * 100
    assert percent is not None
    period = parse_duration(spec.timeWindow[0].duration) if spec.timeWindow else DEFAULT_PERIOD
    errors, total, good = _ratio_queries(ratio, where, source)
    return SLO(
        service=spec.service,
        name=slo.metadata.name,
        objective=round(percent, 6),
        period_seconds=period,
        errors=errors,
        total=total,
        good=good,
        description=spec.description or slo.metadata.displayName,
        source=source,
        format="openslo",
        labels={str(k): str(v) for k, v in slo.metadata.labels.items()},
    )


# -- reading -------------------------------------------------------------------------------


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


def parse_document(
    doc: dict[str, Any], source: str, indicators: dict[str, _IndicatorSpec] | None = None
) -> list[SLO]:
    """The SLOs of one YAML document: Sloth's when it has ``version``, OpenSLO's ``SLO``
    when it has ``kind``; other OpenSLO kinds hold none."""
    try:
        if "version" in doc:
            return _from_sloth(doc, source)
        if doc.get("kind") == "SLO":
            return [_from_openslo(doc, source, indicators or {})]
        if "kind" in doc and "apiVersion" in doc:
            return []  # Service, SLI, AlertPolicy...: not objectives
    except ValidationError as exc:
        raise _explain(exc, source) from exc
    raise ConfigError(
        f"{source}: neither a Sloth spec (version: prometheus/v1) nor an OpenSLO document "
        "(apiVersion: openslo/v1, kind: SLO)"
    )


def _indicators(docs: list[tuple[dict[str, Any], str]]) -> dict[str, _IndicatorSpec]:
    out = {}
    for doc, source in docs:
        if doc.get("kind") == "SLI":
            try:
                sli = _OpenSLI.model_validate(doc)
            except ValidationError as exc:
                raise _explain(exc, source) from exc
            out[sli.metadata.name] = sli.spec
    return out


def parse_text(text: str, source: str) -> list[SLO]:
    """The SLOs in one file's text (tests and single files)."""
    docs = [(d, source) for d in _documents(text, source)]
    found = _indicators(docs)
    return [s for doc, where in docs for s in parse_document(doc, where, found)]


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
    found = _indicators(docs)
    slos = [s for doc, source in docs for s in parse_document(doc, source, found)]
    seen: dict[str, str] = {}
    for slo in slos:
        if slo.key in seen:
            raise ConfigError(f"{slo.source}: SLO {slo.key} is also defined in {seen[slo.key]}")
        seen[slo.key] = slo.source
    return sorted(slos, key=lambda s: (s.service, s.name))
