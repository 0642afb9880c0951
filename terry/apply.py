"""Apply → verify → (rollback) → record, under per-host locks.

A failed apply or a failed verification runs the remedy's rollback; a verification that
cannot tell (``unknown``) escalates to a human and is never recorded as verified.
"""

from __future__ import annotations

from datetime import timedelta

from terry.drift.scan import RECONCILE, verify_hosts
from terry.errors import RunnerError, StateError, TerryError
from terry.incidents import lifecycle as incidents
from terry.inventory.proposal import GIT, INVENTORY_EDIT, verify_edit
from terry.proposals.state import MERGED_STATES, ProposalState, get, transition
from terry.steps import Steps
from terry.store.audit import audit
from terry.store.locks import host_locks
from terry.store.models import IncidentRow, utcnow
from terry.verify.judge import Outcome, Verification, combine, judge_run, query_prometheus

__all__ = ["ApplySteps"]

S = ProposalState
_ROLLBACK_FROM = (S.APPLIED, S.VERIFIED, S.FAILED, S.ESCALATED, S.INTERRUPTED)


class ApplySteps(Steps):
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
                allowed_from=MERGED_STATES,
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
        with self.store.session() as session:
            remedy, hosts = get(session, proposal_id).remedy, get(session, proposal_id).hosts
        if remedy == RECONCILE:  # the desired state is the reference: nothing to roll back to
            self._attention(
                proposal_id,
                f"proposal {proposal_id}: reconciling drift did not take ({reason}); "
                "no automatic rollback: look at the hosts, then fix the desired state or "
                "run 'terry drift fix' again",
            )
            return
        if remedy == INVENTORY_EDIT:  # the rollback is a revert of the edit, by a person
            self._attention(
                proposal_id,
                f"proposal {proposal_id}: the inventory edit did not take ({reason}); no "
                f"automatic rollback: revert merge {merge_sha[:10]} (git revert -m 1) or fix "
                f"the host, then 'terry drift fix --limit {hosts[0]}'",
            )
            return
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
        with self.store.session() as session:
            row = get(session, proposal_id)
            reconcile, hosts, incident_id = (
                row.remedy == RECONCILE,
                tuple(row.hosts),
                row.incident_id,
            )
            edit = dict(row.params) if row.remedy == INVENTORY_EDIT else None
            converges = row.applier != GIT
        if edit is not None:  # the inventory on main says so (and, converging, no drift)
            checks = [verify_edit(self.config, self.repo, edit)]
            if converges and checks[0].outcome is Outcome.VERIFIED:
                try:
                    checks.append(verify_hosts(self.config, self.store, hosts))
                except TerryError as exc:
                    checks.append(
                        Verification(Outcome.UNKNOWN, (f"drift scan could not run: {exc}",))
                    )
            found = combine(*checks)
            if found.outcome is Outcome.VERIFIED:
                incidents.resolve(
                    self.store, incident_id, f"inventory edit verified: {found.evidence[0]}"
                )
            return found
        if reconcile:  # a drift fix: verified by a clean scan of its hosts
            try:
                found = verify_hosts(self.config, self.store, hosts)
            except TerryError as exc:
                return Verification(Outcome.UNKNOWN, (f"drift scan could not run: {exc}",))
            if found.outcome is Outcome.VERIFIED:
                incidents.resolve(self.store, incident_id, f"drift fixed: {found.evidence[0]}")
            return found
        try:
            checks = [judge_run(self._run(proposal_id, "verify", merge_sha, tags=("verify",)))]
        except RunnerError as exc:
            checks = [Verification(Outcome.UNKNOWN, (f"verify run could not start: {exc}",))]
        prom = self.config.prometheus
        with self.store.session() as session:
            row = get(session, proposal_id)
            remedy_name, params, hosts = row.remedy, dict(row.params), list(row.hosts)
        _sha, catalogue, _inventory = self.main_view()
        remedy = catalogue.get(remedy_name)
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
