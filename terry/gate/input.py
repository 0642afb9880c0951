"""The gate step: build the policy input for a proposal and ask the policy engine.

The input is documented in docs/policy.md; policies may rely on every key below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from terry.gate.engine import Decision, PolicyEngine, PolicySet
from terry.inventory.hosts import Host, most_sensitive
from terry.store.runs import RemedyRecord
from terry.tenants.model import Tenants

__all__ = ["GateInput", "decide"]

# The most sensitive environment wins when a proposal spans several.
# A proposal that changes nothing billed (terry.cost.change).
_NO_COST = {"monthly_change": 0.0, "currency": None, "hosts": {}, "error": None}
# A remedy without variants runs its own parameters (terry.remedies.variants).
_NO_VARIANT = {
    "name": "default",
    "default": "default",
    "is_default": True,
    "offered": [],
    "params": {},
}


@dataclass(frozen=True)
class GateInput:
    proposal_id: int
    remedy: str
    risk: str
    hosts: tuple[Host, ...]
    modules: tuple[str, ...]
    recurrence: int
    record: RemedyRecord  # the remedy's history, overall and per environment
    check: dict[str, Any]
    ai_authored: bool = False
    # The tenants on main (policies/tenants.yml); None when the repository defines none.
    tenancy: Tenants | None = None
    tenancy_error: str | None = None  # why policies/tenants.yml could not be read
    # The rollout plan (terry.proposals.waves: index, size, hosts, environments, canary)
    # and the proposal's confidence 0-100 (terry.proposals.confidence).
    waves: tuple[dict[str, Any], ...] = ()
    confidence: int | None = None
    # What the confidence is made of (stored with the proposal; not part of the policy input).
    confidence_parts: dict[str, int] | None = None
    # What raised the incident: alert (a fix), drift, forecast, anomaly, inventory.
    source: str = "alert"
    # The error budgets of the services the hosts serve (terry.slo.services.gate_view).
    slo: dict[str, Any] | None = None
    # The monthly cost change of the proposal (terry.cost.change.gate_view, docs/cost.md).
    cost: dict[str, Any] | None = None
    # The remedy variant it runs (terry.remedies.variants.gate_view, docs/remedies.md).
    variant: dict[str, Any] | None = None

    @property
    def tenants(self) -> tuple[str, ...]:
        """Every tenant a host of the proposal is in (terry.tenants.model: placement)."""
        if self.tenancy is None:
            return tuple(sorted({h.tenant for h in self.hosts if h.tenant}))
        tenancy = self.tenancy
        return tuple(sorted({t for h in self.hosts for t in tenancy.tenants_of(h)}))

    def _host_view(self, host: Host) -> dict[str, Any]:
        view = host.policy_view()
        if self.tenancy is not None:
            view["tenant"] = self.tenancy.tenant_of(host)
        return view

    @property
    def environment(self) -> str:
        return most_sensitive(h.environment for h in self.hosts)

    def as_input(self) -> dict[str, Any]:
        labels: dict[str, str] = {}
        for host in self.hosts:
            labels.update(host.labels)
        return {
            "proposal_id": self.proposal_id,
            "remedy": self.remedy,
            "risk": self.risk,
            "environment": self.environment,
            "tenants": list(self.tenants),
            "tenant_settings": {
                name: self.tenancy.settings(name) for name in self.tenants if self.tenancy
            },
            "tenants_error": self.tenancy_error,
            "labels": labels,
            "hosts": [self._host_view(h) for h in self.hosts],
            "host_count": len(self.hosts),
            "modules": list(self.modules),
            "recurrence": self.recurrence,
            "history": {
                **self.record.overall.as_input(),
                "in_environment": self.record.environment(self.environment).as_input(),
            },
            "check": self.check,
            "ai_authored": self.ai_authored,
            "waves": list(self.waves),
            "confidence": self.confidence,
            "source": self.source,
            "slo": self.slo if self.slo is not None else {"services": {}, "error": None},
            "cost": self.cost if self.cost is not None else dict(_NO_COST),
            "variant": self.variant if self.variant is not None else dict(_NO_VARIANT),
        }


def decide(engine: PolicyEngine, policies: PolicySet, gate_input: GateInput) -> Decision:
    return engine.decide(policies, gate_input.as_input())
