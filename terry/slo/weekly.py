"""How much of each service's error budget a window (the weekly report's) consumed.

Consumed is the share of the SLO period's budget spent in the window: the error ratio over
the window, divided by the budget fraction, times the window's share of the period (7 days
at 0.5% errors with a 99.9% objective over 30 days: 0.005 / 0.001 * 7 / 30 = 117%). The
ratio weighs every moment of the window alike, as the period's own figure does. A service
with several SLOs shows the one that consumed most.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from terry.config import Config, PrometheusConfig
from terry.errors import TerryError
from terry.gitops.repo import Repo
from terry.inventory.hosts import Inventory, load_inventory
from terry.slo.services import hosts_of
from terry.slo.spec import SLO, load_slos
from terry.slo.status import read_ratios

__all__ = ["ServiceSpend", "budget_spend", "budget_spent"]

log = logging.getLogger("terry.reports")


@dataclass(frozen=True)
class ServiceSpend:
    service: str
    hosts: tuple[str, ...]  # the inventory hosts serving it (terry_labels: service)
    slos: tuple[str, ...]
    consumed_percent: float | None  # None: Prometheus could not tell
    error: str | None = None


def budget_spent(
    slos: Sequence[SLO],
    inventory: Inventory,
    prom: str | PrometheusConfig,
    *,
    start: float,
    end: float,
    timeout: float = 10.0,
) -> list[ServiceSpend]:
    window = end - start
    ratios = read_ratios(slos, prom, window_seconds=window, at=end, timeout=timeout)
    by_service: dict[str, list[tuple[SLO, float | None, str | None]]] = {}
    for row in ratios:
        by_service.setdefault(row[0].service, []).append(row)
    out = []
    for service, rows in sorted(by_service.items()):
        spent = [
            ratio / slo.budget_fraction * window / slo.period_seconds * 100.0
            for slo, ratio, _why in rows
            if ratio is not None
        ]
        errors = [f"{slo.name}: {why}" for slo, _r, why in rows if why]
        out.append(
            ServiceSpend(
                service=service,
                hosts=tuple(hosts_of(service, inventory)),
                slos=tuple(slo.name for slo, _r, _w in rows),
                consumed_percent=round(max(spent), 2) if len(spent) == len(rows) else None,
                error="; ".join(errors) or None,
            )
        )
    return out


def budget_spend(config: Config, start: datetime, end: datetime) -> list[ServiceSpend]:
    """Each service's error budget consumed from ``start`` to ``end`` (or now, if sooner),
    for main's SLOs, from ``prometheus.url``; none without SLOs or Prometheus. Specs main
    cannot read are logged and leave the section out: the rest of the report stands."""
    if not config.prometheus.url:
        return []
    try:
        repo = Repo(config.repo, main_branch=config.main_branch)
        tree = repo.tree(repo.head())
        slos = load_slos(tree)
        if not slos:
            return []
        inventory = load_inventory(tree, config.inventory)
    except TerryError as exc:
        log.warning("weekly report: error budgets left out: %s", exc)
        return []
    until = min(end.timestamp(), time.time())
    if until <= start.timestamp():
        return []
    return budget_spent(
        slos,
        inventory,
        config.prometheus,
        start=start.timestamp(),
        end=until,
        timeout=config.prometheus.timeout,
    )
