"""Record: every run an applier makes, kept with its events next to the proposal; Terry's
own transitions, the incident's outcome, and what needs a person.

Every way a proposal stops without a fix (denied, a dry run that could not start, not merged
because its change conflicts with main, failed, rolled back, a rollback that failed, could
not start or is a person's to do, escalated, interrupted) keeps its incident for a person
with one ``attention`` text, written here: what happened and why, then ``Next:`` a concrete
step (a command where there is one)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from terry.appliers.base import Applier, Job, RunKind, RunnerEvent, RunResult
from terry.context import Context
from terry.errors import MergeConflict, RunGoesOn, RunnerError
from terry.incidents import lifecycle as incidents
from terry.proposals.hosts import carried
from terry.proposals.state import ProposalState, get, transition
from terry.store import Store
from terry.store.audit import audit
from terry.store.models import IncidentRow, utcnow
from terry.store.runs import detach, fail_run, finish_run, set_remote, start_run

__all__ = ["Record", "keep_interrupted"]

_DETAIL = 600  # characters of another system's words quoted in one attention text


@dataclass(frozen=True)
class _Kept:
    """What the attention texts say of a proposal: its hosts, applier and where it came from."""

    id: int
    incident_id: int
    hosts: tuple[str, ...]
    applier: str
    source: str
    outcome: str
    check: dict[str, Any]

    @property
    def where(self) -> str:
        return ", ".join(self.hosts) or "its target"

    @property
    def show(self) -> str:
        return f"`terry proposals show {self.id} --events`"

    @property
    def again(self) -> str:
        """What else a person can do about the problem itself."""
        if self.source == "drift" and self.hosts:
            return f"`terry drift fix --limit {','.join(self.hosts)}` proposes a fix again"
        if self.source == "alert":
            return "or fix the problem by hand (the incident closes when its alert resolves)"
        return "or fix the problem by hand"


@dataclass(frozen=True)
class Record:
    ctx: Context

    def run(
        self,
        applier: Applier,
        kind: RunKind,
        proposal_id: int,
        commit: str,
        *,
        hosts: tuple[str, ...] | None = None,
        hold: Path | None = None,
    ) -> RunResult:
        """Ask ``applier`` for one run of the proposal, recorded as a run with its events;
        on ``hosts`` only (a wave, the hosts to roll back) when given; held before its first
        change until ``hold`` says go (``terry.appliers.hold``) when given."""
        store = self.ctx.store
        run_id = start_run(store, proposal_id=proposal_id, kind=kind.value, commit=commit)
        with store.session() as session:
            row = get(session, proposal_id)
            job = Job(
                proposal_id=proposal_id,
                kind=kind,
                commit=commit,
                hosts=hosts or tuple(row.hosts),
                run_dir=self.ctx.config.state_dir / "runs" / str(run_id),
                playbook=row.playbook_path,
                vars_path=row.vars_path,
                branch=row.branch,
                target=row.target,
                params=dict(row.params),
                hold=hold,
                on_remote=lambda remote: set_remote(store, run_id, remote),
            )
        reporter = self.ctx.reporter
        try:
            result = getattr(applier, kind.value)(
                job, lambda e: reporter.event(proposal_id, kind.value, e)
            )
        except RunGoesOn as exc:  # it may still change its hosts: they stay held, for recovery
            events = [e for e in exc.events if isinstance(e, RunnerEvent)]
            detach(store, run_id, proposal_id, job.hosts, events)
            raise
        except RunnerError:
            fail_run(store, run_id, "error")
            raise
        finish_run(store, run_id, result)
        return result

    def move(
        self, proposal_id: int, to: ProposalState, reason: str, *, outcome: str | None = None
    ) -> None:
        """A transition made by Terry itself, optionally recording the outcome text. A move
        to ``failed`` keeps the incident for a person (a rollback that follows says what
        became of it)."""
        transition(
            self.ctx.store,
            proposal_id,
            to,
            actor="terry",
            reason=reason,
            changes={"outcome": outcome} if outcome is not None else None,
        )
        if to is ProposalState.FAILED:
            self.failed(proposal_id, reason)

    def attention(self, proposal_id: int, reason: str, *, quiet: bool = False) -> None:
        """The proposal's incidents need a person, for this reason (also said as progress,
        unless ``quiet``): its own, and, of a storm's, every other one it carries whose
        host's fix is not verified (a denied or rolled-back storm leaves each waiting)."""
        with self.ctx.store.session() as session:
            incident_id = get(session, proposal_id).incident_id
        for each in dict.fromkeys([incident_id, *self.carried(proposal_id, unfixed=True)]):
            incidents.set_attention(self.ctx.store, each, reason)
        if not quiet:
            self.ctx.reporter.step(proposal_id, reason)

    def carried(
        self, proposal_id: int, hosts: Sequence[str] | None = None, *, unfixed: bool = False
    ) -> list[int]:
        """The incidents the proposal carries (``hosts.carried``; ``hosts``: on those hosts
        only); ``unfixed``: only those not marked fixed."""
        found = carried(self.ctx.store, proposal_id, hosts)
        if not unfixed or not found:
            return found
        with self.ctx.store.session() as session:
            fixed = set(
                session.scalars(
                    select(IncidentRow.id).where(
                        IncidentRow.id.in_(found), IncidentRow.fixed_at.is_not(None)
                    )
                )
            )
        return [i for i in found if i not in fixed]

    def undone(self, proposal_id: int, hosts: Sequence[str], reason: str) -> None:
        """The fix was undone on these hosts (a rollback asked for after it verified): their
        incidents are no longer fixed."""
        ids = self.carried(proposal_id, hosts)
        with self.ctx.store.session() as session:
            for incident_id in ids:
                incident = session.get(IncidentRow, incident_id)
                if incident is not None and incident.fixed_at is not None:
                    _mark(
                        session,
                        incident,
                        fixed=False,
                        reason=f"fix undone on its host (proposal {proposal_id}): {reason}",
                    )

    # -- what needs a person, and what they do next -------------------------------------------
    def denied(self, proposal_id: int, reasons: Sequence[str]) -> None:
        """The gate denied the proposal: why, in the dry run's terms when it failed there."""
        p = self._kept(proposal_id)
        unreachable = [str(h) for h in p.check.get("unreachable_hosts") or ()]
        failed = [str(h) for h in p.check.get("failed_hosts") or ()]
        if unreachable:
            hosts = ", ".join(unreachable)
            said = _first(p.check, unreachable) or "no answer"
            text = (
                f"proposal {p.id} denied: the dry run could not reach {hosts} ({said}); "
                f"nothing was applied. Next: {self._reach(unreachable, p.applier)}; the dry "
                f"run's output is in {p.show}; {p.again}"
            )
        elif failed:
            said = _first(p.check, failed) or "see its events"
            text = (
                f"proposal {p.id} denied: its dry run failed on {', '.join(failed)} ({said}); "
                f"nothing was applied. Next: read the failure with {p.show} and fix its cause "
                f"(the remedy's parameters, or the host); {p.again}"
            )
        else:
            why = "; ".join(reasons) or "no reason recorded"
            text = (
                f"proposal {p.id} denied by policy ({_clip(why)}); nothing was applied. "
                f"Next: `terry proposals show {p.id}` shows the decision; fix it by hand, or "
                "change the policy on main (policies/) if it is wrong"
            )
        self.attention(proposal_id, text)

    def not_merged(
        self, proposal_id: int, error: MergeConflict, *, actor: str, from_state: ProposalState
    ) -> None:
        """The proposal's merge conflicts with main as main now is: it is rejected (trying
        again would change nothing) and its incident kept for a person."""
        main, paths = self.ctx.config.main_branch, ", ".join(error.paths)
        changed = f"{main} changed {paths} since its branch was made"
        transition(
            self.ctx.store,
            proposal_id,
            ProposalState.REJECTED,
            actor=actor,
            reason=f"not merged: {error}",
            allowed_from=(from_state,),
            changes={"outcome": f"not merged: {changed}"},
        )
        p = self._kept(proposal_id)
        again = (
            f"`terry incidents retry {p.incident_id}` proposes it again from {main} as it now is"
            if p.source == "alert"
            else f"make the change again on {main} as it now is (run the command that asked "
            "for it again)"
        )
        self.attention(
            proposal_id,
            f"proposal {p.id} was not merged: {changed}, and the two changes conflict; "
            f"nothing was merged or applied. Next: {p.show} shows its change; {again}; "
            f"{p.again}",
        )

    def check_not_started(
        self,
        proposal_id: int,
        error: str,
        *,
        how: str = "could not start",
        setting: str | None = None,
    ) -> None:
        """The dry run could not start at all (ansible missing, an unreadable inventory),
        or ``how`` else it ended without an outcome (a remote run not seen to end).
        ``setting``: the terry.yml key that stopped it (``RunnerError.setting``)."""
        p = self._kept(proposal_id)
        fix = (
            f"set {setting} in terry.yml (`terry inventory validate` checks the hosts against it)"
            if setting
            else "fix what stopped it (`terry inventory validate` checks the inventory)"
        )
        self.attention(
            proposal_id,
            f"proposal {p.id}: its dry run {how} ({_clip(error)}); nothing was "
            f"applied. Next: {fix}, then see {p.show}; {p.again}",
        )

    def failed(self, proposal_id: int, reason: str) -> None:
        """Quiet: a failed apply goes on to its rollback, which says what became of it; an
        apply that could not start is reported by whoever asked for it."""
        p = self._kept(proposal_id)
        self.attention(
            proposal_id,
            f"proposal {p.id} failed on {p.where}: {_clip(reason)}. Next: {p.show} shows "
            f"what happened; once the cause is fixed, `terry proposals apply {p.id}` applies "
            f"it again (or `terry proposals rollback {p.id}` undoes it)",
            quiet=True,
        )

    def rolled_back(self, proposal_id: int, reason: str) -> None:
        p = self._kept(proposal_id)
        undone = "its fix is undone" + ("" if _asked(reason) else " and the problem is still there")
        self.attention(
            proposal_id,
            f"proposal {p.id} was rolled back ({_why(reason, p.outcome)}): {undone}. "
            f"Next: {p.show} shows what happened; fix its cause, then `terry proposals apply "
            f"{p.id}` applies it again; {p.again}",
        )

    def rollback_failed(self, proposal_id: int, reason: str, error: str) -> None:
        p = self._kept(proposal_id)
        why = _why(reason, p.outcome, 500)
        # A rollback that fails where the apply did (the same host and task) is said once.
        same = _where_failed(error) and _where_failed(error) == _where_failed(
            p.outcome.removeprefix(f"{reason}: ")
        )
        how = "the same way" if same else f"({_clip(error, 400)})"
        self.attention(
            proposal_id,
            f"proposal {p.id}: {why}; its rollback failed too, {how}; {p.where} may be left "
            f"half-changed. Next: check {p.where} by hand ({p.show} has every task's "
            f"output), then `terry proposals rollback {p.id}` tries the rollback again",
        )

    def rollback_not_started(self, proposal_id: int, reason: str, error: str) -> None:
        p = self._kept(proposal_id)
        self.attention(
            proposal_id,
            f"proposal {p.id}: {_why(reason, p.outcome)}, and its rollback could not start "
            f"({_clip(error)}). Next: fix what stopped it, then `terry proposals rollback "
            f"{p.id}`",
        )

    def rollback_manual(self, proposal_id: int, reason: str, note: str) -> None:
        """Nothing is undone automatically (the desired state is the reference)."""
        p = self._kept(proposal_id)
        what = (
            f"a rollback was asked for ({_clip(reason)})"
            if _asked(reason)
            else f"the change did not take ({_why(reason, p.outcome)})"
        )
        todo = re.sub(r"^none automatic\W*", "", note.strip(), flags=re.IGNORECASE)
        self.attention(
            proposal_id,
            f"proposal {p.id}: {what}; nothing is rolled back automatically. Next: "
            f"{todo or 'revert its merge commit by hand (git revert -m 1)'}; {p.show} shows "
            "what happened",
        )

    def _reach(self, hosts: Sequence[str], applier: str) -> str:
        if applier != "ansible":
            return f"check that {applier} answers (its settings in terry.yml)"
        sources = " ".join(f"-i {s}" for s in self.ctx.config.inventory)
        return (
            f"check that {', '.join(hosts)} is up and that SSH reaches it (`ansible "
            f"{sources} {hosts[0]} -m ansible.builtin.ping`)"
        )

    def _kept(self, proposal_id: int) -> _Kept:
        return _kept(self.ctx.store, proposal_id)

    # -- the fix ------------------------------------------------------------------------------
    def fixed(self, proposal_id: int) -> None:
        """The proposal's fix is verified: the incident is fixed (its alert may still have to
        resolve), and no longer needs a person."""
        with self.ctx.store.session() as session:
            row = get(session, proposal_id)
            incident = session.get(IncidentRow, row.incident_id)
            if incident is not None:
                _mark(
                    session, incident, fixed=True, reason=f"fix verified (proposal {proposal_id})"
                )
            hosts = list(row.hosts)
        # incidents that rode on its hosts (a storm's second incident on one host)
        self.incidents_fixed(proposal_id, self.riders(proposal_id, hosts, unfixed=True))

    def riders(self, proposal_id: int, hosts: Sequence[str], *, unfixed: bool = False) -> list[int]:
        """The incidents folded into the proposal on these hosts: a storm's second incident
        on a host another incident brought (``incidents.folded_into``); ``unfixed``: only
        those not marked fixed yet."""
        if not hosts:
            return []
        query = select(IncidentRow.id).where(
            IncidentRow.folded_into == proposal_id, IncidentRow.host.in_(list(hosts))
        )
        if unfixed:
            query = query.where(IncidentRow.fixed_at.is_(None))
        with self.ctx.store.session() as session:
            return list(session.scalars(query.order_by(IncidentRow.id)))

    def incidents_fixed(self, proposal_id: int, incident_ids: Sequence[int]) -> None:
        """The fix is verified on the hosts these incidents were raised for (a storm's
        proposal: each host's own incident): fixed, and no longer needing a person."""
        with self.ctx.store.session() as session:
            for incident_id in dict.fromkeys(incident_ids):
                incident = session.get(IncidentRow, incident_id)
                if incident is not None:
                    _mark(
                        session,
                        incident,
                        fixed=True,
                        reason=f"fix verified on its host (proposal {proposal_id})",
                    )

    def state(self, proposal_id: int) -> ProposalState:
        with self.ctx.store.session() as session:
            return ProposalState(get(session, proposal_id).state)


def keep_interrupted(store: Store, proposal_id: int) -> None:
    """An apply whose process died (``interrupted``) keeps its incident for a person."""
    p = _kept(store, proposal_id)
    incidents.set_attention(
        store,
        p.incident_id,
        f"proposal {p.id} was interrupted: the process applying it stopped mid-run on "
        f"{p.where}, and it is not re-applied automatically. Next: check {p.where}, then "
        f"`terry proposals rollback {p.id}` (undo) or `terry proposals apply {p.id}` "
        "(apply again)",
    )


def _kept(store: Store, proposal_id: int) -> _Kept:
    with store.session() as session:
        row = get(session, proposal_id)
        incident = session.get(IncidentRow, row.incident_id)
        return _Kept(
            id=proposal_id,
            incident_id=row.incident_id,
            hosts=tuple(row.hosts),
            applier=row.applier,
            source=incident.source if incident is not None else "alert",
            outcome=row.outcome or "",
            check=dict(row.check_summary or {}),
        )


def _clip(text: str, limit: int = _DETAIL) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _why(reason: str, outcome: str, limit: int = _DETAIL) -> str:
    """Why it was rolled back: ``reason`` (apply failed, verification failed, requested by
    someone), told by the proposal's outcome when that says how (``apply failed: ...``)."""
    return _clip(outcome if outcome.startswith(reason) else reason, limit)


def _where_failed(message: str) -> str:
    """``host: task`` of a failure message (``RunResult.failure_messages``)."""
    parts = message.split(": ", 2)
    return ": ".join(parts[:2]) if len(parts) == 3 else ""


def _asked(reason: str) -> bool:
    """Whether a person asked for the rollback (``terry proposals rollback``)."""
    return reason.startswith("requested by ")


def _first(check: dict[str, Any], hosts: Sequence[str]) -> str:
    """The dry run's first failure message about one of ``hosts``."""
    for message in check.get("messages") or ():
        text = str(message)
        if any(text.startswith(f"{h}:") for h in hosts):
            return _clip(text, 300)
    return ""


def _mark(session: Session, incident: IncidentRow, *, fixed: bool, reason: str) -> None:
    """The incident's fix verified (fixed, no longer needing a person) or undone, audited."""
    incident.fixed_at = utcnow() if fixed else None
    if fixed:
        incident.attention = None
    audit(
        session,
        entity="incident",
        entity_id=incident.id,
        actor="terry",
        from_state=incident.state,
        to_state=incident.state,
        reason=reason[:2000],
    )
