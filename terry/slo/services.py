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

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from terry.config import PrometheusConfig
from terry.errors import ConfigError
from terry.inventory.hosts import Host, Inventory
from terry.slo.budget import LOW_PERCENT, WINDOWS, BudgetState, percent_text, worst
from terry.slo.fields import NAME
from terry.slo.spec import SLO, load_slos
from terry.slo.status import SLOStatus, read_status

__all__ = [
    "BUDGET_ENTITY",
    "EXHAUSTED",
    "FIX_SOURCES",
    "RECOVERED",
    "SERVICE_LABEL",
    "ServiceBudget",
    "exhausted_services",
    "exhausted_told",
    "gate_view",
    "hosts_of",
    "label_warnings",
    "priority_note",
    "protects",
    "recovered_services",
    "recovered_told",
    "service_budgets",
    "services_of",
    "still_told",
    "told_services",
    "urgency",
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


def label_warnings(slos: Iterable[SLO], inventory: Inventory) -> list[str]:
    """What in the inventory keeps a budget from reaching the gate: a ``service`` label that
    can name no service (a template: Terry reads labels as written, it renders nothing), and
    an SLO whose service no host serves (often a host's own ``terry_labels``, which replaces
    its group's whole mapping, as Ansible merges variables)."""
    said = []
    for host in sorted(inventory.hosts.values(), key=lambda h: h.name):
        for name in sorted(_named(host)):
            if not re.match(NAME, name):
                said.append(
                    f"host {host.name}: its label {SERVICE_LABEL} names {name!r}, which cannot "
                    "be a service's name (a template is not rendered); it serves no SLO"
                )
    for slo in slos:
        if not hosts_of(slo.service, inventory):
            said.append(
                f"{slo.key} ({slo.source}): no host in the inventory serves {slo.service} "
                f"(terry_labels: {{{SERVICE_LABEL}: {slo.service}}}; a host's own terry_labels "
                "replaces its group's): the gate reads this budget for no proposal"
            )
    return said


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
        """Why a figure is unknown, per SLO, each reason once (the queries are in ``terry slo
        status``): a line a gate reason carries whole."""
        errors = [f"{s.slo.name}: {s.said}" for s in self.slos if s.said]
        return "; ".join(errors) or None

    def as_input(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        left = self.remaining_percent
        return {
            "state": self.state.value,
            # exact, as the state was judged: rounded, 9.9996 would read 10 (not low) in a
            # policy while the state says low
            "budget_remaining_percent": left,
            # the same as people read it, never rounded across 0 or the low line
            "budget_remaining_text": None if left is None else f"{percent_text(left)}%",
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
    ``{"services": {name: budget}, "error": null, "low_percent": 10}``. Specs main cannot
    parse are an ``error`` (the shipped policy then asks for review when a host names a
    service). ``low_percent`` is the line under which a budget's state is ``low``."""
    served = services_of(hosts)
    view: dict[str, Any] = {"services": {}, "error": None, "low_percent": LOW_PERCENT}
    if not served:
        return view
    try:
        slos = [s for s in load_slos(tree) if s.service in served]
    except ConfigError as exc:
        return {**view, "error": str(exc)[:500]}
    statuses = read_status(slos, prom, timeout=min(timeout, GATE_TIMEOUT))
    budgets = service_budgets(statuses)
    return {**view, "services": {n: b.as_input() for n, b in budgets.items()}}


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
    mine = _mine(view, hosts)
    return priority_note({"services": mine}, source) if mine else None


def urgency(view: dict[str, Any] | None, hosts: Iterable[Host]) -> int:
    """How badly the budgets a fix over ``hosts`` protects need it, most first: 4 exhausted
    and burning, 3 exhausted, 2 burning, 1 low, 0 none of these (the worker carries the
    fixes that protect a budget in this order)."""
    most = 0
    for budget in _mine(view, hosts).values():
        state, burning = budget.get("state"), bool(budget.get("burning"))
        if state == BudgetState.EXHAUSTED.value:
            most = max(most, 4 if burning else 3)
        elif burning:
            most = max(most, 2)
        elif state == BudgetState.LOW.value:
            most = max(most, 1)
    return most


def _mine(view: dict[str, Any] | None, hosts: Iterable[Host]) -> dict[str, dict[str, Any]]:
    served = services_of(hosts)
    return {n: b for n, b in _services(view).items() if n in served}


# The audit rows of a budget's episodes (entity BUDGET_ENTITY): found exhausted (told to
# the owners), then found recovered (told to no one; the next exhaustion is told again).
EXHAUSTED = "exhausted"
RECOVERED = "recovered"
_SAID = {EXHAUSTED: "error budget exhausted: ", RECOVERED: "error budget recovered: "}


def _told(state: str, services: list[str], proposal_id: int, source: str, verdict: str) -> str:
    return (
        f"{_SAID[state]}{', '.join(services)}; proposal {proposal_id} ({source}) was judged "
        f"{verdict}"
    )


def exhausted_told(services: list[str], proposal_id: int, source: str, verdict: str) -> str:
    """The audit reason of an exhausted budget a proposal met: what the owners are told."""
    return _told(EXHAUSTED, services, proposal_id, source, verdict)


def recovered_told(services: list[str], proposal_id: int, source: str, verdict: str) -> str:
    """The audit reason of budgets told exhausted that a later proposal found recovered."""
    return _told(RECOVERED, services, proposal_id, source, verdict)


def told_services(reason: str) -> tuple[str, ...]:
    """The services an ``exhausted_told`` or ``recovered_told`` reason names (their names
    hold no ``,`` or ``;``: ``fields.NAME``); none for any other text."""
    for prefix in _SAID.values():
        if reason.startswith(prefix):
            named = reason.removeprefix(prefix).partition(";")[0]
            return tuple(n.strip() for n in named.split(",") if n.strip())
    return ()


def still_told(rows: Iterable[tuple[str, str]]) -> set[str]:
    """The services whose exhaustion the owners were told of and no gate has since found
    recovered, from the budget audit rows ``(to_state, reason)``, newest first."""
    decided: dict[str, bool] = {}
    for state, reason in rows:
        for name in told_services(reason):
            decided.setdefault(name, state == EXHAUSTED)
    return {name for name, told in decided.items() if told}


def exhausted_services(view: dict[str, Any] | None) -> list[str]:
    return sorted(
        name
        for name, budget in _services(view).items()
        if budget.get("state") == BudgetState.EXHAUSTED.value
    )


def recovered_services(view: dict[str, Any] | None) -> list[str]:
    """Services whose budget is known and left (ok or low): no longer exhausted."""
    back = (BudgetState.OK.value, BudgetState.LOW.value)
    return sorted(name for name, budget in _services(view).items() if budget.get("state") in back)
