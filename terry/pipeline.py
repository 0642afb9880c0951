"""The one path every problem takes, wired together.

signal → incident → diagnosis → proposal → gate → review → apply → verify → record.
Each step's logic lives in the wing named after it; this module proposes, dry-runs and
gates, and sequences the rest, moving the proposal through its state machine.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from terry.ai.answer import AIAnswer
from terry.ai.consult import consult
from terry.ai.remedy import ai_diagnosis
from terry.appliers.ansible_runner import RunResult
from terry.apply import ApplySteps
from terry.diagnosis.rules import Diagnosis, NoFix, diagnose
from terry.errors import RunnerError, StateError, TerryError
from terry.gate.engine import Decision, Verdict
from terry.gate.input import GateInput, decide
from terry.incidents import lifecycle as incidents
from terry.incidents.lifecycle import Effect
from terry.inventory.hosts import Inventory, load_inventory
from terry.inventory.proposal import GIT, INVENTORY_EDIT
from terry.proposals.state import ProposalState, get, transition
from terry.remedies.manifests import ManifestError, edit_manifest
from terry.remedies.render import Rendered, branch_name, render
from terry.review.forge import ForgeReviewSteps
from terry.sources.alertmanager import Payload
from terry.steps import Reporter, SilentReporter, decision_trailers, one_line
from terry.store.audit import audit
from terry.store.models import IncidentRow, ProposalRow, utcnow
from terry.store.runs import remedy_record
from terry.verify.judge import Outcome

__all__ = ["Outcome", "Pipeline", "ProposalOutcome", "Reporter", "SilentReporter"]

S = ProposalState


@dataclass(frozen=True)
class ProposalOutcome:
    incident_id: int
    proposal_id: int | None
    state: str | None
    decision: str | None = None
    reasons: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class PipelineResult:
    ingest: incidents.IngestResult
    outcomes: tuple[ProposalOutcome, ...] = field(default_factory=tuple)


class Pipeline(ForgeReviewSteps, ApplySteps):
    """signal → incident → diagnosis → proposal → dry run → gate, then review and apply."""

    # -- signal → incident --------------------------------------------------------------
    def ingest(
        self, payload: Payload, *, remediate: bool = True, apply: bool = True
    ) -> PipelineResult:
        result = incidents.ingest(self.store, payload)
        for effect in result.effects:
            if effect.incident_id and effect.effect in (Effect.RESOLVED, Effect.JOINED):
                self.incident_changed(
                    effect.incident_id,
                    resolved=effect.effect is Effect.RESOLVED,
                    detail=f"{effect.alertname} {effect.status.value}",
                )
        if not remediate:
            return PipelineResult(result)
        outcomes = tuple(self.remediate(i, apply=apply) for i in result.opened)
        return PipelineResult(result, outcomes)

    # -- incident → diagnosis → proposal → gate → review (→ apply) ----------------------
    def remediate(self, incident_id: int, *, apply: bool = True) -> ProposalOutcome:
        """Diagnose an incident and carry its proposal as far as the gate allows.

        Claims the incident first, so two processes never diagnose it twice.
        """
        if not incidents.claim(self.store, incident_id, self.holder, lease=self.lease):
            return ProposalOutcome(incident_id, None, None, note="already handled elsewhere")
        with self.store.session() as session:
            incident = session.get(IncidentRow, incident_id)
            if incident is None:
                raise StateError(f"incident {incident_id} does not exist")
            alertname, labels, annotations = incident.title, incident.labels, incident.annotations
        sha, catalogue, inventory = self.main_view()
        found = diagnose(
            alertname=alertname,
            labels=labels,
            annotations=annotations,
            catalogue=catalogue,
            inventory=inventory,
            host_labels=self.config.host_labels,
        )
        manifest = None
        if isinstance(found, Diagnosis) and found.remedy.manifest is not None:
            try:
                manifest = self._edited_manifest(found, sha)
            except ManifestError as exc:
                found = NoFix(f"remedy {found.remedy.name}: {exc}", host=found.hosts[0].name)
        renderer: Callable[[int, int], Rendered | None] | None = None
        answer: AIAnswer | None = None
        if isinstance(found, NoFix) and found.unmatched and found.host in inventory.hosts:
            host = inventory.hosts[found.host]
            self.reporter.step(None, f"incident {incident_id}: {found.reason}; asking Claude")
            consulted = consult(
                self.config,
                self.store,
                incident_id=incident_id,
                alertname=alertname,
                labels=labels,
                annotations=annotations,
                host=host,
                inventory=inventory,
                catalogue=catalogue,
                rule_reason=found.reason,
            )
            if consulted is not None and consulted.answer is None:
                found = NoFix(consulted.reason, host=host.name)
            elif consulted is not None and consulted.answer is not None:
                answer = consulted.answer
                found, renderer = ai_diagnosis(answer, host, catalogue, alertname, incident_id)
        if isinstance(found, NoFix):
            incidents.mark_diagnosed(self.store, incident_id, host=found.host)
            incidents.set_attention(self.store, incident_id, found.reason)
            self.reporter.step(None, f"incident {incident_id}: kept for a human: {found.reason}")
            return ProposalOutcome(incident_id, None, None, note=found.reason)
        proposal_id = self.propose(
            incident_id, found, base=sha, manifest=manifest, renderer=renderer, ai=answer
        )
        incidents.mark_diagnosed(self.store, incident_id, host=found.hosts[0].name)
        self.advance(proposal_id, apply=apply)
        with self.store.session() as session:
            row = get(session, proposal_id)
            return ProposalOutcome(
                incident_id,
                proposal_id,
                row.state,
                row.decision,
                tuple(row.reasons),
                row.outcome or "",
            )

    def advance(self, proposal_id: int, *, apply: bool = True) -> None:
        """Carry a proposal from wherever it stopped as far as the gate allows.

        Used right after proposing and again after a restart. A proposal caught mid-apply is
        marked ``interrupted`` elsewhere (``terry.service.worker``), never re-applied here.
        """
        try:
            state = self.state(proposal_id)
            if state is S.PROPOSED:
                self.check(proposal_id)
                state = self.state(proposal_id)
            if state is S.CHECKED:
                self.gate(proposal_id)
                state = self.state(proposal_id)
            if state is S.APPROVED:
                self._merge(
                    proposal_id,
                    actor="terry",
                    reason="resumed after restart",
                    from_state=S.APPROVED,
                )
                state = self.state(proposal_id)
            if state is S.MERGED and apply:
                self.apply(proposal_id, actor="terry")
        except TerryError as exc:
            self.reporter.step(proposal_id, f"stopped: {exc}")

    def _edited_manifest(self, found: Diagnosis, sha: str) -> tuple[str, str]:
        """The manifest of the target (path, text on main with the remedy's edit)."""
        variables = found.hosts[0].variables
        path = str(variables["terry_manifest"])
        parts = PurePosixPath(path).parts
        if not parts or path.startswith("/") or ".." in parts or path.startswith(".terry"):
            raise ManifestError(f"terry_manifest {path[:120]!r} must be a path in the repository")
        text = self.repo.read_text(sha, path)
        if text is None:
            raise ManifestError(f"{path} is not on {self.config.main_branch}")
        name = variables.get("terry_k8s_name")
        assert found.remedy.manifest is not None
        edited = edit_manifest(
            text, found.remedy.manifest, found.params, name=name if isinstance(name, str) else None
        )
        if edited == text:
            raise ManifestError(f"{path} already says so: the edit changes nothing")
        return path, edited

    def propose(
        self,
        incident_id: int,
        found: Diagnosis,
        *,
        base: str,
        manifest: tuple[str, str] | None = None,
        renderer: Callable[[int, int], Rendered | None] | None = None,
        edits: dict[str, str | None] | None = None,
        applier: str | None = None,
        ai: AIAnswer | None = None,
    ) -> int:
        """Record the proposal and commit it on its branch: a playbook and its parameters,
        or, for a target applied by Argo CD, the edited manifest. ``edits`` are desired-state
        files the proposal changes too (an inventory edit; ``None`` deletes a file)."""
        remedy = found.remedy
        hosts = tuple(h.name for h in found.hosts)
        target = found.hosts[0].variables.get("terry_argocd_app") if manifest else None
        now = utcnow()
        with self.store.session() as session:
            incident = session.get(IncidentRow, incident_id)
            assert incident is not None
            row = ProposalRow(
                incident_id=incident_id,
                remedy=remedy.name,
                role=remedy.role,
                hosts=list(hosts),
                params=found.params,
                risk=remedy.risk.value,
                state=S.PROPOSED.value,
                modules=list(remedy.modules),
                created_at=now,
                updated_at=now,
                reasons=[],
                check_summary={},
                applier=applier or remedy.applier,
                target=str(target) if target else None,
                ai_authored=ai is not None,
                confidence=ai.confidence if ai else None,
                ai_model=ai.model if ai else None,
                ai_diagnosis=ai.diagnosis if ai else None,
            )
            session.add(row)
            session.flush()
            proposal_id = row.id
            audit(
                session,
                entity="proposal",
                entity_id=proposal_id,
                actor="terry",
                from_state=None,
                to_state=S.PROPOSED.value,
                reason=f"remedy {remedy.name} matches {incident.title} on {', '.join(hosts)}",
            )
            title, source = incident.title, incident.source
        files: dict[str, str | None] = {}
        paths: tuple[str | None, str | None, str | None] = (None, None, None)
        if manifest is not None:
            files = {manifest[0]: manifest[1]}
            paths = (manifest[0], None, manifest[1])
        else:
            # A playbook of its own (drift fixes, inventory edits; none for an edit with
            # nothing to run), else the remedy's.
            rendered = (
                renderer(proposal_id, incident_id)
                if renderer is not None
                else render(
                    remedy=remedy,
                    proposal_id=proposal_id,
                    incident_id=incident_id,
                    hosts=hosts,
                    params=found.params,
                )
            )
            if rendered is not None:
                files = {
                    rendered.playbook_path: rendered.playbook,
                    rendered.vars_path: rendered.vars_text,
                }
                paths = (rendered.playbook_path, rendered.vars_path, rendered.playbook)
        files.update(edits or {})
        branch = self.repo.free_branch(branch_name(incident_id, remedy.name, hosts[0]))
        params_line = json.dumps(found.params, ensure_ascii=True, sort_keys=True)
        message = (
            f"fix({hosts[0]}): {remedy.name}: {one_line(remedy.summary, 60)}\n\n"
            f"What: {one_line(remedy.summary, 200)}\n"
            f"Why: {source} {one_line(title)} on {', '.join(hosts)} (incident {incident_id})\n"
            f"Parameters: {one_line(params_line, 400)}\n"
            f"Verify: {one_line(remedy.verify_summary, 200)}\n"
            f"Rollback: {one_line(remedy.rollback_summary, 200)}\n\n"
            f"Terry-Incident: {incident_id}\n"
            f"Terry-Proposal: {proposal_id}\n"
            f"Terry-Remedy: {remedy.name}\n"
            f"Terry-Risk: {remedy.risk.value}\n"
            "Terry-Decision: pending (dry run, then the gate)\n"
        )
        if ai is not None:
            message += (
                f"Terry-AI-Authored: {one_line(ai.model or 'Claude', 80)} "
                f"(confidence {ai.confidence}%)\n"
            )
        commit = self.repo.commit_files(
            branch=branch,
            files=files,
            message=message,
            base=base,
        )
        with self.store.session() as session:
            row = get(session, proposal_id)
            row.branch, row.commit_sha = branch, commit
            row.playbook_path, row.vars_path, row.playbook = paths
        self.reporter.step(
            proposal_id,
            f"proposal {proposal_id}: {remedy.name} on "
            f"{', '.join(hosts)} · branch {branch} · commit {commit[:10]}",
        )
        return proposal_id

    def check(self, proposal_id: int) -> RunResult:
        with self.store.session() as session:
            commit = get(session, proposal_id).commit_sha
        assert commit is not None
        with self.store.session() as session:
            applier = get(session, proposal_id).applier
        how = {
            "argocd": "Argo CD sync --dry-run",
            GIT: "the edited inventory, read by Ansible and validated",
        }.get(applier, "ansible-playbook --check --diff")
        self.reporter.step(proposal_id, f"dry run: {how}")
        try:
            result = self._run(proposal_id, "check", commit, check=True)
        except RunnerError as exc:
            transition(
                self.store,
                proposal_id,
                S.FAILED,
                actor="terry",
                reason=f"dry run could not start: {exc}",
                changes={"outcome": str(exc)},
            )
            raise
        summary = result.summary()
        summary["messages"] = result.failure_messages()[:20]
        transition(
            self.store,
            proposal_id,
            S.CHECKED,
            actor="terry",
            reason=f"dry run {'passed' if result.ok else 'failed'}: {result.changed} change(s)",
            changes={"check_diff": result.diff_text(), "check_summary": summary},
        )
        diff = result.diff_text()
        shown = "\n".join(diff.splitlines()[:12]) + ("\n    …" if diff.count("\n") >= 12 else "")
        self.reporter.step(
            proposal_id,
            f"check-mode diff ({result.changed} change(s), "
            f"{'passed' if result.ok else 'FAILED'}):\n{shown}",
        )
        return result

    def gate(self, proposal_id: int) -> Decision:
        sha = self.repo.head()
        with self.store.session() as session:
            row = get(session, proposal_id)
            incident = session.get(IncidentRow, row.incident_id)
            assert incident is not None
            recurrence = incident.recurrence
            hosts, remedy, risk = tuple(row.hosts), row.remedy, row.risk
            commit_sha = row.commit_sha
            modules, check = tuple(row.modules), dict(row.check_summary)
            ai_authored = row.ai_authored
        _sha, _catalogue, inventory = self.main_view(sha)
        if remedy == INVENTORY_EDIT and commit_sha:  # the hosts as the edit leaves them
            edited = load_inventory(self.repo.tree(commit_sha), self.config.inventory)
            inventory = Inventory({**inventory.hosts, **edited.hosts})
        gate_input = GateInput(
            proposal_id=proposal_id,
            remedy=remedy,
            risk=risk,
            hosts=tuple(inventory.hosts[h] for h in hosts if h in inventory.hosts),
            modules=modules,
            recurrence=recurrence,
            record=remedy_record(self.store, remedy, exclude=proposal_id),
            check={k: check.get(k) for k in ("ok", "changed", "failed_hosts", "unreachable_hosts")},
            ai_authored=ai_authored,
        )
        policies = self.main_policies(sha)
        decision = decide(self.engine, policies, gate_input)
        recorded = {
            "decision": decision.verdict.value,
            "reasons": list(decision.reasons),
            "policy_commit": decision.policy_commit,
            "environment": gate_input.environment,
        }
        why = "; ".join(decision.reasons)
        self.reporter.step(proposal_id, f"gate: {decision.verdict.value} — {why}")
        with self.store.session() as session:
            commit = get(session, proposal_id).commit_sha
        if commit:
            trailers = decision_trailers(
                decision.verdict.value, decision.reasons, decision.policy_commit
            )
            self.repo.add_note(commit, "\n".join(trailers) + "\n")
        if decision.verdict is Verdict.DENY:
            transition(
                self.store, proposal_id, S.DENIED, actor="policy", reason=why, changes=recorded
            )
        elif decision.verdict is Verdict.REVIEW:
            transition(
                self.store,
                proposal_id,
                S.AWAITING_REVIEW,
                actor="policy",
                reason=why,
                changes={**recorded, "forge_state": "pending" if self.uses_forge else None},
            )
            if self.uses_forge:
                self.publish(proposal_id)
        else:
            with self.store.session() as session:
                row = get(session, proposal_id)
                row.decision, row.reasons = recorded["decision"], recorded["reasons"]
                row.policy_commit = recorded["policy_commit"]
                row.environment = gate_input.environment
            self._merge(proposal_id, actor="policy", reason=why, from_state=S.CHECKED)
        return decision
