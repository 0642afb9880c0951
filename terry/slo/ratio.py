"""An OpenSLO ratio, whichever version wrote it (``Counts``: ``good`` or ``bad`` over
``total``, or ``raw`` with its ``rawType``), read into Terry's errors and total queries.

A query with ``{{.window}}`` is used as written. One without must be a plain series
selector: of a counter (``counter: true``, the default) Terry takes the rate,
``sum(rate(S[{{.window}}]))``, and reads a ``sum`` of one selector too, ``by`` or
``without`` labels, as the same sum of its rate (``sum by (code) (S)``:
``sum by (code) (rate(S[{{.window}}]))``, as OpenSLO's README writes them); with
``counter: false``, ``sum(sum_over_time(S[{{.window}}]))``; a ``raw`` ratio,
``avg(avg_over_time(S[{{.window}}]))``. Anything else must say where the range goes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from terry.errors import ConfigError
from terry.promql import promql_problem
from terry.slo.objective import WINDOW, WINDOW_SAMPLE, closed

__all__ = ["Counts", "Query", "ratio_queries"]

_SERIES = r"(?:[A-Za-z_:][A-Za-z0-9_:]*\s*(?:\{[^{}]*\})?|\{[^{}]*\})"
_SELECTOR = re.compile(rf"^\s*(?P<series>{_SERIES})\s*$")
_LABEL = r"[A-Za-z_][A-Za-z0-9_]*"
_GROUPING = rf"(?i:by|without)\s*\(\s*(?:{_LABEL}(?:\s*,\s*{_LABEL})*\s*,?\s*)?\)"
# sum(S), sum by (a, b) (S), sum(S) without (a): PromQL's clause goes before or after.
_SUM = re.compile(
    rf"^\s*(?i:sum)\s*(?P<before>{_GROUPING})?\s*\(\s*(?P<series>{_SERIES})\s*\)"
    rf"\s*(?P<after>{_GROUPING})?\s*$"
)


@dataclass(frozen=True)
class Query:
    text: str
    where: str  # the field it came from, for messages


@dataclass(frozen=True)
class Counts:
    """An OpenSLO ratio, whichever version wrote it: ``good`` or ``bad`` over ``total``, or
    ``raw`` with ``raw_type``."""

    where: str
    counter: bool = True
    good: Query | None = None
    bad: Query | None = None
    total: Query | None = None
    raw: Query | None = None
    raw_type: str | None = None


def _grouping(clause: str | None) -> str:
    """A ``by``/``without`` clause spelled one way, spaces around (``" by (a, b) "``);
    ``""`` for none."""
    if not clause:
        return ""
    keyword, _, labels = clause.partition("(")
    return f" {keyword.strip().lower()} ({', '.join(re.findall(_LABEL, labels))}) "


def _series(text: str, sums: bool) -> tuple[str, str] | None:
    """(grouping, series) of a plain series selector (no grouping), or, when ``sums``, of
    a ``sum`` of one, ``by`` or ``without`` labels before or after the parentheses; None
    for anything else."""
    match = _SELECTOR.match(text)
    if match is not None:
        return "", match["series"].strip()
    match = _SUM.match(text) if sums else None
    if match is None or (match["before"] and match["after"]):
        return None
    return _grouping(match["before"] or match["after"]), match["series"].strip()


def _ranged(query: Query, over: str, source: str, how: str, *, sums: bool = False) -> str:
    """The query as written when it says where the range goes; else ``over`` (a format
    with ``grouping``, ``series`` and ``window``) of the series it selects: a plain series
    selector or (``sums``) a ``sum`` of one, whose grouping the result keeps."""
    if WINDOW in query.text:
        if problem := promql_problem(query.text, {WINDOW: WINDOW_SAMPLE}):
            raise ConfigError(f"{source}: {query.where}: {problem}")
        return query.text
    found = _series(query.text, sums)
    if found is None:
        shape = "a series selector"
        if sums:
            shape += " or a sum of one, by or without labels"
        example = over.format(grouping="", series="SELECTOR", window=WINDOW)
        raise ConfigError(
            f"{source}: {query.where}: without {WINDOW} the query must be {shape} ({how}), "
            f"not {query.text[:80]!r}: write any other query with the range as [{WINDOW}], "
            f"e.g. {example}"
        )
    grouping, series = found
    ranged = over.format(grouping=grouping, series=series, window=WINDOW)
    if problem := promql_problem(ranged, {WINDOW: WINDOW_SAMPLE}):  # a selector's matchers, say
        raise ConfigError(f"{source}: {query.where}: {problem}")
    return ranged


def ratio_queries(counts: Counts, source: str) -> tuple[str, str | None, bool]:
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
        if counts.raw_type == "success":
            query = f"1 - ({closed(query)})"
        return query, None, False
    if counts.total is None:
        raise ConfigError(f"{source}: {where}: give total (with good or bad), or raw")
    if (counts.good is None) == (counts.bad is None):
        raise ConfigError(f"{source}: {where}: give exactly one of good and bad")
    counted = counts.good or counts.bad
    assert counted is not None
    if counted.text == counts.total.text:  # every event good (or bad): never a budget
        raise ConfigError(f"{source}: {counted.where}: the same query as {counts.total.where}")
    if counts.counter:
        over, how = "sum{grouping}(rate({series}[{window}]))", "Terry takes its rate"
    else:
        over, how = "sum(sum_over_time({series}[{window}]))", "Terry sums it over the window"
    return (
        _ranged(counted, over, source, how, sums=counts.counter),
        _ranged(counts.total, over, source, how, sums=counts.counter),
        counts.good is not None,
    )
