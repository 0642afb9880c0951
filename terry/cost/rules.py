"""Recommendations, pure: from a host's footprint, its utilisation and the prices to what
could cost less, with the monthly saving.

- ``idle``: the busiest hour of the last ``idle_lookback`` (7 days) used under
  ``idle_cpu_percent`` (10%) of the CPU: the whole host's cost is at stake (stop or remove it;
  advice, never proposed: removing a host is a person's call).
- ``downsize``: the busiest hour of the last ``lookback`` (30 days) used under
  ``downsize_cpu_percent`` (20%), and the next smaller type of the family (``PriceBook.smaller``)
  holds the memory the host used at its peak with 20% to spare: the saving is the price
  difference. Not made for a host that is idle (that saving includes this one).
- ``spot``: a host labelled ``spot_label`` (``workload=batch``) not on spot yet: the saving is
  ``spot_discount`` of its instance price (advice: moving to spot is a change of how the
  instance is bought, which the inventory does not hold).
- ``volume``: the volume's filesystem at its fullest hour under ``volume_used_percent`` (30%)
  full: propose the size that leaves it ``volume_target_percent`` (60%) full at that peak,
  rounded up to 10 GB (at least 8 GB); the saving is the GB given back at the volume price.

Judging wants evidence: 90% of the span's hours with samples, else no recommendation (an
unknown is not a saving). Savings add up without counting twice (``total_savings``): per host
idle alone, else the larger of downsize and spot, plus the volume saving.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from terry.cost.hosts import Footprint
from terry.cost.prices import PriceBook
from terry.cost.usage import Usage

__all__ = [
    "MIN_COVERAGE",
    "Kind",
    "Recommendation",
    "Thresholds",
    "recommend",
    "total_savings",
    "volume_target_gb",
]

MIN_COVERAGE = 0.9
MEMORY_HEADROOM = 0.8  # the smaller type's memory the host's peak may fill


class Kind(StrEnum):
    IDLE = "idle"
    DOWNSIZE = "downsize"
    SPOT = "spot"
    VOLUME = "volume"
    REQUESTS = "requests"  # a Kubernetes container's requests (terry.cost.workloads)


# Kinds that become an inventory change (``terry cost propose``); REQUESTS becomes a
# manifest edit instead (terry.cost.workload_proposal).
PROPOSABLE = frozenset({Kind.DOWNSIZE, Kind.VOLUME})


@dataclass(frozen=True)
class Thresholds:
    downsize_cpu_percent: float = 20.0
    idle_cpu_percent: float = 10.0
    volume_used_percent: float = 30.0
    volume_target_percent: float = 60.0
    spot_label: str = "workload=batch"
    requests_used_percent: float = 30.0
    requests_target_percent: float = 60.0


@dataclass(frozen=True)
class Recommendation:
    id: str  # "downsize:web-01": what ``terry cost propose`` takes
    kind: Kind
    host: str
    monthly_saving: float
    current: str  # "m5.xlarge", "200 GB gp3"
    proposed: str  # "m5.large", "40 GB", "stop or remove", "spot"
    why: str
    # The inventory change that carries it out (variable -> value), empty for advice.
    change: dict[str, str | int]

    @property
    def proposable(self) -> bool:
        return bool(self.change)


def _pct(share: float) -> str:
    return f"{share * 100:.1f}%"


def volume_target_gb(used_gb: float, target_percent: float) -> int:
    """The size that leaves ``used_gb`` at ``target_percent`` full, rounded up to 10 GB."""
    return max(8, int(math.ceil(used_gb / (target_percent / 100.0) / 10.0) * 10))


def _idle(f: Footprint, u: Usage, prices: PriceBook, t: Thresholds) -> Recommendation | None:
    if u.cpu_peak_idle is None or u.coverage_idle < MIN_COVERAGE:
        return None
    if u.cpu_peak_idle * 100 >= t.idle_cpu_percent:
        return None
    instance = prices.monthly(f.instance_type) or 0.0
    volume = prices.volume_monthly(f.volume_type, f.volume_gb) or 0.0
    if instance + volume <= 0:
        return None
    return Recommendation(
        id=f"idle:{f.host}",
        kind=Kind.IDLE,
        host=f.host,
        monthly_saving=round(instance + volume, 2),
        current=f.instance_type or "-",
        proposed="stop or remove",
        why=f"CPU at most {_pct(u.cpu_peak_idle)} in any hour of the idle lookback "
        f"(under {t.idle_cpu_percent:g}%)",
        change={},
    )


def _downsize(f: Footprint, u: Usage, prices: PriceBook, t: Thresholds) -> Recommendation | None:
    if u.cpu_peak is None or u.coverage < MIN_COVERAGE or f.instance_type is None:
        return None
    if u.cpu_peak * 100 >= t.downsize_cpu_percent:
        return None
    current, smaller = prices.instance(f.instance_type), prices.smaller(f.instance_type)
    if current is None or smaller is None:
        return None
    if u.memory_peak is None:
        return None  # memory unknown: a smaller type might not hold it
    used_gb = u.memory_peak * (u.memory_total_gb or current.memory_gb or 0.0)
    if smaller.memory_gb is not None and used_gb > 0:
        if used_gb > smaller.memory_gb * MEMORY_HEADROOM:
            return None
    elif u.memory_peak > 0.5 * MEMORY_HEADROOM:  # no sizes listed: assume half the memory
        return None
    saving = (current.hourly - smaller.hourly) * prices.hours_per_month
    return Recommendation(
        id=f"downsize:{f.host}",
        kind=Kind.DOWNSIZE,
        host=f.host,
        monthly_saving=round(saving, 2),
        current=current.name,
        proposed=smaller.name,
        why=f"CPU at most {_pct(u.cpu_peak)} in any hour of the lookback (under "
        f"{t.downsize_cpu_percent:g}%; mean {_pct(u.cpu_mean or 0.0)}), memory at most "
        f"{_pct(u.memory_peak)}",
        change={"terry_instance_type": smaller.name},
    )


def _labelled(labels: dict[str, str], selector: str) -> bool:
    key, _, value = selector.partition("=")
    return bool(key) and labels.get(key.strip()) == value.strip()


def _spot(
    f: Footprint, labels: dict[str, str], prices: PriceBook, t: Thresholds
) -> Recommendation | None:
    if f.spot or not _labelled(labels, t.spot_label):
        return None
    monthly = prices.monthly(f.instance_type)
    if not monthly:
        return None
    return Recommendation(
        id=f"spot:{f.host}",
        kind=Kind.SPOT,
        host=f.host,
        monthly_saving=round(monthly * prices.spot_discount, 2),
        current=f"{f.instance_type} on demand",
        proposed="spot",
        why=f"labelled {t.spot_label}: interruptible work; spot saves about "
        f"{prices.spot_discount * 100:.0f}%",
        change={},
    )


def _volume(f: Footprint, u: Usage, prices: PriceBook, t: Thresholds) -> Recommendation | None:
    peak = u.disk_peak.get(f.mountpoint)
    price = prices.volume(f.volume_type)
    if peak is None or price is None or f.volume_gb is None or u.coverage < MIN_COVERAGE:
        return None
    if peak * 100 >= t.volume_used_percent:
        return None
    target = volume_target_gb(peak * f.volume_gb, t.volume_target_percent)
    if target >= f.volume_gb:
        return None
    return Recommendation(
        id=f"volume:{f.host}",
        kind=Kind.VOLUME,
        host=f.host,
        monthly_saving=round((f.volume_gb - target) * price.gb_month, 2),
        current=f"{f.volume_gb:g} GB {price.name}",
        proposed=f"{target} GB",
        why=f"{f.mountpoint} at most {_pct(peak)} full in any hour of the lookback (under "
        f"{t.volume_used_percent:g}%); {target} GB leaves it {t.volume_target_percent:g}% full",
        change={"terry_volume_gb": target},
    )


def recommend(
    f: Footprint,
    usage: Usage | None,
    labels: dict[str, str],
    prices: PriceBook,
    thresholds: Thresholds,
) -> list[Recommendation]:
    """Every recommendation for one host, in a fixed order (idle, downsize, spot, volume)."""
    u = usage or Usage(host=f.host)
    idle = _idle(f, u, prices, thresholds)
    found = [
        idle,
        None if idle else _downsize(f, u, prices, thresholds),
        _spot(f, labels, prices, thresholds),
        _volume(f, u, prices, thresholds),
    ]
    return [r for r in found if r is not None]


def total_savings(recommendations: Iterable[Recommendation]) -> float:
    """What acting on them all saves a month, never overstated: per host, idle alone (it
    includes the volume), else the larger of downsize and spot plus the volume saving."""
    by_host: dict[str, dict[Kind, float]] = {}
    total = 0.0
    for r in recommendations:
        if r.kind is Kind.REQUESTS:  # one per container, none of the others on a workload
            total += r.monthly_saving
            continue
        by_host.setdefault(r.host, {})[r.kind] = r.monthly_saving
    for kinds in by_host.values():
        if Kind.IDLE in kinds:
            total += kinds[Kind.IDLE]  # includes the volume
            continue
        total += max(kinds.get(Kind.DOWNSIZE, 0.0), kinds.get(Kind.SPOT, 0.0))
        total += kinds.get(Kind.VOLUME, 0.0)
    return round(total, 2)
