"""The one path every problem takes, wired together.

signal → incident → diagnosis → proposal → gate → review → apply → verify → record.
Each step's logic lives in the module named after it; this module only sequences them and
moves the proposal through its state machine (``terry.proposals``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from terry import incidents
from terry.appliers.ansible_runner import AnsibleRunnerApplier, RunnerEvent, RunRequest, RunResult
from terry.config import Config
from terry.diagnosis import Diagnosis, NoFix, diagnose
from terry.errors import RunnerError, StateError, TerryError
from terry.gate import GateInput, decide
from terry.gitops import Repo
from terry.inventory import Inventory, load_inventory
from terry.locks import holder_id, host_locks
from terry.policy import Decision, OpaEngine, PolicyEngine, RegorusEngine, Verdict, load_policy_set
from terry.proposals import ProposalState, get, transition
from terry.record import fail_run, finish_run, remedy_history, start_run
from terry.remedies.catalogue import Catalogue, load_catalogue
from terry.remedies.render import branch_name, render
from terry.sources.alertmanager import Payload
from terry.store import Store
from terry.store.audit import audit
from terry.store.models import IncidentRow, ProposalRow, utcnow
from terry.verify import Outcome, Verification, combine, judge_run, query_prometheus

__all__ = ["Outcome", "Pipeline", "ProposalOutcome", "Reporter", "SilentReporter"]

S = ProposalState
_REAPPLY_FROM = (
    S.MERGED,
    S.APPLIED,
    S.VERIFIED,
    S.FAILED,
    S.ROLLED_BACK,
    S.ESCALATED,
    S.INTERRUPTED,
)
_ROLLBACK_FROM = (S.APPLIED, S.VERIFIED, S.FAILED, S.ESCALATED, S.INTERRUPTED)


class Reporter(Protocol):
    """Where progress goes; the CLI prints it, the server logs it, tests collect it."""

    def step(self, proposal_id: int | None, message: str) -> None: ...

    def event(self, proposal_id: int, kind: str, event: RunnerEvent) -> None: ...


class SilentReporter:
    def step(self, proposal_id: int | None, message: str) -> None:
        return None

    def event(self, proposal_id: int, kind: str, event: RunnerEvent) -> None:
        return None


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


def _one_line(text: str, limit: int = 120) -> str:
    """Untrusted text made safe for a commit message line: no newlines, bounded."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text)[:limit]


class Pipeline:
    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        reporter: Reporter | None = None,
        engine: PolicyEngine | None = None,
        applier: AnsibleRunnerApplier | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.repo = Repo(config.repo, main_branch=config.main_branch)
        self.reporter: Reporter = reporter or SilentReporter()
        self.engine = engine or self._default_engine()
        self.applier = applier or AnsibleRunnerApplier()
        self.holder = holder_id()
        self.lease = timedelta(seconds=config.runner.timeout * 2 + 60)

    def _default_engine(self) -> PolicyEngine:
        policy = self.config.policy
        if policy.engine == "opa" and policy.opa_url:
            return OpaEngine(policy.opa_url, query=policy.query, timeout=policy.timeout)
        return RegorusEngine(query=policy.query, timeout=policy.timeout)

    # -- what main says ---------------------------------------------------------------
    def main_tree(self) -> tuple[str, Path]:
        sha = self.repo.head()
        return sha, self.repo.tree(sha)

    def catalogue(self, tree: Path) -> Catalogue:
        return load_catalogue(tree / self.config.roles_path)

    def inventory(self, tree: Path) -> Inventory:
        return load_inventory(tree, self.config.inventory)

    # -- signal → incident --------------------------------------------------------------
    def ingest(
        self, payload: Payload, *, remediate: bool = True, apply: bool = True
    ) -> PipelineResult:
        result = incidents.ingest(self.store, payload)
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
        sha, tree = self.main_tree()
        found = diagnose(
            alertname=alertname,
            labels=labels,
            annotations=annotations,
            catalogue=self.catalogue(tree),
            inventory=self.inventory(tree),
            host_labels=self.config.host_labels,
        )
        if isinstance(found, NoFix):
            incidents.mark_diagnosed(self.store, incident_id, host=found.host)
            incidents.set_attention(self.store, incident_id, found.reason)
            self.reporter.step(None, f"incident {incident_id}: kept for a human: {found.reason}")
            return ProposalOutcome(incident_id, None, None, note=found.reason)
        proposal_id = self.propose(incident_id, found, base=sha)
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
        marked ``interrupted`` elsewhere (``terry.worker``), never re-applied here.
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

    def propose(self, incident_id: int, found: Diagnosis, *, base: str) -> int:
        remedy = found.remedy
        hosts = tuple(h.name for h in found.hosts)
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
            title = incident.title
        rendered = render(
            remedy=remedy,
            proposal_id=proposal_id,
            incident_id=incident_id,
            hosts=hosts,
            params=found.params,
        )
        branch = self.repo.free_branch(branch_name(incident_id, remedy.name, hosts[0]))
        params_line = json.dumps(found.params, ensure_ascii=True, sort_keys=True)
        message = (
            f"fix({hosts[0]}): {remedy.name}: {_one_line(remedy.summary, 60)}\n\n"
            f"What: {_one_line(remedy.summary, 200)}\n"
            f"Why: alert {_one_line(title)} on {', '.join(hosts)} (incident {incident_id})\n"
            f"Parameters: {_one_line(params_line, 400)}\n"
            f"Verify: {_one_line(remedy.verify_summary, 200)}\n"
            f"Rollback: {_one_line(remedy.rollback_summary, 200)}\n\n"
            f"Terry-Incident: {incident_id}\n"
            f"Terry-Proposal: {proposal_id}\n"
            f"Terry-Remedy: {remedy.name}\n"
            f"Terry-Risk: {remedy.risk.value}\n"
            "Terry-Decision: pending (dry run, then the gate)\n"
        )
        commit = self.repo.commit_files(
            branch=branch,
            files={
                rendered.playbook_path: rendered.playbook,
                rendered.vars_path: rendered.vars_text,
            },
            message=message,
            base=base,
        )
        with self.store.session() as session:
            row = get(session, proposal_id)
            row.branch, row.commit_sha = branch, commit
            row.playbook_path, row.vars_path = rendered.playbook_path, rendered.vars_path
            row.playbook = rendered.playbook
        self.reporter.step(
            proposal_id,
            f"proposal {proposal_id}: {remedy.name} on "
            f"{', '.join(hosts)} · branch {branch} · commit {commit[:10]}",
        )
        return proposal_id

    def _run(
        self,
        proposal_id: int,
        kind: str,
        commit: str,
        *,
        check: bool = False,
        tags: tuple[str, ...] = (),
    ) -> RunResult:
        with self.store.session() as session:
            row = get(session, proposal_id)
            playbook, vars_path, hosts = row.playbook_path, row.vars_path, tuple(row.hosts)
        assert playbook is not None
        run_id = start_run(self.store, proposal_id=proposal_id, kind=kind, commit=commit)
        request = RunRequest(
            project_dir=self.repo.tree(commit),
            playbook=playbook,
            private_dir=self.config.state_dir / "runs" / str(run_id),
            inventory=tuple(self.config.inventory),
            hosts=hosts,
            vars_file=vars_path,
            check=check,
            tags=tags,
            forks=self.config.runner.forks,
            timeout=self.config.runner.timeout,
            env=dict(self.config.runner.env),
        )
        try:
            result = self.applier.run(
                request, on_event=lambda e: self.reporter.event(proposal_id, kind, e)
            )
        except RunnerError:
            fail_run(self.store, run_id, "error")
            raise
        finish_run(self.store, run_id, result)
        return result

    def check(self, proposal_id: int) -> RunResult:
        with self.store.session() as session:
            commit = get(session, proposal_id).commit_sha
        assert commit is not None
        self.reporter.step(proposal_id, "dry run: ansible-playbook --check --diff")
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
        sha, tree = self.main_tree()
        with self.store.session() as session:
            row = get(session, proposal_id)
            incident = session.get(IncidentRow, row.incident_id)
            assert incident is not None
            recurrence = incident.recurrence
            hosts, remedy, risk = tuple(row.hosts), row.remedy, row.risk
            modules, check = tuple(row.modules), dict(row.check_summary)
        inventory = self.inventory(tree)
        gate_input = GateInput(
            proposal_id=proposal_id,
            remedy=remedy,
            risk=risk,
            hosts=tuple(inventory.hosts[h] for h in hosts if h in inventory.hosts),
            modules=modules,
            recurrence=recurrence,
            history=remedy_history(self.store, remedy, exclude=proposal_id),
            check={k: check.get(k) for k in ("ok", "changed", "failed_hosts", "unreachable_hosts")},
        )
        policies = load_policy_set(tree / "policies", self.repo.last_change("policies") or sha)
        decision = decide(self.engine, policies, gate_input)
        recorded = {
            "decision": decision.verdict.value,
            "reasons": list(decision.reasons),
            "policy_commit": decision.policy_commit,
        }
        why = "; ".join(decision.reasons)
        self.reporter.step(proposal_id, f"gate: {decision.verdict.value} — {why}")
        with self.store.session() as session:
            commit = get(session, proposal_id).commit_sha
        if commit:
            self.repo.add_note(
                commit,
                "\n".join(
                    [
                        f"Terry-Decision: {decision.verdict.value}",
                        *(f"Terry-Reason: {_one_line(r, 300)}" for r in decision.reasons),
                        f"Terry-Policy-Commit: {decision.policy_commit}",
                    ]
                )
                + "\n",
            )
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
                changes=recorded,
            )
        else:
            with self.store.session() as session:
                row = get(session, proposal_id)
                row.decision, row.reasons = recorded["decision"], recorded["reasons"]
                row.policy_commit = recorded["policy_commit"]
            self._merge(proposal_id, actor="policy", reason=why, from_state=S.CHECKED)
        return decision

    # -- review ---------------------------------------------------------------------------
    def _merge(
        self, proposal_id: int, *, actor: str, reason: str, from_state: ProposalState
    ) -> str:
        with self.store.session() as session:
            row = get(session, proposal_id)
            branch, remedy, hosts = row.branch, row.remedy, ", ".join(row.hosts)
            decision, reasons, policy_commit = row.decision, list(row.reasons), row.policy_commit
            approved_by = row.approved_by
        assert branch is not None
        trailers = [f"Terry-Proposal: {proposal_id}", f"Terry-Decision: {decision}"]
        trailers += [f"Terry-Reason: {_one_line(r, 300)}" for r in reasons]
        trailers.append(f"Terry-Policy-Commit: {policy_commit}")
        if approved_by:
            trailers.append(f"Terry-Approved-By: {_one_line(approved_by, 100)}")
        message = f"Merge {branch}: {remedy} on {hosts}\n\n" + "\n".join(trailers) + "\n"
        merge_sha = self.repo.merge(branch, message=message)
        transition(
            self.store,
            proposal_id,
            S.MERGED,
            actor=actor,
            reason=f"merged into {self.config.main_branch} as {merge_sha[:10]}: {reason}",
            allowed_from=(from_state,),
            changes={"merge_sha": merge_sha},
        )
        self.reporter.step(proposal_id, f"merged into {self.config.main_branch} ({merge_sha[:10]})")
        return merge_sha

    def approve(self, proposal_id: int, *, actor: str, apply: bool = True) -> None:
        transition(
            self.store,
            proposal_id,
            S.APPROVED,
            actor=actor,
            verb="approve",
            reason=f"approved by {actor}",
            allowed_from=(S.AWAITING_REVIEW,),
            changes={"approved_by": actor},
        )
        self._merge(proposal_id, actor=actor, reason=f"approved by {actor}", from_state=S.APPROVED)
        if apply:
            self.apply(proposal_id, actor=actor)

    def reject(self, proposal_id: int, *, actor: str, reason: str) -> None:
        transition(
            self.store,
            proposal_id,
            S.REJECTED,
            actor=actor,
            verb="reject",
            reason=f"rejected by {actor}: {reason}",
            allowed_from=(S.AWAITING_REVIEW,),
            changes={"outcome": f"rejected: {reason}"},
        )

    # -- apply → verify → (rollback) → record ---------------------------------------------
    def apply(self, proposal_id: int, *, actor: str) -> ProposalState:
        with self.store.session() as session:
            row = get(session, proposal_id)
            hosts, merge_sha = tuple(row.hosts), row.merge_sha
        ttl = timedelta(seconds=self.config.runner.timeout * 3 + 60)
        with host_locks(
            self.store, hosts, proposal_id=proposal_id, ttl=ttl, wait=self.config.runner.lock_wait
        ):
            transition(
                self.store,
                proposal_id,
                S.APPLYING,
                actor=actor,
                verb="apply",
                reason=f"apply {str(merge_sha)[:10]} on {', '.join(hosts)}",
                allowed_from=_REAPPLY_FROM,
            )
            assert merge_sha is not None
            self.reporter.step(proposal_id, f"applying on {', '.join(hosts)}")
            try:
                result = self._run(proposal_id, "apply", merge_sha)
            except RunnerError as exc:
                self._move(proposal_id, S.FAILED, str(exc), outcome=str(exc))
                raise
            if not result.ok:
                why = "; ".join(result.failure_messages()[:5]) or f"ended {result.status.value}"
                self._move(
                    proposal_id, S.FAILED, f"apply failed: {why}", outcome=f"apply failed: {why}"
                )
                self._rollback(proposal_id, merge_sha, reason="apply failed")
                return self.state(proposal_id)
            self._move(proposal_id, S.APPLIED, f"applied: {result.changed} change(s)")
            verification = self._verify(proposal_id, merge_sha)
            evidence = "; ".join(verification.evidence)
            if verification.outcome is Outcome.VERIFIED:
                self._move(proposal_id, S.VERIFIED, evidence, outcome=f"verified: {evidence}")
                self._mark_fixed(proposal_id)
            elif verification.outcome is Outcome.FAILED:
                self._move(
                    proposal_id,
                    S.FAILED,
                    f"verification failed: {evidence}",
                    outcome=f"verification failed: {evidence}",
                )
                self._rollback(proposal_id, merge_sha, reason="verification failed")
            else:
                self._move(
                    proposal_id,
                    S.ESCALATED,
                    f"verification unknown: {evidence}",
                    outcome=f"unknown: {evidence}",
                )
                self._attention(
                    proposal_id,
                    f"proposal {proposal_id}: verification could not "
                    f"tell ({evidence}); check the host, then 'terry proposals "
                    "rollback' or 'apply'",
                )
        return self.state(proposal_id)

    def _move(
        self, proposal_id: int, to: ProposalState, reason: str, *, outcome: str | None = None
    ) -> None:
        """A transition made by Terry itself, optionally recording the outcome text."""
        transition(
            self.store,
            proposal_id,
            to,
            actor="terry",
            reason=reason,
            changes={"outcome": outcome} if outcome is not None else None,
        )

    def rollback(self, proposal_id: int, *, actor: str) -> ProposalState:
        """Run the remedy's rollback on demand (after a verified or escalated apply)."""
        with self.store.session() as session:
            row = get(session, proposal_id)
            hosts, merge_sha, state = tuple(row.hosts), row.merge_sha, ProposalState(row.state)
        if state not in _ROLLBACK_FROM or merge_sha is None:
            raise StateError(f"cannot roll back proposal {proposal_id}: it is {state.value}")
        ttl = timedelta(seconds=self.config.runner.timeout + 60)
        with host_locks(
            self.store, hosts, proposal_id=proposal_id, ttl=ttl, wait=self.config.runner.lock_wait
        ):
            self._rollback(proposal_id, merge_sha, reason=f"requested by {actor}", actor=actor)
        return self.state(proposal_id)

    def _rollback(
        self, proposal_id: int, merge_sha: str, *, reason: str, actor: str = "terry"
    ) -> None:
        self.reporter.step(proposal_id, f"rolling back ({reason})")
        try:
            result = self._run(proposal_id, "rollback", merge_sha, tags=("rollback",))
        except RunnerError as exc:
            self._attention(proposal_id, f"proposal {proposal_id}: rollback could not start: {exc}")
            return
        if result.ok:
            transition(
                self.store,
                proposal_id,
                S.ROLLED_BACK,
                actor=actor,
                reason=f"rolled back: {reason}",
                allowed_from=_ROLLBACK_FROM,
            )
        else:
            why = "; ".join(result.failure_messages()[:5])
            self._attention(proposal_id, f"proposal {proposal_id}: rollback failed: {why}")

    def _verify(self, proposal_id: int, merge_sha: str) -> Verification:
        self.reporter.step(proposal_id, "verifying")
        try:
            checks = [judge_run(self._run(proposal_id, "verify", merge_sha, tags=("verify",)))]
        except RunnerError as exc:
            checks = [Verification(Outcome.UNKNOWN, (f"verify run could not start: {exc}",))]
        prom = self.config.prometheus
        with self.store.session() as session:
            row = get(session, proposal_id)
            remedy_name, params, hosts = row.remedy, dict(row.params), list(row.hosts)
        _sha, tree = self.main_tree()
        remedy = self.catalogue(tree).get(remedy_name)
        if prom.url and remedy is not None and remedy.prometheus_verify is not None:
            for host in hosts:
                checks.append(
                    query_prometheus(
                        prom.url,
                        remedy.prometheus_verify,
                        {**params, "host": host},
                        timeout=prom.timeout,
                        settle_seconds=prom.settle_seconds,
                    )
                )
        return combine(*checks)

    def _mark_fixed(self, proposal_id: int) -> None:
        with self.store.session() as session:
            row = get(session, proposal_id)
            incident = session.get(IncidentRow, row.incident_id)
            if incident is not None:
                incident.fixed_at = utcnow()
                incident.attention = None
                audit(
                    session,
                    entity="incident",
                    entity_id=incident.id,
                    actor="terry",
                    from_state=incident.state,
                    to_state=incident.state,
                    reason=f"fix verified (proposal {proposal_id})",
                )

    def _attention(self, proposal_id: int, reason: str) -> None:
        with self.store.session() as session:
            incident_id = get(session, proposal_id).incident_id
        incidents.set_attention(self.store, incident_id, reason)
        self.reporter.step(proposal_id, reason)

    def state(self, proposal_id: int) -> ProposalState:
        with self.store.session() as session:
            return ProposalState(get(session, proposal_id).state)
