"""Each SLO's budget now, from Prometheus: one instant query per window.

The error ratio over the SLO's period (a calendar-aligned one: since its current period
began) gives the SLI and the budget left; the ratios over the workbook's windows (1h, 5m, 6h,
30m) give the burn rates. The queries are the spec's own (``SLO.error_ratio_query``), so no
recording rule needs to be loaded for Terry to read them.

Unknown is not healthy: a query Prometheus refuses, an empty or NaN answer (no traffic), or
a Prometheus that cannot be reached leaves the figure ``None`` and the state ``unknown``,
with the reason in ``error``. When Prometheus cannot be reached at all, the remaining
queries are not tried (the gate asks with a short timeout and must not wait five times).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from terry.config import PrometheusConfig, prometheus_url
from terry.slo.budget import WINDOWS, Budget, compute_budget
from terry.slo.spec import SLO

__all__ = ["SLOStatus", "prom_duration", "read_ratios", "read_status"]


@dataclass(frozen=True)
class SLOStatus:
    slo: SLO
    budget: Budget
    error: str | None = None  # why a figure is unknown, with each query
    summary: str | None = None  # the same in a line: each reason once, without the queries

    @property
    def said(self) -> str | None:
        """Why a figure is unknown, in a line a gate reason can carry."""
        return self.summary or self.error


def prom_duration(seconds: float) -> str:
    """A PromQL range for ``seconds``: ``30d``, ``6h``, ``5m`` or ``90s``."""
    whole = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


_NOISE = 1e-9  # an error ratio this far below zero is float rounding, read as 0


class _Unreachable(Exception):
    pass


class _Client:
    """prometheus-api-client, asked once per window; failures become reasons, not raises."""

    def __init__(self, prom: str | PrometheusConfig, timeout: float) -> None:
        from urllib3.util.retry import Retry

        from terry.prometheus import connect

        # No retries: the gate waits for this with a short timeout.
        self.client = connect(prom, timeout=timeout, retry=Retry(total=0))
        self.timeout = timeout

    def ratio(self, query: str, at: float | None) -> tuple[float | None, str | None]:
        """The one value ``query`` answers at ``at``, or why there is none (the reason alone:
        the caller names the query)."""
        from prometheus_api_client.exceptions import PrometheusApiClientException
        from requests.exceptions import ConnectionError, RequestException, Timeout

        from terry.prometheus import MissingCredential

        params = {"time": f"{at:.3f}"} if at is not None else None
        try:
            answer = self.client.custom_query(query, params=params, timeout=self.timeout)
        except (ConnectionError, Timeout) as exc:
            raise _Unreachable(f"Prometheus could not be reached ({type(exc).__name__})") from exc
        except MissingCredential as exc:
            raise _Unreachable(str(exc)) from exc
        except PrometheusApiClientException as exc:
            return None, f"Prometheus refused the query ({str(exc)[:200]})"
        except (RequestException, ValueError) as exc:
            return None, f"Prometheus did not answer the query ({type(exc).__name__})"
        try:
            values = [float(item["value"][1]) for item in answer]
        except (KeyError, IndexError, TypeError, ValueError):
            return None, "Prometheus answered something that is not a vector"
        if not values:
            return None, "no answer (no traffic in the window, or no such series)"
        if len(values) > 1:
            return None, (
                f"{len(values)} series, not one: the SLI must answer one value for the "
                f"service (a raw ratio by some label is several; aggregate it)"
            )
        value = values[0]
        if math.isnan(value):
            return None, "no events to judge (NaN: no traffic in the window)"
        if value < 0:
            if value > -_NOISE:  # 1 - good/total, all good: float rounding below zero
                return 0.0, None
            return None, (
                f"a negative error ratio ({value:.6g}): more good events than events; "
                f"check the SLI's queries"
            )
        if value > 1:
            if value < 1 + _NOISE:
                return 1.0, None
            return None, (
                f"an error ratio above one ({value:.6g}): more failed events than events "
                f"(the error query is not a part of the total query?); check the SLI's "
                f"queries"
            )
        return value, None

    def close(self) -> None:
        self.client.close()


def _said(errors: list[tuple[str, str]]) -> tuple[str | None, str | None]:
    """(every reason with its query, each reason once with how many queries it befell)."""
    if not errors:
        return None, None
    counted = Counter(why for why, _query in errors)
    return (
        "; ".join(f"{why}: {query}" for why, query in errors),
        "; ".join(f"{why} ({n} {'query' if n == 1 else 'queries'})" for why, n in counted.items()),
    )


def _unknown(slo: SLO, error: str) -> SLOStatus:
    return SLOStatus(
        slo,
        compute_budget(
            objective=slo.objective,
            period_seconds=slo.period_seconds,
            period_error_ratio=None,
            window_error_ratios={},
        ),
        error,
    )


def _period(slo: SLO, override: float | None, at: float | None) -> tuple[float, float]:
    """(the period's length, the span to read the SLI over): ``override`` when given, else the
    SLO's window, or for a calendar-aligned one its current period and the time since it
    began."""
    if override:
        return override, override
    return slo.period_at(time.time() if at is None else at)


def read_status(
    slos: Sequence[SLO],
    prom: str | PrometheusConfig | None,
    *,
    timeout: float = 10.0,
    period_seconds: float | None = None,
    at: float | None = None,
) -> list[SLOStatus]:
    """Every SLO's budget as Prometheus (``prom``: its configuration or URL) says now (or
    at ``at``, epoch seconds). ``period_seconds`` overrides the specs' periods
    (``terry slo status --period``); a calendar-aligned period is read from its start."""
    if not slos:
        return []
    if not prometheus_url(prom):
        return [_unknown(s, "no Prometheus configured (prometheus.url)") for s in slos]
    assert prom is not None
    client = _Client(prom, timeout)
    out: list[SLOStatus] = []
    try:
        for n, slo in enumerate(slos):
            period, span = _period(slo, period_seconds, at)
            errors: list[tuple[str, str]] = []  # (why, query)
            try:
                query = slo.error_ratio_query(prom_duration(span))
                ratio, why = client.ratio(query, at)
                errors += [(why, query)] if why else []
                windows: dict[str, float | None] = {}
                for window in WINDOWS:
                    query = slo.error_ratio_query(window)
                    windows[window], why = client.ratio(query, at)
                    errors += [(why, query)] if why else []
            except _Unreachable as exc:
                out += [_unknown(s, str(exc)) for s in slos[n:]]
                break
            budget = compute_budget(
                objective=slo.objective,
                period_seconds=period,
                period_error_ratio=ratio,
                window_error_ratios=windows,
                slo_period_seconds=slo.period_seconds,
            )
            out.append(SLOStatus(slo, budget, *_said(errors)))
    finally:
        client.close()
    return out


def read_ratios(
    slos: Sequence[SLO],
    prom: str | PrometheusConfig,
    *,
    window_seconds: float,
    at: float,
    timeout: float = 10.0,
) -> list[tuple[SLO, float | None, str | None]]:
    """Each SLO's error ratio over the ``window_seconds`` before ``at`` (the weekly report's
    window), with why it is unknown when it is."""
    client = _Client(prom, timeout)
    window = prom_duration(window_seconds)
    out: list[tuple[SLO, float | None, str | None]] = []
    try:
        for n, slo in enumerate(slos):
            query = slo.error_ratio_query(window)
            try:
                ratio, why = client.ratio(query, at)
            except _Unreachable as exc:
                out += [(s, None, str(exc)) for s in slos[n:]]
                break
            out.append((slo, ratio, f"{why}: {query}" if why else None))
    finally:
        client.close()
    return out
