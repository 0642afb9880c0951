"""Record: every run an applier makes, kept with its events next to the proposal; Terry's
own transitions, the incident's outcome, and what needs a person."""

from __future__ import annotations

from dataclasses import dataclass

from terry.appliers.base import Applier, Job, RunKind, RunResult
from terry.context import Context
from terry.errors import RunnerError
from terry.incidents import lifecycle as incidents
from terry.proposals.state import ProposalState, get, transition
from terry.store.audit import audit
from terry.store.models import IncidentRow, utcnow
from terry.store.runs import fail_run, finish_run, start_run

__all__ = ["Record"]


@dataclass(frozen=True)
class Record:
    ctx: Context

    def run(self, applier: Applier, kind: RunKind, proposal_id: int, commit: str) -> RunResult:
        """Ask ``applier`` for one run of the proposal, recorded as a run with its events."""
        store = self.ctx.store
        run_id = start_run(store, proposal_id=proposal_id, kind=kind.value, commit=commit)
        with store.session() as session:
            row = get(session, proposal_id)
            job = Job(
                proposal_id=proposal_id,
                kind=kind,
                commit=commit,
                hosts=tuple(row.hosts),
                run_dir=self.ctx.config.state_dir / "runs" / str(run_id),
                playbook=row.playbook_path,
                vars_path=row.vars_path,
                branch=row.branch,
                target=row.target,
                params=dict(row.params),
            )
        reporter = self.ctx.reporter
        try:
            result = getattr(applier, kind.value)(
                job, lambda e: reporter.event(proposal_id, kind.value, e)
            )
        except RunnerError:
            fail_run(store, run_id, "error")
            raise
        finish_run(store, run_id, result)
        return result

    def move(
        self, proposal_id: int, to: ProposalState, reason: str, *, outcome: str | None = None
    ) -> None:
        """A transition made by Terry itself, optionally recording the outcome text."""
        transition(
            self.ctx.store,
            proposal_id,
            to,
            actor="terry",
            reason=reason,
            changes={"outcome": outcome} if outcome is not None else None,
        )

    def attention(self, proposal_id: int, reason: str) -> None:
        """The proposal's incident needs a person, for this reason."""
        with self.ctx.store.session() as session:
            incident_id = get(session, proposal_id).incident_id
        incidents.set_attention(self.ctx.store, incident_id, reason)
        self.ctx.reporter.step(proposal_id, reason)

    def fixed(self, proposal_id: int) -> None:
        """The proposal's fix is verified: the incident is fixed (its alert may still have to
        resolve), and no longer needs a person."""
        with self.ctx.store.session() as session:
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

    def state(self, proposal_id: int) -> ProposalState:
        with self.ctx.store.session() as session:
            return ProposalState(get(session, proposal_id).state)
