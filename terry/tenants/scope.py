"""What a principal may read: the one tenant filter every reader of incidents and
proposals uses (the JSON API's lists, gets, explain, jobs and writes; the console's pages,
forms and reports, ``terry.reports.scoped``). Notifications place hosts the same way
(``terry.notify.tenancy``).

A principal of every tenant (``"*"``) sees everything. A principal limited to one tenant
sees the hosts of that tenant (``Tenants.tenants_of``, as the gate places them): an
incident by its host, a proposal by its hosts (any of them in the tenant). A row it may not
see is answered exactly as a missing one, so guessing ids tells nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from terry.access import ANY_TENANT, Principal
from terry.config import Config
from terry.errors import TerryError
from terry.inventory.hosts import Inventory
from terry.tenants.model import Tenants

__all__ = ["EVERYTHING", "NOTHING", "Scope", "Scopes", "visible_hosts"]

log = logging.getLogger("terry.tenants.scope")


@dataclass(frozen=True)
class Scope:
    """The hosts a principal reads; ``hosts`` None: every host (and rows with none)."""

    hosts: frozenset[str] | None

    @property
    def everything(self) -> bool:
        return self.hosts is None

    def sees_host(self, host: str | None) -> bool:
        if self.hosts is None:
            return True
        return host is not None and host in self.hosts

    def sees_hosts(self, hosts: Iterable[str]) -> bool:
        return self.hosts is None or any(h in self.hosts for h in hosts)

    def sees(self, row: Any) -> bool:
        """Whether a read row is in scope: an incident (``host``) or a proposal (``hosts``),
        as a summary or a detail (``.incident``, ``.summary``)."""
        if self.hosts is None:
            return True
        inner = getattr(row, "incident", None) or getattr(row, "summary", None) or row
        hosts = getattr(inner, "hosts", None)
        if hosts is not None:
            return self.sees_hosts(hosts)
        return self.sees_host(getattr(inner, "host", None))


EVERYTHING = Scope(None)
NOTHING = Scope(frozenset())


def visible_hosts(principal: Principal, tenancy: Tenants | None, inventory: Inventory) -> Scope:
    """The hosts ``principal`` may read: all for a ``"*"`` principal; for one limited to a
    tenant, the inventory's hosts (by name and address) in that tenant; none when the
    repository defines no tenants (fail closed)."""
    if principal.tenant == ANY_TENANT:
        return EVERYTHING
    if tenancy is None:
        return NOTHING
    names: set[str] = set()
    for host in inventory.hosts.values():
        if principal.tenant in tenancy.tenants_of(host):
            names.add(host.name)
            if host.address:
                names.add(host.address)
    return Scope(frozenset(names))


class Scopes:
    """``visible_hosts`` for ``terry serve``: the tenants and the inventory of main's head,
    read once per commit. A repository that cannot be read scopes a tenant to nothing."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._seen: tuple[str, Tenants | None, Inventory] | None = None

    def of(self, principal: Principal) -> Scope:
        if principal.tenant == ANY_TENANT:
            return EVERYTHING
        try:
            tenancy, inventory = self._read()
        except TerryError as exc:
            log.error("tenants cannot be read, %s sees nothing: %s", principal.actor, exc)
            return NOTHING
        return visible_hosts(principal, tenancy, inventory)

    def _read(self) -> tuple[Tenants | None, Inventory]:
        from terry.gitops.repo import Repo
        from terry.inventory.hosts import load_inventory
        from terry.tenants.loader import load_tenants

        with self._lock:
            repo = Repo(self._config.repo, main_branch=self._config.main_branch)
            head = repo.head()
            if self._seen is None or self._seen[0] != head:
                tree = repo.tree(head)
                tenancy = load_tenants(tree, self._config.policy.path)
                self._seen = (head, tenancy, load_inventory(tree, self._config.inventory))
            return self._seen[1], self._seen[2]
