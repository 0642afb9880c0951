"""The sequencer: the one path every problem takes, and nothing else.

signal → incident → diagnose → propose → dry run → gate → review → apply → verify → record

Each step is an object in the module named after it (``terry.steps``), given the context
it works in; this module only moves a proposal from one step to the next, as far as its
state allows. Every source enters through one door, ``handle``: an incident and what its
diagnosis found, in; one ``ProposalOutcome``, out. The application is assembled in
``terry.app``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from terry.context import Context
from terry.diagnosis.finding import Finding, NoFix
from terry.errors import TerryError
from terry.incidents import lifecycle as incidents
from terry.proposals.state import ProposalState, get
from terry.review.base import Reconciled, Review

if TYPE_CHECKING:
    from terry.sources.alertmanager import Payload
    from terry.steps.apply import Apply
    from terry.steps.diagnose import Diagnose
    from terry.steps.dry_run import DryRun
    from terry.steps.gate import Gate
    from terry.steps.precheck import Precheck
    from terry.steps.propose import Propose
    from terry.steps.record import Record
    from terry.steps.review import ReviewStep
    from terry.steps.rollback import Rollback

__all__ = ["Pipeline", "PipelineResult", "ProposalOutcome", "Steps"]


@dataclass(frozen=True)
class ProposalOutcome:
    """What became of an incident: its proposal and where it stopped, or why none."""

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


@dataclass(frozen=True)
class Steps:
    """The step objects of one application (built by ``terry.app``)."""

    diagnose: Diagnose
    propose: Propose
    dry_run: DryRun
    gate: Gate
    review: ReviewStep
    apply: Apply
    rollback: Rollback
    record: Record
    precheck: Precheck


class Pipeline:
    """Moves incidents and proposals through the steps; holds no logic of its own."""

    def __init__(self, ctx: Context, steps: Steps, review: Review) -> None:
        self.ctx = ctx
        self.steps = steps
        self.review = review

    @property
    def uses_forge(self) -> bool:
        return self.review.name != "local"

    # -- signal → incident ----------------------------------------------------------------
    def ingest(
        self, payload: Payload, *, remediate: bool = True, apply: bool = True
    ) -> PipelineResult:
        result = incidents.ingest(self.ctx.store, payload)
        for effect in result.effects:
            if effect.incident_id and effect.effect in (
                incidents.Effect.RESOLVED,
                incidents.Effect.JOINED,
            ):
                self.incident_changed(
                    effect.incident_id,
                    resolved=effect.effect is incidents.Effect.RESOLVED,
                    detail=f"{effect.alertname} {effect.status.value}",
                )
        if not remediate:
            return PipelineResult(result)
        outcomes = tuple(self.remediate(i, apply=apply) for i in result.opened)
        return PipelineResult(result, outcomes)

    def incident_changed(self, incident_id: int, *, resolved: bool, detail: str) -> None:
        self.review.incident_changed(incident_id, resolved=resolved, detail=detail)

    # -- incident → diagnosis → (the door) ------------------------------------------------
    def remediate(self, incident_id: int, *, apply: bool = True) -> ProposalOutcome:
        """Diagnose an incident and carry its proposal as far as the gate allows.

        Claims the incident first, so two processes never diagnose it twice.
        """
        ctx = self.ctx
        if not incidents.claim(ctx.store, incident_id, ctx.holder, lease=ctx.lease):
            return ProposalOutcome(incident_id, None, None, note="already handled elsewhere")
        return self.handle(incident_id, self.steps.diagnose(incident_id), apply=apply)

    def handle(self, incident_id: int, finding: Finding, *, apply: bool = True) -> ProposalOutcome:
        """The one door: an incident and what its diagnosis found, from any source.

        A fix is proposed and carried as far as the gate allows; no fix keeps the incident
        for a person, with the reason."""
        store, reporter = self.ctx.store, self.ctx.reporter
        if isinstance(finding, NoFix):
            incidents.mark_diagnosed(store, incident_id, host=finding.host)
            incidents.set_attention(store, incident_id, finding.reason)
            reporter.step(None, f"incident {incident_id}: kept for a human: {finding.reason}")
            return ProposalOutcome(incident_id, None, None, note=finding.reason)
        proposal_id = self.steps.propose(incident_id, finding)
        incidents.mark_diagnosed(store, incident_id, host=finding.diagnosis.hosts[0].name)
        self.advance(proposal_id, apply=apply)
        with store.session() as session:
            row = get(session, proposal_id)
            return ProposalOutcome(
                incident_id,
                proposal_id,
                row.state,
                row.decision,
                tuple(row.reasons),
                row.outcome or "",
            )

    # -- proposal → dry run → gate → review (→ apply) --------------------------------------
    def advance(self, proposal_id: int, *, apply: bool = True) -> None:
        """Carry a proposal from wherever it stopped as far as the gate allows.

        Used right after proposing and again after a restart. A proposal caught mid-apply is
        marked ``interrupted`` elsewhere (``terry.service.worker``), never re-applied here.
        """
        steps = self.steps
        try:
            state = self.state(proposal_id)
            if state is ProposalState.PROPOSED:
                steps.dry_run(proposal_id)
                state = self.state(proposal_id)
            if state is ProposalState.CHECKED:
                steps.gate(proposal_id)
                state = self.state(proposal_id)
            if state is ProposalState.APPROVED:
                self.review.merge(
                    proposal_id,
                    actor="terry",
                    reason="resumed after restart",
                    from_state=ProposalState.APPROVED,
                )
                state = self.state(proposal_id)
            if state is ProposalState.MERGED and apply:
                self._apply(proposal_id, actor="terry")
        except TerryError as exc:
            self.ctx.reporter.step(proposal_id, f"stopped: {exc}")

    # -- what people do ---------------------------------------------------------------------
    def approve(self, proposal_id: int, *, actor: str, apply: bool = True) -> None:
        self.steps.review.approve(proposal_id, actor=actor)
        if apply:
            self._apply(proposal_id, actor=actor)

    def record_approval(self, proposal_id: int, *, actor: str, reason: str) -> None:
        self.steps.review.record_approval(proposal_id, actor=actor, reason=reason)

    def reject(self, proposal_id: int, *, actor: str, reason: str) -> None:
        self.steps.review.reject(proposal_id, actor=actor, reason=reason)

    def apply(self, proposal_id: int, *, actor: str) -> ProposalState:
        return self._apply(proposal_id, actor=actor)

    def _apply(self, proposal_id: int, *, actor: str) -> ProposalState:
        """Apply; when main holds a change nobody gated, ask for its re-check and refuse."""
        from terry.steps.precheck import MainNotGated

        try:
            return self.steps.apply(proposal_id, actor=actor)
        except MainNotGated as exc:
            for incident_id in exc.incident_ids:
                self.recheck_main(incident_id)
            raise

    def recheck_main(self, incident_id: int) -> int | None:
        """Propose a re-check of main as it now is for an ungated change on it (a dry run
        and a decision), unless one is under way; its proposal."""
        precheck = self.steps.precheck
        if precheck.live_recheck(incident_id) is not None:
            return None
        return self.handle(incident_id, precheck.recheck_fix(incident_id)).proposal_id

    def rollback(self, proposal_id: int, *, actor: str) -> ProposalState:
        return self.steps.rollback.requested(proposal_id, actor=actor)

    def state(self, proposal_id: int) -> ProposalState:
        return self.steps.record.state(proposal_id)

    # -- what people did on the forge -------------------------------------------------------
    def reconcile(self, proposal_id: int) -> Reconciled:
        return self.review.reconcile(proposal_id, self)

    def sync(self) -> list[Reconciled]:
        return self.review.sync(self)
