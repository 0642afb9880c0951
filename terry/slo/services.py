"""Services and the hosts that serve them, and the budgets the gate reads.

A host serves the services its inventory label ``service`` names (``terry_labels: {service:
checkout}``; several as ``checkout,search``). The gate's ``slo`` input holds, for every
service a proposal's hosts serve that has an SLO, the worst of its SLOs: state (``ok``,
``low``, ``exhausted``, ``unknown``), budget left, the highest burn rate per window and the
pairs burning (docs/slo.md, docs/policy.md).

What the gate does with them is policy (``policies/slo.rego``); two things are facts Terry
records itself: a fix that protects a burning or low budget is marked as a priority in the
decision's reasons (and the sequencer carries it before the incidents that came with it,
``protects``), and an exhausted budget is told to the owners (an audit row the
notifier reads as ``budget-exhausted``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from terry.config import PrometheusConfig
from terry.errors import ConfigError
from terry.inventory.hosts import Host, Inventory
from terry.slo.budget import WINDOWS, BudgetState, worst
from terry.slo.spec import load_slos
from terry.slo.status import SLOStatus, read_status

__all__ = [
    "BUDGET_ENTITY",
    "FIX_SOURCES",
    "SERVICE_LABEL",
    "ServiceBudget",
    "exhausted_services",
    "exhausted_told",
    "gate_view",
    "hosts_of",
    "priority_note",
    "protects",
    "service_budgets",
    "services_of",
    "told_services",
]

SERVICE_LABEL = "service"
# The audit entity of an exhausted error budget a proposal met (entity_id: its incident);
# the notifier reads it as the event ``budget-exhausted`` (terry.notify.events).
BUDGET_ENTITY = "slo_budget"
# Incidents of these sources are fixes of a live problem (an alert fired); drift
# reconciliations, forecasts, anomalies and inventory edits are changes that can wait.
FIX_SOURCES = frozenset({"alert"})
# The gate asks Prometheus with at most this timeout per query (prometheus.timeout if lower).
GATE_TIMEOUT = 2.0


def _named(host: Host) -> set[str]:
    raw = host.labels.get(SERVICE_LABEL, "")
    return {part.strip() for part in raw.split(",") if part.strip()}


def services_of(hosts: Iterable[Host]) -> set[str]:
    return {name for host in hosts for name in _named(host)}


def hosts_of(service: str, inventory: Inventory) -> list[str]:
    return sorted(h.name for h in inventory.hosts.values() if service in _named(h))


@dataclass(frozen=True)
class ServiceBudget:
    """A service's SLOs together: the worst state, the least budget left, the fastest burn."""

    service: str
    state: BudgetState
    remaining_percent: float | None  # None when one of its SLOs is unknown
    burn_rates: dict[str, float | None]
    burning: tuple[str, ...]
    slos: tuple[SLOStatus, ...]

    @property
    def error(self) -> str | None:
        errors = [f"{s.slo.name}: {s.error}" for s in self.slos if s.error]
        return "; ".join(errors) or None

    def as_input(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            "state": self.state.value,
            "budget_remaining_percent": rounded(self.remaining_percent),
            "burn_rates": {w: rounded(r) for w, r in self.burn_rates.items()},
            "burning": list(self.burning),
            "slos": [s.slo.name for s in self.slos],
            "error": self.error,
        }


def service_budgets(statuses: Sequence[SLOStatus]) -> dict[str, ServiceBudget]:
    by_service: dict[str, list[SLOStatus]] = {}
    for status in statuses:
        by_service.setdefault(status.slo.service, []).append(status)
    out = {}
    for service, mine in sorted(by_service.items()):
        left = [s.budget.remaining_percent for s in mine]
        rates: dict[str, float | None] = {}
        for window in WINDOWS:
            known = [r for s in mine if (r := s.budget.burn_rates.get(window)) is not None]
            rates[window] = max(known) if len(known) == len(mine) else None
        out[service] = ServiceBudget(
            service=service,
            state=worst([s.budget.state for s in mine]),
            remaining_percent=None if None in left else min(p for p in left if p is not None),
            burn_rates=rates,
            burning=tuple(sorted({p for s in mine for p in s.budget.burning})),
            slos=tuple(mine),
        )
    return out


def gate_view(
    tree: Path,
    hosts: Sequence[Host],
    prom: str | PrometheusConfig | None,
    *,
    timeout: float = GATE_TIMEOUT,
) -> dict[str, Any]:
    """The gate's ``slo`` input for a proposal over ``hosts``, with main's specs at ``tree``:
    ``{"services": {name: budget}, "error": null}``. Specs main cannot parse are an
    ``error`` (the shipped policy then asks for review when a host names a service)."""
    served = services_of(hosts)
    if not served:
        return {"services": {}, "error": None}
    try:
        slos = [s for s in load_slos(tree) if s.service in served]
    except ConfigError as exc:
        return {"services": {}, "error": str(exc)[:500]}
    statuses = read_status(slos, prom, timeout=min(timeout, GATE_TIMEOUT))
    budgets = service_budgets(statuses)
    return {"services": {n: b.as_input() for n, b in budgets.items()}, "error": None}


def _services(view: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    services = (view or {}).get("services") or {}
    return services if isinstance(services, dict) else {}


def priority_note(view: dict[str, Any] | None, source: str) -> str | None:
    """A reason to record when a fix protects a budget that burns or runs low: such fixes go
    first (a person reviewing sees why)."""
    if source not in FIX_SOURCES:
        return None
    protected = []
    for name, budget in sorted(_services(view).items()):
        burning = budget.get("burning") or []
        if burning:
            protected.append(f"{name} (burning over {', '.join(burning)})")
        elif budget.get("state") in (BudgetState.LOW.value, BudgetState.EXHAUSTED.value):
            protected.append(f"{name} ({budget['state']} error budget)")
    if not protected:
        return None
    return f"priority: this fix protects the error budget of {', '.join(protected)}"


def protects(view: dict[str, Any] | None, hosts: Iterable[Host], source: str) -> str | None:
    """``priority_note`` for a fix over ``hosts`` alone, from a view read for more hosts
    (the worker reads the budgets once for every incident it is about to carry)."""
    served = services_of(hosts)
    mine = {n: b for n, b in _services(view).items() if n in served}
    return priority_note({"services": mine}, source) if mine else None


_EXHAUSTED = "error budget exhausted: "


def exhausted_told(services: list[str], proposal_id: int, source: str, verdict: str) -> str:
    """The audit reason of an exhausted budget a proposal met: what the owners are told."""
    return (
        f"{_EXHAUSTED}{', '.join(services)}; proposal {proposal_id} ({source}) was judged {verdict}"
    )


def told_services(reason: str) -> tuple[str, ...]:
    """The services an ``exhausted_told`` reason names (their names hold no ``,`` or ``;``:
    ``fields.NAME``); none for any other text."""
    if not reason.startswith(_EXHAUSTED):
        return ()
    named = reason.removeprefix(_EXHAUSTED).partition(";")[0]
    return tuple(n.strip() for n in named.split(",") if n.strip())


def exhausted_services(view: dict[str, Any] | None) -> list[str]:
    return sorted(
        name
        for name, budget in _services(view).items()
        if budget.get("state") == BudgetState.EXHAUSTED.value
    )
