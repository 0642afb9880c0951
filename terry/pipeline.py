"""The sequencer: the one path every problem takes, and nothing else.

signal → incident → diagnose → propose → dry run → gate → review → apply → verify → record

Each step is an object in the module named after it (``terry.steps``), given the context
it works in; this module only moves a proposal from one step to the next, as far as its
state allows. Every source enters through one door, ``handle``: an incident and what its
diagnosis found, in; one ``ProposalOutcome``, out. The application is assembled in
``terry.app``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from terry.context import Context
from terry.diagnosis.finding import Finding, Fix, NoFix
from terry.diagnosis.rules import Diagnosis
from terry.errors import TerryError
from terry.incidents import lifecycle as incidents
from terry.proposals import storm
from terry.proposals.hosts import (
    HostState,
    ProposalHost,
    hosts_of,
    open_incidents,
    set_hosts,
    take_queued,
)
from terry.proposals.state import ProposalState, get
from terry.review.base import Reconciled, Review
from terry.slo.services import gate_view, protects, services_of, urgency
from terry.tenants.loader import tenants_for_gate
from terry.traces.incident import Traces

if TYPE_CHECKING:
    from terry.inventory.hosts import Inventory
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
    from terry.store.models import ProposalRow
    from terry.store.runs import Reaped

__all__ = ["WIDEN_ROUNDS", "Pipeline", "PipelineResult", "ProposalOutcome", "Steps"]

# How often a proposal takes in hosts that joined during its dry run (each time: one more
# commit and a dry run again) before it is decided; those joining after go in its next wave.
WIDEN_ROUNDS = 3


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
        self.traces = Traces(ctx.config, ctx.store)  # one trace per incident, when on

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
        outcomes = self.remediate_many(result.opened, apply=apply)
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
        try:
            with self.traces.incident(incident_id):
                with self.traces.step("diagnose"):
                    finding = self.steps.diagnose(incident_id)
                return self.handle(incident_id, finding, apply=apply)
        finally:
            incidents.let_go([incident_id])

    def remediate_many(
        self, incident_ids: Sequence[int], *, apply: bool = True
    ) -> tuple[ProposalOutcome, ...]:
        """Diagnose incidents that arrived together, then carry their proposals; those that
        need the same remedy with the same parameters fold into one proposal over all their
        hosts (a storm, ``terry.proposals.storm``). One outcome per incident, in order."""
        try:
            return self._remediate_many(incident_ids, apply=apply)
        finally:
            incidents.let_go(incident_ids)

    def _remediate_many(
        self, incident_ids: Sequence[int], *, apply: bool
    ) -> tuple[ProposalOutcome, ...]:
        ctx = self.ctx
        outcomes: dict[int, ProposalOutcome] = {}
        found: list[tuple[int, Finding]] = []
        claimed: list[int] = []
        for incident_id in dict.fromkeys(incident_ids):  # all first: what came together is
            # taken together, not one at a time between diagnoses (another thread would
            # take the rest, and a storm's hosts get proposals of their own)
            if incidents.claim(ctx.store, incident_id, ctx.holder, lease=ctx.lease):
                claimed.append(incident_id)
            else:
                outcomes[incident_id] = ProposalOutcome(
                    incident_id, None, None, note="already handled elsewhere"
                )
        for incident_id in claimed:
            with self.traces.incident(incident_id), self.traces.step("diagnose"):
                found.append((incident_id, self.steps.diagnose(incident_id)))
        for together in self._budgets_first(storm.group(found, _MainPlacement(ctx))):
            if len(together) == 1:
                incident_id, finding = together[0]
                outcomes[incident_id] = self.handle(incident_id, finding, apply=apply)
                continue
            for outcome in self._storm(together, apply=apply):
                outcomes[outcome.incident_id] = outcome
        return tuple(outcomes[i] for i in dict.fromkeys(incident_ids))

    def _budgets_first(
        self, groups: list[list[tuple[int, Finding]]]
    ) -> list[list[tuple[int, Finding]]]:
        """The groups to carry, those whose fix protects a burning or low error budget first,
        the most urgent first (``urgency``: exhausted and burning, exhausted, burning, low;
        docs/slo.md), the others in the order they came. The budgets are read once for the
        batch, and only when there is an order to choose and a host serves a service."""
        hosts = {
            h.name: h
            for together in groups
            for _i, finding in together
            if isinstance(finding, Fix)
            for h in finding.diagnosis.hosts
        }
        if len(groups) < 2 or not services_of(hosts.values()):
            return groups
        ctx = self.ctx
        _sha, tree = ctx.main.tree()
        prometheus = ctx.config.prometheus
        view = gate_view(tree, tuple(hosts.values()), prometheus, timeout=prometheus.timeout)
        source = incidents.sources(ctx.store, (i for g in groups for i, _f in g))
        # (how badly its budgets need it, when it came, the group, why)
        ranked: list[tuple[int, int, list[tuple[int, Finding]], str | None]] = []
        for came, together in enumerate(groups):
            note, most = None, 0
            for i, finding in together:
                if isinstance(finding, Fix) and (
                    said := protects(view, finding.diagnosis.hosts, source.get(i, ""))
                ):
                    note = note or said
                    most = max(most, urgency(view, finding.diagnosis.hosts))
            ranked.append((most, came, together, note))
        order = sorted(ranked, key=lambda r: (-r[0], r[1]))  # stable among equals
        for place, (_most, came, together, note) in enumerate(order):
            overtaken = [r for r in order[place + 1 :] if r[1] < came]
            if note is not None and overtaken:  # it overtakes an incident that came before it
                first = min(overtaken, key=lambda r: r[1])[2]
                ctx.reporter.step(
                    None,
                    f"incident {together[0][0]} goes before incident {first[0][0]}: "
                    f"{note.removeprefix('priority: ')}",
                )
        return [together for _most, _came, together, _note in order]

    def _storm(
        self, together: Sequence[tuple[int, Finding]], *, apply: bool
    ) -> list[ProposalOutcome]:
        """Incidents whose fixes fold: those an open proposal takes in its next wave join it;
        the rest become one proposal over all their hosts."""
        done: list[ProposalOutcome] = []
        fold: list[tuple[int, Fix]] = []
        for incident_id, finding in together:
            assert isinstance(finding, Fix)  # storm.group folds fixes only
            joined = self._join(incident_id, finding)
            if joined is not None:
                done.append(joined)
            else:
                fold.append((incident_id, finding))
        if len(fold) == 1:
            return [*done, self.handle(*fold[0], apply=apply)]
        if not fold:
            return done
        first = fold[0][0]
        fix = storm.merged_fix([f for _i, f in fold])
        owners: dict[str, int] = {}
        for incident_id, finding in fold:
            for host in finding.diagnosis.hosts:
                owners.setdefault(host.name, incident_id)
        store = self.ctx.store
        with self.traces.incident(first), self.traces.step("propose"):
            proposal_id = self.steps.propose(first, fix, incidents=owners)
        carried = set(owners.values())
        for incident_id, finding in fold:
            incidents.mark_diagnosed(
                store,
                incident_id,
                host=finding.diagnosis.hosts[0].name,
                # a second incident on a host the fold already carries rides on that host
                folded_into=None if incident_id in carried else proposal_id,
            )
        self.ctx.reporter.step(
            proposal_id,
            f"storm: {len(fold)} incidents on {len(owners)} hosts folded into proposal "
            f"{proposal_id}",
        )
        self.advance(proposal_id, apply=apply)
        outcome = self._outcome(first, proposal_id)
        return [
            *done,
            *(
                outcome
                if i == first
                else replace(outcome, incident_id=i, note=f"folded into proposal {proposal_id}")
                for i, _f in fold
            ),
        ]

    def _join(self, incident_id: int, fix: Fix) -> ProposalOutcome | None:
        """Queue the fix's host on an open proposal it folds into (its next wave), if one
        was made within ``storm.window``; the outcome, or None: it gets its own proposal."""
        store = self.ctx.store
        host = fix.diagnosis.hosts[0]
        proposal_id = storm.join(
            store,
            fix,
            incident_id,
            window=self.ctx.config.storm.window,
            environment=host.environment,
            placement=_MainPlacement(self.ctx),
        )
        if proposal_id is None:
            return None
        incidents.mark_diagnosed(store, incident_id, host=host.name)
        if self._takes_in(proposal_id):
            # it goes in unless the decision comes first (its gate may be running now):
            # said as both, and where it went is the host's state in `proposals show`
            note = (
                f"joined proposal {proposal_id}: {host.name} goes in it, before its decision "
                f"(if the decision comes first, in its next wave: `terry proposals show "
                f"{proposal_id}` says which)"
            )
        else:
            note = f"joined proposal {proposal_id}: {host.name} goes in its next wave"
        self.ctx.reporter.step(proposal_id, f"incident {incident_id}: {note}")
        self.follow_up(proposal_id)  # it may have finished meanwhile
        return replace(self._outcome(incident_id, proposal_id, primary=False), note=note)

    def _outcome(
        self, incident_id: int, proposal_id: int, *, primary: bool = True
    ) -> ProposalOutcome:
        with self.ctx.store.session() as session:
            row = get(session, proposal_id)
            return ProposalOutcome(
                incident_id,
                proposal_id,
                row.state,
                row.decision,
                tuple(row.reasons),
                (row.outcome or "") if primary else "",
            )

    def follow_up(self, proposal_id: int, *, apply: bool = True) -> int | None:
        """The next wave of a finished proposal: the hosts that joined it after its decision
        (queued), as one follow-up proposal with its own dry run and decision; its id, or
        None (nothing queued, or the proposal is still under way)."""
        ctx = self.ctx
        state = self.state(proposal_id)
        if state in storm.JOINABLE or state is ProposalState.AWAITING_REVIEW:
            return None
        if not any(h.state is HostState.QUEUED for h in hosts_of(ctx.store, proposal_id)):
            return None
        with ctx.store.session() as session:
            row = get(session, proposal_id)
            remedy_name, params = row.remedy, dict(row.params)
        sha, catalogue, inventory = ctx.main.view()
        remedy = catalogue.get(remedy_name)
        taken, live = self._take_joined(proposal_id, inventory)
        if remedy is None or not live:
            for h in taken:
                if h.incident_id is not None and remedy is None:
                    incidents.set_attention(
                        ctx.store,
                        h.incident_id,
                        f"{h.host} joined proposal {proposal_id}, whose remedy {remedy_name} "
                        "is no longer on main; nothing was proposed. Next: fix it by hand",
                    )
            return None
        fix = Fix(Diagnosis(remedy, tuple(inventory.hosts[h.host] for h in live), params), base=sha)
        owners = {h.host: h.incident_id for h in live if h.incident_id is not None}
        first = live[0].incident_id
        assert first is not None
        new = self.steps.propose(first, fix, incidents=owners, follows=proposal_id)
        set_hosts(
            ctx.store,
            proposal_id,
            {h.host: (HostState.MOVED, f"next wave: proposal {new}") for h in live},
        )
        ctx.reporter.step(
            new,
            f"next wave of proposal {proposal_id}: {', '.join(h.host for h in live)} "
            f"(proposal {new})",
        )
        self.advance(new, apply=apply)
        return new

    def _take_joined(
        self, proposal_id: int, inventory: Inventory, *, among: Collection[str] | None = None
    ) -> tuple[list[ProposalHost], list[ProposalHost]]:
        """The hosts queued on the proposal (of ``among``, when given), taken (``moved``),
        and those of them still to carry: in ``inventory``, their incident open. The others
        say why they were not."""
        store = self.ctx.store
        taken = take_queued(store, proposal_id, among=among)
        still = open_incidents(store, [h.incident_id for h in taken if h.incident_id])
        live = [h for h in taken if h.host in inventory.hosts and h.incident_id in still]
        set_hosts(
            store,
            proposal_id,
            {
                h.host: (HostState.MOVED, "not carried on: its incident closed before its wave")
                for h in taken
                if h not in live
            },
        )
        return taken, live

    def _takes_in(self, proposal_id: int) -> bool:
        """Whether a host joining the proposal now goes in it (``_widen``) rather than in its
        next wave: it is not decided yet, and its dry run, if done, passed."""
        with self.ctx.store.session() as session:
            return _takes_in(get(session, proposal_id))

    def _widen(self, proposal_id: int) -> bool:
        """Hosts that joined the proposal during its dry run go in it (one more commit on its
        branch, a dry run again over every host: ``Propose.widen``) rather than in a next
        wave of their own; whether it was widened. Only a plain remedy fix is (what
        ``storm.join`` joins), whose dry run passed, from the catalogue and inventory of its
        own commit."""
        ctx = self.ctx
        if not any(h.state is HostState.QUEUED for h in hosts_of(ctx.store, proposal_id)):
            return False
        with ctx.store.session() as session:
            row = get(session, proposal_id)
            takes_in, remedy_name, commit = _takes_in(row), row.remedy, row.commit_sha
        if not takes_in:  # a failed dry run: decided as it is
            return False
        _sha, catalogue, inventory = ctx.main.view(commit)
        remedy = catalogue.get(remedy_name)
        if remedy is None:
            return False  # queued still: its next wave says why, after the decision
        # a host main's inventory gained after the proposal's commit stays queued: its next
        # wave is proposed from main
        _taken, live = self._take_joined(proposal_id, inventory, among=inventory.hosts)
        if not live:
            return False
        return self.steps.propose.widen(proposal_id, live, remedy) is not None

    def handle(self, incident_id: int, finding: Finding, *, apply: bool = True) -> ProposalOutcome:
        """The one door: an incident and what its diagnosis found, from any source.

        A fix is proposed and carried as far as the gate allows; no fix keeps the incident
        for a person, with the reason."""
        with self.traces.incident(incident_id):
            return self._handle(incident_id, finding, apply=apply)

    def _handle(self, incident_id: int, finding: Finding, *, apply: bool) -> ProposalOutcome:
        store, reporter = self.ctx.store, self.ctx.reporter
        if isinstance(finding, NoFix):
            incidents.mark_diagnosed(store, incident_id, host=finding.host)
            incidents.set_attention(store, incident_id, finding.reason)
            reporter.step(None, f"incident {incident_id}: kept for a human: {finding.reason}")
            return ProposalOutcome(incident_id, None, None, note=finding.reason)
        joined = self._join(incident_id, finding)
        if joined is not None:
            return joined
        with self.traces.step("propose"):
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
        steps, traces = self.steps, self.traces
        try:
            state = self.state(proposal_id)
            for _round in range(WIDEN_ROUNDS + 1):
                if state is ProposalState.PROPOSED:
                    with traces.proposal(proposal_id, "advance"), traces.step("dry_run"):
                        steps.dry_run(proposal_id)
                        traces.outcome(proposal_id)
                    state = self.state(proposal_id)
                if _round == WIDEN_ROUNDS or state is not ProposalState.CHECKED:
                    break
                if not self._widen(proposal_id):  # hosts of a storm joined during the dry run
                    break
                state = self.state(proposal_id)
            if state is ProposalState.CHECKED:
                with traces.proposal(proposal_id, "advance"), traces.step("gate"):
                    steps.gate(proposal_id)
                    traces.outcome(proposal_id)
                state = self.state(proposal_id)
            if state is ProposalState.APPROVED:
                self.merge_approved(proposal_id, actor="terry", reason="resumed after restart")
                state = self.state(proposal_id)
            if state is ProposalState.MERGED and apply:
                self._apply(proposal_id, actor="terry")
        except TerryError as exc:
            self.ctx.reporter.step(proposal_id, f"stopped: {exc}")
        self.follow_up(proposal_id, apply=apply)

    # -- what people do ---------------------------------------------------------------------
    def approve(self, proposal_id: int, *, actor: str, apply: bool = True) -> None:
        with self.traces.proposal(proposal_id, "approve"), self.traces.step("review"):
            self.steps.review.approve(proposal_id, actor=actor)
        if apply:
            self._apply(proposal_id, actor=actor)
            self.follow_up(proposal_id)

    def record_approval(self, proposal_id: int, *, actor: str, reason: str) -> None:
        self.steps.review.record_approval(proposal_id, actor=actor, reason=reason)

    def merge_approved(self, proposal_id: int, *, actor: str, reason: str) -> str:
        with self.traces.proposal(proposal_id, "approve"), self.traces.step("review"):
            return self.steps.review.merge_approved(proposal_id, actor=actor, reason=reason)

    def reject(self, proposal_id: int, *, actor: str, reason: str) -> None:
        with self.traces.proposal(proposal_id, "reject"), self.traces.step("review"):
            self.steps.review.reject(proposal_id, actor=actor, reason=reason)
        self.follow_up(proposal_id)

    def apply(self, proposal_id: int, *, actor: str) -> ProposalState:
        state = self._apply(proposal_id, actor=actor)
        self.follow_up(proposal_id)
        return state

    def _apply(self, proposal_id: int, *, actor: str) -> ProposalState:
        """Apply; when main holds a change nobody gated, ask for its re-check and refuse."""
        from terry.steps.precheck import MainNotGated

        try:
            with self.traces.proposal(proposal_id, "apply"), self.traces.step("apply"):
                state = self.steps.apply(proposal_id, actor=actor)
                self.traces.outcome(proposal_id)
                return state
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
        with self.traces.proposal(proposal_id, "rollback"), self.traces.step("rollback"):
            state = self.steps.rollback.requested(proposal_id, actor=actor)
            self.traces.outcome(proposal_id, done=ProposalState.ROLLED_BACK.value)
            return state

    def reap(self) -> Reaped:
        """Release what dead processes left: their runs stopped (here, or where they go on:
        an AWX job) and finished as interrupted, their locks freed (``Appliers.reap``)."""
        return self.steps.apply.appliers.reap()

    def state(self, proposal_id: int) -> ProposalState:
        return self.steps.record.state(proposal_id)

    # -- what people did on the forge -------------------------------------------------------
    def reconcile(self, proposal_id: int) -> Reconciled:
        return self.review.reconcile(proposal_id, self)

    def sync(self) -> list[Reconciled]:
        return self.review.sync(self)


class _MainPlacement:
    """Which tenants a host is in, as the gate will place it: main's policies/tenants.yml
    over main's inventory (a host's ``terry_tenant`` when the repository defines no
    tenants). Read on first use only: most incidents never meet a proposal to fold into."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._placed: dict[str, tuple[str, ...]] | None = None

    def __call__(self, host: str) -> tuple[str, ...]:
        if self._placed is None:
            sha, tree = self._ctx.main.tree()
            _sha, _catalogue, inventory = self._ctx.main.view(sha)
            tenancy, _error = tenants_for_gate(tree, self._ctx.config.policy.path)
            self._placed = {
                name: (
                    tenancy.tenants_of(h)
                    if tenancy is not None
                    else ((h.tenant,) if h.tenant else ())
                )
                for name, h in inventory.hosts.items()
            }
        return self._placed.get(host, ())


def _takes_in(row: ProposalRow) -> bool:
    """Not decided yet, and its dry run, if done, passed: a host joining it goes in it."""
    state = ProposalState(row.state)
    passed = bool((row.check_summary or {}).get("ok"))
    return state is ProposalState.PROPOSED or (state is ProposalState.CHECKED and passed)
