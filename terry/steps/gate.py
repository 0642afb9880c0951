"""Gate: the proposal's policy input (docs/policy.md), judged by Rego on main's policies.
The verdict is attached to the proposal commit as a git note and handed to review: deny
ends it, review waits for a person, merge merges. A policy error means review, never merge
(the engine fails closed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from terry.context import Context
from terry.cost.change import gate_view as cost_gate_view
from terry.errors import MergeConflict
from terry.gate.engine import Decision, PolicyEngine, Verdict
from terry.gate.input import GateInput, decide
from terry.gitops.messages import decision_trailers
from terry.inventory.hosts import Host, Inventory, load_inventory
from terry.proposals.confidence import score
from terry.proposals.hosts import set_waves
from terry.proposals.plan import Plan
from terry.proposals.state import ProposalState, get, transition
from terry.proposals.waves import one_wave, plan_waves
from terry.remedies.variants import gate_view as variant_gate_view
from terry.remedies.variants import same_variant
from terry.review.base import Review
from terry.slo.services import (
    BUDGET_ENTITY,
    EXHAUSTED,
    RECOVERED,
    exhausted_services,
    exhausted_told,
    priority_note,
    recovered_services,
    recovered_told,
    still_told,
)
from terry.slo.services import gate_view as slo_gate_view
from terry.steps.record import Record
from terry.store.audit import audit, newest_audits
from terry.store.models import IncidentRow
from terry.store.runs import remedy_record
from terry.tenants.loader import tenants_for_gate

__all__ = ["Gate"]

_CHECK_KEYS = ("ok", "changed", "failed_hosts", "unreachable_hosts", "estimates")


@dataclass(frozen=True)
class Gate:
    ctx: Context
    engine: PolicyEngine
    review: Review

    def input(self, proposal_id: int, sha: str) -> GateInput:
        """What the policies are asked about this proposal, against main at ``sha``."""
        store = self.ctx.store
        with store.session() as session:
            row = get(session, proposal_id)
            incident = session.get(IncidentRow, row.incident_id)
            assert incident is not None
            recurrence = incident.recurrence
            source = incident.source
            hosts, remedy, risk = tuple(row.hosts), row.remedy, row.risk
            commit = row.commit_sha
            modules, check = tuple(row.modules), dict(row.check_summary)
            ai_authored, ai_confidence = row.ai_authored, row.confidence
            plan = Plan.from_json(row.plan, applier=row.applier)
            params = dict(row.params or {})
        _sha, _catalogue, inventory = self.ctx.main.view(sha)
        on_main = inventory.hosts  # before an edit: what the cost change is measured from
        if commit and plan.edits:  # the hosts as the proposal leaves them
            edited = load_inventory(self.ctx.repo.tree(commit), self.ctx.config.inventory)
            inventory = Inventory({**inventory.hosts, **edited.hosts})
        tenancy, tenancy_error = tenants_for_gate(  # main's tenants (docs/tenants.md)
            self.ctx.repo.tree(sha), self.ctx.config.policy.path
        )
        known = tuple(inventory.hosts[h] for h in hosts if h in inventory.hosts)
        # one that runs a variant is judged on that variant's runs
        record = remedy_record(store, remedy, exclude=proposal_id, runs=same_variant(params))
        canary = self.ctx.config.canary  # the rollout plan and confidence (issue 18)
        named = [(h.name, h.environment) for h in known]
        waves = (
            plan_waves(named, min_hosts=canary.min_hosts, percent=canary.percent)
            if plan.in_waves(len(known))
            # one apply (a drift fix, an inventory edit: checks that judge the whole) is
            # one wave, whatever its size and its environments
            else one_wave(named)
        )
        confidence = score(
            runs=record.overall.runs,
            success_rate=record.overall.success_rate,
            check=check,
            ai_authored=ai_authored,
            ai_confidence=ai_confidence,
        )
        prometheus = self.ctx.config.prometheus
        return GateInput(
            proposal_id=proposal_id,
            remedy=remedy,
            risk=risk,
            hosts=known,
            modules=modules,
            recurrence=recurrence,
            record=record,
            check={k: check.get(k) for k in _CHECK_KEYS},
            ai_authored=ai_authored,
            tenancy=tenancy,
            tenancy_error=tenancy_error,
            waves=tuple(w.as_input() for w in waves),
            confidence=confidence.value,
            confidence_parts=confidence.parts,
            source=source,
            # main's SLOs (slos/, docs/slo.md): the budgets of the services the hosts serve,
            # before an edit and after it (an edit moving a host out of a service that is out
            # of budget is a change to that service too)
            slo=slo_gate_view(
                self.ctx.repo.tree(sha),
                (*known, *(on_main[h] for h in hosts if h in on_main)),
                prometheus,
                timeout=prometheus.timeout,
            ),
            # the monthly cost change, priced by main's costs/prices.yml (docs/cost.md)
            cost=cost_gate_view(
                self.ctx.repo.tree(sha),
                remedy=remedy,
                params=params,
                before=on_main,
                after=known,
                prices_path=self.ctx.config.cost.prices,
                pricing=self.ctx.config.cost.pricing,
                roles_path=self.ctx.config.roles_path,
                estimates=check.get("estimates"),  # what the dry run grows (EBS variant)
                manifests=self._manifests(known, sha, commit),  # requests/replicas edits
            ),
            # the remedy variant it runs (terry.remedies.variants, docs/remedies.md)
            variant=variant_gate_view(_catalogue.get(remedy), params),
        )

    def _manifests(
        self, hosts: tuple[Host, ...], sha: str, commit: str | None
    ) -> list[tuple[Host, str | None, str | None]]:
        """Each Argo CD target's manifest on main and on the proposal commit, when they
        differ: what the cost of a requests or replicas change is read from."""
        out = []
        for host in hosts:
            path = host.variables.get("terry_manifest")
            if not commit or host.applier != "argocd" or not isinstance(path, str):
                continue
            if path.startswith("/") or ".." in PurePosixPath(path).parts:
                continue  # diagnosis refuses such a path: nothing was edited there
            before, after = (
                self.ctx.repo.read_text(sha, path),
                self.ctx.repo.read_text(commit, path),
            )
            if before != after:
                out.append((host, before, after))
        return out

    def _budgets(self, proposal_id: int, gate_input: GateInput, decision: Decision) -> Decision:
        """What error budgets add to a decision (docs/slo.md): a fix protecting a burning or
        low budget is recorded as a priority among the reasons, and a budget found exhausted
        is told to the owners (an audit row the notifier reads as ``budget-exhausted``) once
        until a gate finds it recovered (an audit row of its own, told to no one)."""
        exhausted = exhausted_services(gate_input.slo)
        recovered = recovered_services(gate_input.slo)
        if exhausted or recovered:
            with self.ctx.store.session() as session:
                incident_id = get(session, proposal_id).incident_id
                told = still_told(newest_audits(session, entity=BUDGET_ENTITY))
                new = [s for s in exhausted if s not in told]
                back = [s for s in recovered if s in told]
                for services, state, reason in (
                    (new, EXHAUSTED, exhausted_told),
                    (back, RECOVERED, recovered_told),
                ):
                    if services:
                        audit(
                            session,
                            entity=BUDGET_ENTITY,
                            entity_id=incident_id,
                            actor="terry",
                            from_state=None,
                            to_state=state,
                            reason=reason(
                                services, proposal_id, gate_input.source, decision.verdict.value
                            ),
                        )
        note = priority_note(gate_input.slo, gate_input.source)
        if note is None or decision.verdict is Verdict.DENY:
            return decision
        return Decision(decision.verdict, (*decision.reasons, note), decision.policy_commit)

    def __call__(self, proposal_id: int) -> Decision:
        store, repo, reporter = self.ctx.store, self.ctx.repo, self.ctx.reporter
        sha = repo.head()
        gate_input = self.input(proposal_id, sha)
        decision = decide(self.engine, self.ctx.main.policies(sha), gate_input)
        decision = self._budgets(proposal_id, gate_input, decision)
        recorded = {
            "decision": decision.verdict.value,
            "reasons": list(decision.reasons),
            "policy_commit": decision.policy_commit,
            "environment": gate_input.environment,
        }
        why = "; ".join(decision.reasons)
        reporter.step(proposal_id, f"gate: {decision.verdict.value} — {why}")
        with store.session() as session:  # the plan and confidence it was judged with
            row = get(session, proposal_id)
            commit, row.confidence_score = row.commit_sha, gate_input.confidence
            row.confidence_parts = gate_input.confidence_parts
        set_waves(store, proposal_id, {h: w["index"] for w in gate_input.waves for h in w["hosts"]})
        if commit:
            trailers = decision_trailers(
                decision.verdict.value, decision.reasons, decision.policy_commit
            )
            repo.add_note(commit, "\n".join(trailers) + "\n")
        if decision.verdict is Verdict.DENY:
            transition(
                store,
                proposal_id,
                ProposalState.DENIED,
                actor="policy",
                reason=why,
                changes=recorded,
            )
            # The incident is kept for a person: why it was denied, and what to do next.
            Record(self.ctx).denied(proposal_id, decision.reasons)
        elif decision.verdict is Verdict.REVIEW:
            self.review.request(proposal_id, reason=why, changes=recorded)
        else:
            with store.session() as session:
                row = get(session, proposal_id)
                row.decision, row.reasons = recorded["decision"], recorded["reasons"]
                row.policy_commit = recorded["policy_commit"]
                row.environment = gate_input.environment
            try:
                self.review.merge(
                    proposal_id, actor="policy", reason=why, from_state=ProposalState.CHECKED
                )
            except MergeConflict as conflict:
                Record(self.ctx).not_merged(
                    proposal_id, conflict, actor="policy", from_state=ProposalState.CHECKED
                )
        return decision
