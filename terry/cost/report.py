"""The cost report: what each host, tenant and environment costs a month, the
recommendations and their savings, and the cost over time (``terry cost report``).

Everything is read from main: the price list, the inventory (hosts, their types and
volumes, environments, labels) and the tenants (``policies/tenants.yml``); utilisation and
the history from Prometheus. A host whose type or volume has no price is listed as
unpriced with the reason, never counted as free.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

from terry.config import Config
from terry.cost.history import DayCost, cost_history
from terry.cost.hosts import footprint
from terry.cost.prices import PriceBook, load_prices
from terry.cost.rules import Recommendation, Thresholds, recommend, total_savings
from terry.cost.usage import Usage, read_usage
from terry.cost.workloads import read_workloads, recommend_requests, workload_usage
from terry.errors import NotFound
from terry.gitops.repo import Repo
from terry.inventory.hosts import Inventory, load_inventory
from terry.store.models import utcnow
from terry.tenants.loader import load_tenants
from terry.tenants.model import Tenants

__all__ = ["SCHEMA", "CostReport", "Group", "HostCost", "cost_report", "find_recommendation"]

SCHEMA = "terry.cost/v1"
HISTORY_DAYS = 30


@dataclass(frozen=True)
class HostCost:
    host: str
    environment: str
    tenant: str  # "(none)" when the host is in no tenant
    instance_type: str | None
    instance_monthly: float | None
    volume_type: str | None
    volume_gb: float | None
    volume_monthly: float | None
    monthly: float  # what is priced of it
    unpriced: str | None  # what has no price, when something has none
    cpu_peak_percent: float | None
    cpu_mean_percent: float | None
    memory_peak_percent: float | None
    disk_peak_percent: float | None
    coverage_percent: float


@dataclass(frozen=True)
class Group:
    name: str
    hosts: int
    monthly: float


@dataclass(frozen=True)
class CostReport:
    generated_at: datetime
    currency: str
    prices: str  # where the prices came from
    monthly_total: float
    hosts: tuple[HostCost, ...]
    tenants: tuple[Group, ...]
    environments: tuple[Group, ...]
    recommendations: tuple[Recommendation, ...]
    savings_total: float
    history: tuple[DayCost, ...]
    utilisation_error: str | None = None
    history_error: str | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    schema: str = SCHEMA
    # Hosts with a part that has no price: their priced part only is in the totals (a
    # lower bound, said with the total, never a host counted as free).
    unpriced_hosts: tuple[str, ...] = ()


def _pct(share: float | None) -> float | None:
    return None if share is None else round(share * 100, 2)


def _host_cost(
    name: str, inventory: Inventory, tenancy: Tenants | None, prices: PriceBook, usage: Usage
) -> HostCost:
    host = inventory.hosts[name]
    f = footprint(host)
    instance = prices.monthly(f.instance_type)
    volume = prices.volume_monthly(f.volume_type, f.volume_gb)
    missing = []
    if f.instance_type is None:
        missing.append("no instance type (terry_instance_type)")
    elif instance is None:
        missing.append(f"no price for instance type {f.instance_type}")
    if f.volume_gb is not None and volume is None:
        missing.append(f"no price for volume type {f.volume_type or '(none: terry_volume_type)'}")
    tenant = tenancy.tenant_of(host) if tenancy is not None else host.tenant
    return HostCost(
        host=name,
        environment=host.environment or "unknown",
        tenant=tenant or "(none)",
        instance_type=f.instance_type,
        instance_monthly=None if instance is None else round(instance, 2),
        volume_type=f.volume_type,
        volume_gb=f.volume_gb,
        volume_monthly=None if volume is None else round(volume, 2),
        monthly=round((instance or 0.0) + (volume or 0.0), 2),
        unpriced="; ".join(missing) or None,
        cpu_peak_percent=_pct(usage.cpu_peak),
        cpu_mean_percent=_pct(usage.cpu_mean),
        memory_peak_percent=_pct(usage.memory_peak),
        disk_peak_percent=_pct(usage.disk_peak.get(f.mountpoint)),
        coverage_percent=round(usage.coverage * 100, 1),
    )


def _groups(rows: list[HostCost], key: str) -> tuple[Group, ...]:
    sums: dict[str, list[float]] = {}
    for row in rows:
        sums.setdefault(getattr(row, key), []).append(row.monthly)
    return tuple(
        Group(name, len(v), round(sum(v), 2))
        for name, v in sorted(sums.items(), key=lambda kv: (-sum(kv[1]), kv[0]))
    )


def thresholds_of(config: Config) -> Thresholds:
    c = config.cost
    return Thresholds(
        downsize_cpu_percent=c.downsize_cpu_percent,
        idle_cpu_percent=c.idle_cpu_percent,
        volume_used_percent=c.volume_used_percent,
        volume_target_percent=c.volume_target_percent,
        spot_label=c.spot_label,
        requests_used_percent=c.requests_used_percent,
        requests_target_percent=c.requests_target_percent,
    )


def _read(tree: Path, path: str) -> str | None:
    """A file of main's tree named by the inventory (terry_manifest), inside the tree."""
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or ".." in parts:
        return None
    file = tree / path
    return file.read_text(encoding="utf-8") if file.is_file() else None


def build_report(
    tree: Path, config: Config, *, at: float | None = None, history: bool = True
) -> CostReport:
    """The report of the repository tree ``tree`` (main's), utilisation up to ``at``."""
    at = time.time() if at is None else at
    prices = load_prices(tree, config.cost.prices, config.cost.pricing)
    inventory = load_inventory(tree, config.inventory)
    tenancy = load_tenants(tree, config.policy.path)
    prom, c = config.prometheus, config.cost
    reading = read_usage(
        inventory,
        prom,
        host_labels=config.host_labels,
        lookback=c.lookback,
        idle_lookback=c.idle_lookback,
        at=at,
        timeout=prom.timeout,
    )
    thresholds = thresholds_of(config)
    rows, recs = [], []
    for name in sorted(inventory.hosts):
        usage = reading.hosts.get(name) or Usage(host=name)
        rows.append(_host_cost(name, inventory, tenancy, prices, usage))
        host = inventory.hosts[name]
        recs += recommend(footprint(host), usage, host.labels, prices, thresholds)
    k8s_error = None
    if prices.kubernetes is not None:  # Argo CD targets' requests (terry.cost.workloads)
        workloads = read_workloads(inventory, lambda path: _read(tree, path))
        used, k8s_error = workload_usage(
            workloads, prom, lookback=c.lookback, at=at, timeout=prom.timeout
        )
        for workload in workloads:
            recs += recommend_requests(workload, used, prices, thresholds)
    days: tuple[DayCost, ...] = ()
    history_error = None
    if history:
        days, history_error = cost_history(
            inventory,
            {r.host: r.monthly / prices.hours_per_month * 24 for r in rows},
            prom,
            host_labels=config.host_labels,
            days=HISTORY_DAYS,
            at=at,
            timeout=prom.timeout,
        )
    return CostReport(
        generated_at=utcnow(),
        currency=prices.currency,
        prices=prices.source,
        monthly_total=round(sum(r.monthly for r in rows), 2),
        hosts=tuple(rows),
        tenants=_groups(rows, "tenant"),
        environments=_groups(rows, "environment"),
        recommendations=tuple(sorted(recs, key=lambda r: (-r.monthly_saving, r.id))),
        savings_total=total_savings(recs),
        history=days,
        utilisation_error=reading.error or k8s_error,
        history_error=history_error,
        thresholds=thresholds,
        unpriced_hosts=tuple(r.host for r in rows if r.unpriced),
    )


def cost_report(config: Config, *, at: float | None = None, history: bool = True) -> CostReport:
    """The report of main as it is now."""
    repo = Repo(config.repo, main_branch=config.main_branch)
    return build_report(repo.tree(repo.head()), config, at=at, history=history)


def find_recommendation(report: CostReport, rec_id: str) -> Recommendation:
    for rec in report.recommendations:
        if rec.id == rec_id:
            return rec
    known = ", ".join(r.id for r in report.recommendations) or "none"
    raise NotFound(f"no recommendation {rec_id[:80]!r} (now: {known}; 'terry cost report')")
