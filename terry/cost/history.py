"""The fleet's cost over time, a point per day, from Prometheus' record of which hosts ran.

Chosen over the git history of the inventory: Prometheus knows when a host actually ran
(a host added to the inventory but never started costs nothing; one running before it was
written down costs all the same), it answers in one range query, and it needs no inventory
loaded per commit. What it does not know is the type a host had on a past day: each day is
priced at the host's type and volume in main's inventory today, with today's prices. A day
a host has any CPU sample counts as a whole day of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from terry.config import PrometheusConfig, prometheus_url
from terry.cost.usage import CPU_IDLE, PromClient, PromError, host_of
from terry.inventory.hosts import Inventory

__all__ = ["DayCost", "cost_history"]

DAY = 86400.0
PRESENT = f"max without (cpu, mode) (present_over_time({CPU_IDLE}[1d]))"


@dataclass(frozen=True)
class DayCost:
    day: str  # YYYY-MM-DD (UTC), the day ending at the point
    cost: float  # in the prices' currency
    hosts: int  # hosts seen that day


def cost_history(
    inventory: Inventory,
    daily: Mapping[str, float],
    prom: str | PrometheusConfig | None,
    *,
    host_labels: Sequence[str],
    days: int,
    at: float,
    timeout: float = 10.0,
) -> tuple[tuple[DayCost, ...], str | None]:
    """``days`` points up to ``at``: each day's cost of the hosts Prometheus saw that day
    (``daily``: a host's cost per day today). Empty with the reason when it cannot tell."""
    if not prometheus_url(prom):
        return (), "no Prometheus configured (prometheus.url)"
    from datetime import UTC, datetime

    end = at // DAY * DAY
    start = end - (days - 1) * DAY
    assert prom is not None
    client = PromClient(prom, timeout)
    try:
        series = client.matrix(PRESENT, start, end, DAY)
    except PromError as exc:
        return (), str(exc)
    finally:
        client.close()
    seen: dict[float, set[str]] = {start + n * DAY: set() for n in range(days)}
    for labels, points in series:
        host = host_of(labels, inventory, host_labels)
        if host is None:
            continue
        for t, value in points:
            if value > 0 and t in seen:
                seen[t].add(host)
    out = tuple(
        DayCost(
            day=datetime.fromtimestamp(t - 1, UTC).date().isoformat(),
            cost=round(sum(daily.get(h, 0.0) for h in hosts), 2),
            hosts=len(hosts),
        )
        for t, hosts in sorted(seen.items())
    )
    return out, None
