"""Fresh data before a verdict: Prometheus judged right after a fix answers with the last
sample it scraped, which may predate the fix (or catch it half done). Before the remedy's
PromQL is judged, Terry waits until every scrape target of the fixed hosts has been scraped
after the change was complete: the moment verification began, or an earlier one the caller
knows the change was done by (Terry's own clock, ``time.monotonic()``, when it saw the
verify play of the apply's run begin: a storm's verify tasks take seconds over many hosts,
and scrapes during them already count).

All times compared are Prometheus' own (``time()``, and ``timestamp(up)``: the start of each
target's last committed scrape); Terry's clock only measures how long ago the change was
done, as a difference, so a clock that disagrees with Prometheus' never enters. Targets are
placed on hosts as alerts are (``host_labels``, then the inventory: name or address,
``:port`` stripped). When no target names the hosts, every target must have been scraped since.
The wait is bounded by twice the slowest of those targets' scrape intervals
(``/api/v1/targets``; the median one when every target stands in; 60 s when Prometheus
does not say) plus the query timeout; past it, or when Prometheus cannot be asked, the
latest data is judged and the verdict says so.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from terry.config import PrometheusConfig

__all__ = ["Freshness", "await_scrape", "prometheus_seconds"]

_DEFAULT_INTERVAL = 60.0
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


@dataclass(frozen=True)
class Freshness:
    fresh: bool
    waited: float
    note: str = ""  # set when the data could not be shown fresh: the verdict carries it


def prometheus_seconds(text: object) -> float | None:
    """Seconds of a Prometheus duration (``15s``, ``1m30s``, ``500ms``); None if not one."""
    if not isinstance(text, str) or not text:
        return None
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(int(n) * _UNIT[u] for n, u in parts)


def await_scrape(
    prom: str | PrometheusConfig,
    hosts: Collection[str],
    host_of: Callable[[Mapping[str, str]], str | None],
    *,
    timeout: float,
    poll: float | None = None,
    done_at: float | None = None,
) -> Freshness:
    """Wait until every scrape target of ``hosts`` has a sample newer than the change (see
    the module's text): ``done_at``, a ``time.monotonic()`` reading by which it was done, or
    now; ``host_of`` places a target's labels on a host (or None). Asks every ``poll``
    seconds (a tenth of the scrape interval, 0.25–2 s, when not given)."""
    from prometheus_api_client.exceptions import PrometheusApiClientException
    from requests.exceptions import RequestException

    from terry.prometheus import connect

    client = connect(prom, timeout=timeout)
    started = time.monotonic()
    wanted = set(hosts)
    try:
        # Read before asking: the answer's time is later still, so ``since`` errs late.
        ago = max(0.0, time.monotonic() - done_at) if done_at is not None else 0.0
        since = float(client.custom_query("time()")[0]) - ago
        interval = _slowest_interval(client, wanted, host_of)
        bound = 2 * interval + timeout
        pause = poll if poll is not None else min(2.0, max(0.25, interval / 10))
        while True:
            waiting = _not_yet(client.custom_query("timestamp(up)"), since, wanted, host_of)
            waited = time.monotonic() - started
            if waiting is None:
                return Freshness(False, waited, "Prometheus scrapes no target: judged as is")
            if not waiting:
                return Freshness(True, waited)
            if waited >= bound:
                names = ", ".join(sorted(waiting)[:5])
                return Freshness(
                    False,
                    waited,
                    f"no scrape of {names} newer than the change within {bound:g}s: "
                    "judged the latest data",
                )
            time.sleep(pause)
    except (
        PrometheusApiClientException,
        RequestException,
        KeyError,
        IndexError,
        TypeError,
        ValueError,
    ) as exc:
        return Freshness(
            False,
            time.monotonic() - started,
            f"could not tell whether Prometheus' data is newer than the change ({exc}): "
            "judged the latest data",
        )


def _targets_of(
    labels_list: list[Mapping[str, str]],
    wanted: set[str],
    host_of: Callable[[Mapping[str, str]], str | None],
) -> list[int]:
    """Indexes of the targets placed on ``wanted`` hosts; every target when none is."""
    return _placed(labels_list, wanted, host_of) or list(range(len(labels_list)))


def _placed(
    labels_list: list[Mapping[str, str]],
    wanted: set[str],
    host_of: Callable[[Mapping[str, str]], str | None],
) -> list[int]:
    """Indexes of the targets placed on ``wanted`` hosts (maybe none)."""
    return [i for i, labels in enumerate(labels_list) if host_of(labels) in wanted]


def _not_yet(
    answer: list[dict[str, Any]],
    since: float,
    wanted: set[str],
    host_of: Callable[[Mapping[str, str]], str | None],
) -> set[str] | None:
    """The targets (by instance) whose last scrape is not newer than ``since``; None when
    Prometheus has no target at all."""
    if not answer:
        return None
    labels = [dict(item["metric"]) for item in answer]
    return {
        labels[i].get("instance") or labels[i].get("job") or "?"
        for i in _targets_of(labels, wanted, host_of)
        if float(answer[i]["value"][1]) <= since
    }


def _slowest_interval(
    client: Any, wanted: set[str], host_of: Callable[[Mapping[str, str]], str | None]
) -> float:
    """The scrape interval that bounds the wait: the longest among the hosts' own targets;
    when no target is placed on the hosts (every target stands in for them), the median
    one, so that one slow probe elsewhere (a 5-minute blackbox job) does not hold every
    verification for ten minutes."""
    from prometheus_api_client.exceptions import PrometheusApiClientException
    from requests.exceptions import RequestException

    try:
        active = client.get_targets(state="active")["activeTargets"]
    except (PrometheusApiClientException, RequestException, KeyError, TypeError, ValueError):
        return _DEFAULT_INTERVAL
    labels = [dict(t.get("labels") or {}) for t in active]
    mine = _placed(labels, wanted, host_of)
    seconds = [
        prometheus_seconds(active[i].get("scrapeInterval")) for i in mine or range(len(active))
    ]
    known = [s for s in seconds if s]
    if not known or len(known) != len(seconds):
        return _DEFAULT_INTERVAL
    return max(known) if mine else statistics.median(known)
