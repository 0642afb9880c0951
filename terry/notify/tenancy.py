"""Which tenants an event is about, and which routes are a tenant's: so that a route bound
to team-data never carries a word about team-platform's hosts (issue 17).

A route is bound to the tenants it names (``tenants:`` in ``terry.yml``) and to every tenant
whose ``routes:`` in ``policies/tenants.yml`` names it. A bound route gets an event only when
one of the event's hosts is in one of its tenants, placed as the gate places hosts
(``Tenants.tenants_of``: the inventory's ``terry_tenant``, else the selectors) from main's
inventory. Never by the alert's own ``tenant`` label: that is text from another system, and
a label saying ``team-data`` on a team-platform host must not open team-data's channel.
Routes bound to no tenant get every event, as before.

Grouped messages ("and N more") and a Slack app route's threads are made from one route's
own outbox rows, so what is decided here per (route, event) holds for them too.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from terry.config import Config, RouteConfig
from terry.inventory.hosts import Inventory
from terry.notify.events import Event
from terry.tenants.model import Tenants

__all__ = ["UNBOUND", "Tenancy", "TenancyReader", "tenancy_of"]

log = logging.getLogger("terry.notify")


@dataclass(frozen=True)
class Tenancy:
    """Each host's tenants (by inventory name and by address), and each tenant's routes."""

    hosts: Mapping[str, tuple[str, ...]]
    routes: Mapping[str, tuple[str, ...]]  # tenant -> names of routes it binds

    def tenants_of(self, hosts: Iterable[str]) -> tuple[str, ...]:
        """The tenants of ``hosts`` (names, addresses, or ``address:port`` as alerts'
        ``instance`` labels have them); a host the inventory does not know is in none."""
        found: set[str] = set()
        for host in hosts:
            known = self.hosts.get(host)
            if known is None and ":" in host:
                known = self.hosts.get(host.rsplit(":", 1)[0])
            found.update(known or ())
        return tuple(sorted(found))

    def bound(self, route: RouteConfig) -> frozenset[str]:
        """The tenants ``route`` carries the notifications of (none: it is no tenant's)."""
        return frozenset(route.tenants) | {
            t for t, names in self.routes.items() if route.name in names
        }

    def told(self, event: Event, bound: Collection[str]) -> Event:
        """``event`` as a route bound to ``bound`` tells it: of a proposal touching hosts of
        several tenants, only the hosts of those tenants are named."""
        if not bound or not event.hosts:
            return event
        mine = tuple(h for h in event.hosts if not set(bound).isdisjoint(self.tenants_of([h])))
        if mine == event.hosts:
            return event
        return dataclasses.replace(event, host=", ".join(mine[:5]), hosts=mine)


UNBOUND = Tenancy(hosts={}, routes={})


def tenancy_of(tenants: Tenants | None, inventory: Inventory) -> Tenancy:
    """The tenancy of an inventory and its tenants file (None: no file; a host's
    ``terry_tenant`` still places it)."""
    hosts: dict[str, tuple[str, ...]] = {}
    for host in inventory.hosts.values():
        if tenants is not None:
            placed = tenants.tenants_of(host)
        else:
            placed = (host.tenant,) if host.tenant else ()
        for key in (host.name, host.address):
            if key:
                hosts[key] = tuple(sorted({*hosts.get(key, ()), *placed}))
    routes = {t.name: t.routes for t in tenants.tenants.values()} if tenants is not None else {}
    return Tenancy(hosts=hosts, routes=routes)


class TenancyReader:
    """``tenancy_of`` main's head, read again only when main moves. TerryError when the
    repository cannot be read: the caller then owes nothing new (fail closed) and tries
    again next round."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._seen: tuple[str, Tenancy] | None = None

    def read(self) -> Tenancy:
        from terry.gitops.repo import Repo
        from terry.inventory.hosts import load_inventory
        from terry.tenants.loader import load_tenants

        config = self._config
        with self._lock:
            repo = Repo(config.repo, main_branch=config.main_branch)
            head = repo.head()
            if self._seen is None or self._seen[0] != head:
                tree = repo.tree(head)
                tenants = load_tenants(tree, config.policy.path)
                self._seen = (head, tenancy_of(tenants, load_inventory(tree, config.inventory)))
            return self._seen[1]
