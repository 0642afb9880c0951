"""Verification: did the fix take? ``verified``, ``failed`` — or ``unknown``.

Unknown is not healthy: an unreachable host, a failed, empty, stale or NaN query is
``unknown``, which escalates or rolls back and is never recorded as verified.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from terry.appliers.base import EventStatus, RunResult, RunStatus
from terry.remedies.catalogue import PrometheusVerify

if TYPE_CHECKING:
    from terry.config import PrometheusConfig

__all__ = ["Outcome", "Verification", "combine", "fill_query", "judge_run", "query_prometheus"]


class Outcome(StrEnum):
    VERIFIED = "verified"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Verification:
    outcome: Outcome
    evidence: tuple[str, ...]


def judge_run(result: RunResult) -> Verification:
    """The remedy's own verify tasks, run with ``--tags verify``."""
    if result.unreachable_hosts:
        return Verification(
            Outcome.UNKNOWN, (f"unreachable: {', '.join(result.unreachable_hosts)}",)
        )
    if result.failed_hosts:
        return Verification(Outcome.FAILED, tuple(result.failure_messages()) or ("verify failed",))
    if result.status is not RunStatus.SUCCESSFUL:
        # What the applier last said it saw (e.g. Argo CD: "Suspended"), beside the status.
        said = [e.message for e in result.events if e.message and e.status is not EventStatus.OK]
        why = f"verify run ended {result.status.value}"
        return Verification(Outcome.UNKNOWN, (f"{why}: {said[-1]}" if said else why,))
    return Verification(Outcome.VERIFIED, ("verify tasks passed",))


def combine(*checks: Verification) -> Verification:
    evidence = tuple(e for c in checks for e in c.evidence)
    outcomes = {c.outcome for c in checks}
    if Outcome.FAILED in outcomes:
        return Verification(Outcome.FAILED, evidence)
    if Outcome.UNKNOWN in outcomes or not checks:
        return Verification(Outcome.UNKNOWN, evidence or ("nothing verified",))
    return Verification(Outcome.VERIFIED, evidence)


def promql_string(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"')


def fill_query(template: str, values: dict[str, Any]) -> str:
    """Replace ``{name}`` for known names only (PromQL's own braces are left alone)."""

    def swap(match: re.Match[str]) -> str:
        key = match.group(1)
        return promql_string(values[key]) if key in values else match.group(0)

    return re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", swap, template)


def _judge_samples(
    samples: list[float], spec: PrometheusVerify, values: dict[str, Any], query: str
) -> Verification:
    if not samples:
        return Verification(Outcome.UNKNOWN, (f"query returned no data: {query}",))
    if any(math.isnan(s) or math.isinf(s) for s in samples):
        return Verification(Outcome.UNKNOWN, (f"query returned NaN/Inf: {query}",))
    shown = ", ".join(f"{s:g}" for s in samples)
    for bound, holds in ((spec.below, float.__lt__), (spec.above, float.__gt__)):
        if bound is None:
            continue
        try:
            limit = float(fill_query(bound, values))
        except ValueError:
            return Verification(Outcome.UNKNOWN, (f"bound {bound!r} is not a number",))
        if not all(holds(s, limit) for s in samples):
            side = "below" if bound is spec.below else "above"
            return Verification(Outcome.FAILED, (f"{query} = {shown}, not {side} {limit:g}",))
    return Verification(Outcome.VERIFIED, (f"{query} = {shown}",))


def query_prometheus(
    prom: str | PrometheusConfig,
    spec: PrometheusVerify,
    values: dict[str, Any],
    *,
    timeout: float = 10.0,
    settle_seconds: float = 0.0,
) -> Verification:
    """Ask Prometheus (its configuration, or a bare URL), retrying until healthy or
    ``settle_seconds`` pass; judge the last answer."""
    from prometheus_api_client.exceptions import PrometheusApiClientException
    from requests.exceptions import RequestException

    from terry.prometheus import connect

    query = fill_query(spec.query, values)
    client = connect(prom, timeout=timeout)
    deadline = time.monotonic() + settle_seconds
    while True:
        try:
            answer = client.custom_query(query)
            samples = [float(item["value"][1]) for item in answer]
            verdict = _judge_samples(samples, spec, values, query)
        except (
            PrometheusApiClientException,
            RequestException,
            KeyError,
            ValueError,
            TypeError,
        ) as exc:
            verdict = Verification(Outcome.UNKNOWN, (f"query failed: {query}: {exc}",))
        if verdict.outcome is Outcome.VERIFIED or time.monotonic() >= deadline:
            return verdict
        time.sleep(min(2.0, max(0.2, deadline - time.monotonic())))
