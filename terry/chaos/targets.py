"""Which host an experiment breaks: drawn at random among the hosts its selector matches,
never one in an environment chaos may not touch (production, unless ``chaos.environments``
lists it), never one with an open incident (its trouble would be confused with the fault),
never one serving a service whose SLO error budget is below ``chaos.min_budget_percent``
or cannot be read (an experiment must not spend a budget that is nearly gone, and an unknown
budget is not a healthy one), and never more than the blast radius allows."""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from terry.errors import InputError, NotFound, StateError
from terry.inventory.hosts import Host, Inventory
from terry.slo.services import services_of

__all__ = ["Choice", "Selector", "select_targets"]


@dataclass(frozen=True)
class Selector:
    """What an experiment says about its targets (its ``terry`` extension)."""

    hosts: tuple[str, ...] = ()  # glob patterns of inventory names; empty: any
    environments: tuple[str, ...] = ()  # empty: any chaos may touch
    groups: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    count: int = 1

    def matches(self, host: Host) -> bool:
        if self.hosts and not any(fnmatch.fnmatchcase(host.name, p) for p in self.hosts):
            return False
        if self.environments and host.environment not in self.environments:
            return False
        if self.groups and not set(self.groups) & set(host.groups):
            return False
        return all(host.labels.get(k) == v for k, v in self.labels.items())


@dataclass(frozen=True)
class Choice:
    hosts: tuple[Host, ...]
    candidates: tuple[str, ...]  # every host that could have been drawn
    excluded: dict[str, str]  # host -> why not


def _short_budget(
    host: Host, budgets: Mapping[str, float | None], min_percent: float
) -> str | None:
    """Why ``host``'s services forbid chaos now, or None. ``budgets``: service -> error
    budget left in percent, None when it cannot be read; a service without an SLO is
    absent and does not count."""
    short = []
    for service in sorted(services_of([host])):
        if service not in budgets:
            continue
        left = budgets[service]
        if left is None:
            short.append(f"{service} (unknown)")
        elif left < min_percent:
            short.append(f"{service} ({left:.1f}%)")
    if not short:
        return None
    return (
        f"SLO error budget below chaos.min_budget_percent ({min_percent:g}%) or unknown: "
        + ", ".join(short)
    )


def select_targets(
    inventory: Inventory,
    selector: Selector,
    *,
    allowed_environments: Iterable[str],
    busy: Iterable[str],
    max_blast_radius: int,
    budgets: Mapping[str, float | None] | None = None,
    min_budget_percent: float = 0.0,
    forced: str | None = None,
    rng: random.Random | None = None,
) -> Choice:
    """The hosts to break. ``busy``: hosts with an open incident or a fault of another
    run. ``budgets``: error budget left per service with an SLO (None: unknown), read by
    the caller; ``min_budget_percent`` 0 turns the budget rule off. ``forced``
    (``--target``) must pass the same rules as a drawn host."""
    if selector.count > max_blast_radius:
        raise InputError(
            f"the experiment asks for {selector.count} hosts; chaos.max_blast_radius is "
            f"{max_blast_radius}"
        )
    allowed, taken = set(allowed_environments), set(busy)
    excluded: dict[str, str] = {}
    candidates: list[Host] = []
    for host in sorted(inventory.hosts.values(), key=lambda h: h.name):
        if (host.environment or "") not in allowed:  # said of every host: it is the rule
            env = host.environment or "none"
            excluded[host.name] = f"environment {env} is not in chaos.environments"
        elif not selector.matches(host):
            continue
        elif host.name in taken:
            excluded[host.name] = "has an open incident or another run's fault"
        elif min_budget_percent > 0 and (
            why := _short_budget(host, budgets or {}, min_budget_percent)
        ):
            excluded[host.name] = why
        else:
            candidates.append(host)
    names = tuple(h.name for h in candidates)
    if forced is not None:
        if forced not in inventory.hosts:
            raise NotFound(f"no host {forced!r} in the inventory")
        if forced in excluded:
            raise StateError(f"{forced} may not be a chaos target: {excluded[forced]}")
        if forced not in names:
            raise StateError(f"{forced} does not match the experiment's target selector")
        return Choice((inventory.hosts[forced],), names, excluded)
    if len(candidates) < selector.count:
        why = "; ".join(f"{h}: {r}" for h, r in excluded.items()) or "no host matches the selector"
        raise StateError(f"no host may be a chaos target now ({why})")
    drawn = (rng or random.SystemRandom()).sample(candidates, selector.count)
    return Choice(tuple(sorted(drawn, key=lambda h: h.name)), names, excluded)
