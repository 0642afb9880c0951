"""Apply: the merged commit carried to the hosts by the proposal's applier, under per-host
database locks, then verified. A failed apply or a failed verification rolls back; a
verification that cannot tell (``unknown``) escalates to a person and is never recorded
as verified.

Right before the applier runs, under the locks, what the apply acts on is re-checked
(``terry.steps.precheck``): the commit carries no change on main that nobody gated (else
``MainNotGated``, nothing applied), and the problem still holds (else the proposal is
withdrawn and its incident closed as resolved by itself).

When the plan says so (``Plan.verify_with_apply``, from the remedy) and the applier can
(``apply_and_verify``), the applier's verify runs in the apply's own run: one start fewer.
The run's verify part is still recorded as a verify run and judged as the applier's check;
the checks after it (Prometheus) run as before."""

from __future__ import annotations

import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from terry.appliers.base import Job, OnEvent, RunKind, RunResult
from terry.appliers.hold import Hold, can_hold
from terry.appliers.registry import Appliers
from terry.context import Context
from terry.errors import RunGoesOn, RunnerError
from terry.incidents.lifecycle import set_attention
from terry.proposals.confidence import revised
from terry.proposals.hosts import HostState, ProposalHost, hosts_of, set_hosts
from terry.proposals.plan import APPLIER, Plan
from terry.proposals.state import MERGED_STATES, ProposalState, get, transition
from terry.proposals.waves import Wave, judged_waves, plan_waves
from terry.steps.canary import Watch
from terry.steps.precheck import Precheck
from terry.steps.record import Record
from terry.steps.rollback import Rollback
from terry.steps.verify import Verify
from terry.store.locks import host_locks
from terry.verify.judge import Outcome

__all__ = ["Apply"]

# A wave whose apply run never started (refused before any change): nothing to roll back.
_NOT_STARTED = "apply could not start: "
# A wave whose run Terry stopped watching before it ended (RunGoesOn): nothing may act on
# its hosts (no rollback) until recovery sees it ended and frees them.
_GOES_ON = "apply not seen to end: "
_UNTOUCHABLE = (_NOT_STARTED, _GOES_ON)

# A proposal applied in one run: the state each of its hosts ends in.
_PROPOSAL_HOST_STATE = {
    ProposalState.VERIFIED: HostState.VERIFIED,
    ProposalState.FAILED: HostState.FAILED,
    ProposalState.ROLLED_BACK: HostState.ROLLED_BACK,
    ProposalState.ESCALATED: HostState.UNKNOWN,
}

_HOST_STATE = {
    Outcome.VERIFIED: HostState.VERIFIED,
    Outcome.FAILED: HostState.FAILED,
    Outcome.UNKNOWN: HostState.UNKNOWN,
}


@dataclass
class _Together:
    """The applier seen by ``Record.run`` for an apply that verifies in the same run: its
    ``apply`` is the fix's part; the verify's part is kept for the verify step."""

    applier: Any
    verified: RunResult | None = field(default=None)

    def apply(self, job: Job, on_event: OnEvent) -> RunResult:
        fixed, self.verified = self.applier.apply_and_verify(job, on_event)
        return fixed


@dataclass(frozen=True)
class Apply:
    ctx: Context
    appliers: Appliers
    record: Record
    verify: Verify
    rollback: Rollback
    precheck: Precheck

    @property
    def watch(self) -> Watch:
        return Watch(self.ctx)

    def __call__(self, proposal_id: int, *, actor: str) -> ProposalState:
        state = self._applied(proposal_id, actor=actor)
        self._hosts_follow(proposal_id, state)
        return state

    def _hosts_follow(self, proposal_id: int, state: ProposalState) -> None:
        """Hosts applied together in one run (no waves) end as their proposal did."""
        ended = _PROPOSAL_HOST_STATE.get(state)
        if ended is None:
            return
        with self.ctx.store.session() as session:
            row = get(session, proposal_id)
            outcome, plan = (
                row.outcome or state.value,
                Plan.from_json(row.plan, applier=row.applier),
            )
            if plan.in_waves(len(row.hosts)):
                return  # each host's outcome is its own (_rollout)
        pending = [
            h.host
            for h in hosts_of(self.ctx.store, proposal_id)
            if h.state not in (HostState.QUEUED, HostState.MOVED)
        ]
        set_hosts(self.ctx.store, proposal_id, dict.fromkeys(pending, (ended, outcome)))

    def _applied(self, proposal_id: int, *, actor: str) -> ProposalState:
        ctx, record = self.ctx, self.record
        with ctx.store.session() as session:
            row = get(session, proposal_id)
            hosts, merge_sha, applier = tuple(row.hosts), row.merge_sha, row.applier
            plan = Plan.from_json(row.plan, applier=row.applier)
        runner = ctx.config.runner
        ttl = timedelta(seconds=runner.timeout * 3 + 60)
        with host_locks(
            ctx.store,
            hosts,
            proposal_id=proposal_id,
            ttl=ttl,
            wait=runner.lock_wait,
            reap=self.appliers.reap,  # a dead holder's lock is freed, not waited out
        ):
            healed = self._recheck(proposal_id, merge_sha)
            if healed is not None:
                return healed
            transition(
                ctx.store,
                proposal_id,
                ProposalState.APPLYING,
                actor=actor,
                verb="apply",
                reason=f"apply {str(merge_sha)[:10]} on {', '.join(hosts)}",
                allowed_from=MERGED_STATES,
            )
            assert merge_sha is not None
            ctx.reporter.step(proposal_id, f"applying on {', '.join(hosts)}")
            chosen = self.appliers.get(applier)
            together = (
                _Together(chosen)
                if plan.verify_with_apply
                and APPLIER in plan.verify
                and callable(getattr(chosen, "apply_and_verify", None))
                else None
            )
            if plan.in_waves(len(hosts)):
                return self._rollout(proposal_id, hosts, merge_sha, chosen, together is not None)
            try:
                result = record.run(together or chosen, RunKind.APPLY, proposal_id, merge_sha)
            except RunnerError as exc:
                record.move(proposal_id, ProposalState.FAILED, str(exc), outcome=str(exc))
                raise
            if not result.ok:
                why = "; ".join(result.failure_messages()[:5]) or f"ended {result.status.value}"
                record.move(
                    proposal_id,
                    ProposalState.FAILED,
                    f"apply failed: {why}",
                    outcome=f"apply failed: {why}",
                )
                self.rollback(proposal_id, merge_sha, reason="apply failed")
                return record.state(proposal_id)
            record.move(proposal_id, ProposalState.APPLIED, f"applied: {result.changed} change(s)")
            verification = self.verify(
                proposal_id, merge_sha, ran=together.verified if together else None
            )
            evidence = "; ".join(verification.evidence)
            if verification.outcome is Outcome.VERIFIED:
                record.move(
                    proposal_id, ProposalState.VERIFIED, evidence, outcome=f"verified: {evidence}"
                )
                record.fixed(proposal_id)
            elif verification.outcome is Outcome.FAILED:
                record.move(
                    proposal_id,
                    ProposalState.FAILED,
                    f"verification failed: {evidence}",
                    outcome=f"verification failed: {evidence}",
                )
                self.rollback(proposal_id, merge_sha, reason="verification failed")
            else:
                record.move(
                    proposal_id,
                    ProposalState.ESCALATED,
                    f"verification unknown: {evidence}",
                    outcome=f"unknown: {evidence}",
                )
                record.attention(
                    proposal_id,
                    f"proposal {proposal_id}: verification could not tell ({evidence}). "
                    f"Next: check {', '.join(hosts)}, then `terry proposals rollback "
                    f"{proposal_id}` (undo) or `terry proposals apply {proposal_id}` (again)",
                )
        return record.state(proposal_id)

    # -- many hosts: waves, each host its own outcome ----------------------------------------
    def _rollout(
        self,
        proposal_id: int,
        hosts: tuple[str, ...],
        merge_sha: str,
        chosen: Any,
        together: bool,
    ) -> ProposalState:
        """Apply in waves (``terry.proposals.waves``), each host verified on its own. A
        failed canary stops the rollout: its hosts are rolled back, the rest are held for a
        person. A failure in a later wave rolls back the hosts that failed and holds the
        waves after it. Every host keeps its own outcome (``terry.proposals.hosts``).

        A canary that is not watched (``_watching``) is judged as soon as its run and its
        checks are done, so the next wave's run starts beside the canary's, held
        (``terry.appliers.hold``): it starts and probes its hosts meanwhile, and changes
        nothing until the canary is judged verified (go); else it is stopped."""
        ctx, record, store = self.ctx, self.record, self.ctx.store
        known = {h.host: h for h in hosts_of(store, proposal_id)}
        canary = ctx.config.canary
        # the plan the gate judged (a setting changed since, or an environment, does not
        # redraw it); planned now only for a proposal gated before plans were recorded
        waves = judged_waves(
            [
                (h, known[h].environment, known[h].wave) if h in known else (h, None, None)
                for h in hosts
            ]
        ) or plan_waves(
            [(h, known[h].environment if h in known else None) for h in hosts],
            min_hosts=canary.min_hosts,
            percent=canary.percent,
        )
        outcome: dict[str, tuple[HostState, str]] = {}
        applied = False
        stopped: str | None = None
        canary_failed = False
        early: _Early | None = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="terry-held") as pool:
            try:
                for n, wave in enumerate(waves):
                    if stopped is not None:
                        for host in wave.hosts:
                            outcome[host] = (HostState.HELD, f"not applied: {stopped}")
                        continue
                    ctx.reporter.step(
                        proposal_id,
                        f"wave {wave.index}{' (canary)' if wave.canary else ''}: "
                        + ", ".join(wave.hosts),
                    )
                    before = self.watch.read(hosts) if wave.canary else {}
                    if early is not None and early.wave is wave:
                        ran, early = _go(early), None
                    else:
                        if wave.canary and n + 1 < len(waves) and self._starts_early(chosen):
                            early = self._start_held(
                                pool, proposal_id, merge_sha, chosen, together, waves[n + 1]
                            )
                        ran = self._ran(proposal_id, merge_sha, chosen, together, wave.hosts)
                    found = self._judged(proposal_id, merge_sha, ran)
                    if not applied:
                        applied = True
                        ok = [h for h in wave.hosts if found[h][0] is not HostState.FAILED]
                        ran_on = _applied(ran)  # its fix ran there, verified or not
                        unverified = len(ran_on) - len([h for h in ran_on if h in ok])
                        record.move(
                            proposal_id,
                            ProposalState.APPLIED if ok else ProposalState.FAILED,
                            f"wave {wave.index} applied on {len(ran_on)} of {len(wave.hosts)} "
                            f"host(s)"
                            + (f", {unverified} failed verification" if unverified else ""),
                        )
                    if (
                        wave.canary
                        and self._watching
                        and all(found[h][0] is HostState.VERIFIED for h in wave.hosts)
                    ):
                        found = self._watched(
                            proposal_id, merge_sha, wave.hosts, hosts, before, found
                        )
                    bad = {h: v for h, v in found.items() if v[0] is not HostState.VERIFIED}
                    if bad and early is not None:
                        self._stop(proposal_id, early)  # before anything is rolled back
                        early = None
                    if wave.canary and bad:
                        canary_failed = True
                        why = "; ".join(_on(h, d) for h, (_s, d) in sorted(bad.items()))
                        stopped = f"the canary failed ({why[:1500]})"
                        found = self._undo(
                            proposal_id, merge_sha, found, wave.hosts, "canary failed"
                        )
                    elif bad:
                        stopped = f"wave {wave.index} failed on {', '.join(sorted(bad))}"
                        refused = sorted(d for _s, d in bad.values() if d.startswith(_UNTOUCHABLE))
                        if refused:  # never started, or not seen to end: say why
                            stopped += f" ({refused[0][:1500]})"
                        failed = tuple(h for h, v in bad.items() if v[0] is HostState.FAILED)
                        found = self._undo(
                            proposal_id, merge_sha, found, failed, _why_undone(bad, failed)
                        )
                    elif wave.canary:
                        self._confidence(proposal_id, "passed")
                    outcome.update(found)
                    set_hosts(store, proposal_id, found, wave=wave.index)
            finally:
                if early is not None:  # something went wrong: never left waiting for a word
                    self._stop(proposal_id, early)
        held = {h: v for h, v in outcome.items() if v[0] is HostState.HELD}
        set_hosts(store, proposal_id, held)
        return self._ended(proposal_id, outcome, canary_failed, stopped, known)

    def _starts_early(self, chosen: Any) -> bool:
        """Whether the wave after the canary starts beside it, held: the applier can hold a
        run, and the canary is judged right after its own run (no watch to outlast)."""
        return can_hold(chosen) and not self._watching

    def _start_held(
        self,
        pool: ThreadPoolExecutor,
        proposal_id: int,
        merge_sha: str,
        chosen: Any,
        together: bool,
        wave: Wave,
    ) -> _Early:
        """The run of ``wave`` started now, held until ``_Early.hold`` says go."""
        holds = self.ctx.config.state_dir / "runs" / "holds"
        hold = Hold(holds / f"{proposal_id}-{wave.index}-{uuid.uuid4().hex}")
        self.ctx.reporter.step(
            proposal_id,
            f"wave {wave.index}'s run starts now, held: it changes nothing before the canary "
            "is judged",
        )
        future = pool.submit(
            self._ran, proposal_id, merge_sha, chosen, together, wave.hosts, hold.path
        )
        return _Early(wave, hold, future)

    def _stop(self, proposal_id: int, early: _Early) -> None:
        """Tell a held run to stop and wait for it to end. It changed nothing, so how it
        ended changes nothing of what Terry does next: an error is said, not raised."""
        early.hold.stop()
        try:
            early.future.result()
        except Exception as exc:  # the store, the reporter: the run itself changed nothing
            self.ctx.reporter.step(
                proposal_id, f"wave {early.wave.index}'s held run ended in error: {exc}"
            )
        finally:
            early.hold.path.unlink(missing_ok=True)

    def _ran(
        self,
        proposal_id: int,
        merge_sha: str,
        chosen: Any,
        together: bool,
        wave: tuple[str, ...],
        hold: Path | None = None,
    ) -> _Ran:
        """One wave's apply run (with its verify part when ``together``)."""
        both = _Together(chosen) if together else None
        try:
            result = self.record.run(
                both or chosen, RunKind.APPLY, proposal_id, merge_sha, hosts=wave, hold=hold
            )
        except RunGoesOn as exc:
            return _Ran(wave, None, None, f"{_GOES_ON}{exc}")
        except RunnerError as exc:
            return _Ran(wave, None, None, f"{_NOT_STARTED}{exc}")
        return _Ran(wave, result, both.verified if both else None, None)

    def _judged(
        self, proposal_id: int, merge_sha: str, ran: _Ran
    ) -> dict[str, tuple[HostState, str]]:
        """Each host of a wave's run: failed where its fix failed, else as verified."""
        wave, result = ran.hosts, ran.result
        if result is None:
            return dict.fromkeys(wave, (HostState.FAILED, str(ran.refused)))
        fine = _applied(ran)
        found: dict[str, tuple[HostState, str]] = {}
        for host in wave:
            if host not in fine:
                said = [m for m in result.failure_messages() if m.startswith(f"{host}:")]
                found[host] = (
                    HostState.FAILED,
                    "apply failed: " + ("; ".join(said[:3]) or f"run ended {result.status.value}"),
                )
        if fine:
            checked = self.verify.per_host(proposal_id, merge_sha, fine, ran=ran.verified)
            for host, verification in checked.items():
                found[host] = (_HOST_STATE[verification.outcome], "; ".join(verification.evidence))
        return found

    @property
    def _watching(self) -> bool:
        """Whether a canary that verified is watched: a watch of 0 seconds with no
        ``canary.queries`` would only repeat the verification that just passed."""
        return self.ctx.config.canary.watch > 0 or bool(self.watch.queries)

    def _watched(
        self,
        proposal_id: int,
        merge_sha: str,
        wave: tuple[str, ...],
        hosts: tuple[str, ...],
        before: dict[tuple[str, str], float | None],
        found: dict[str, tuple[HostState, str]],
    ) -> dict[str, tuple[HostState, str]]:
        """The canary after its watch: its verification still passes, and no configured
        query got worse on any host of the proposal (terry.steps.canary)."""
        seconds = self.ctx.config.canary.watch
        self.ctx.reporter.step(proposal_id, f"watching the canary for {seconds:g}s")
        self.watch.wait()
        again = {
            host: (_HOST_STATE[v.outcome], "; ".join(v.evidence))
            for host, v in self.verify.per_host(proposal_id, merge_sha, wave).items()
        }
        return self.watch.judge(
            found, again, before, self.watch.read(hosts), proposal_id=proposal_id
        )

    def _undo(
        self,
        proposal_id: int,
        merge_sha: str,
        found: dict[str, tuple[HostState, str]],
        hosts: tuple[str, ...],
        reason: str,
    ) -> dict[str, tuple[HostState, str]]:
        """Roll back ``hosts``; their states say what became of them. A host whose apply
        never started (refused before any change: the identity probe) has nothing to undo,
        and one whose run was not seen to end may not be touched yet (recovery holds it):
        either stays failed with its reason."""
        hosts = tuple(h for h in hosts if not found[h][1].startswith(_UNTOUCHABLE))
        if not hosts:
            return found
        done, said = self.rollback.hosts(proposal_id, merge_sha, hosts, reason=reason)
        undone = dict(found)
        for host in hosts:
            was = found[host][1]
            state = HostState.ROLLED_BACK if done else HostState.ROLLBACK_FAILED
            undone[host] = (state, f"{was}; {said}"[:2000])
        return undone

    def _ended(
        self,
        proposal_id: int,
        outcome: dict[str, tuple[HostState, str]],
        canary_failed: bool,
        stopped: str | None,
        known: dict[str, ProposalHost],
    ) -> ProposalState:
        """The proposal's own state from its hosts': verified when every host is; rolled
        back (canary failed, nothing left changed); else escalated with every host's end."""
        record, store = self.record, self.ctx.store
        counts: dict[str, list[str]] = {}
        for host, (state, _d) in sorted(outcome.items()):
            counts.setdefault(state.value, []).append(host)
        told = "; ".join(f"{state}: {', '.join(names)}" for state, names in counts.items())
        verified = counts.get(HostState.VERIFIED.value, [])
        incidents_of = {h: p.incident_id for h, p in known.items() if p.incident_id}
        record.incidents_fixed(
            proposal_id,
            [incidents_of[h] for h in verified if h in incidents_of]
            + record.riders(proposal_id, verified),
        )
        if len(verified) == len(outcome):
            text = f"verified on all {len(outcome)} hosts"
            record.move(proposal_id, ProposalState.VERIFIED, text, outcome=f"verified: {text}")
            record.fixed(proposal_id)
            return record.state(proposal_id)
        left = sorted(h for h, (s, _d) in outcome.items() if s is not HostState.VERIFIED)
        self._confidence(proposal_id, "failed" if canary_failed else None)
        clean = all(s in (HostState.ROLLED_BACK, HostState.HELD) for s, _d in outcome.values())
        why = f"{stopped or 'some hosts did not verify'}; {told}"[:4000]
        if clean:  # nothing left changed: every host applied was rolled back
            ended = "canary failed, rolled back" if canary_failed else "rolled back"
            transition(
                store,
                proposal_id,
                ProposalState.ROLLED_BACK,
                actor="terry",
                reason=why,
                allowed_from=(ProposalState.APPLIED, ProposalState.FAILED),
                changes={"outcome": f"{ended}: {told}"[:4000]},
            )
        elif record.state(proposal_id) is ProposalState.APPLIED:
            record.move(proposal_id, ProposalState.ESCALATED, why, outcome=f"partly: {told}")
        else:  # failed from its first wave on, and not all undone: it stays failed
            with store.session() as session:
                get(session, proposal_id).outcome = f"failed: {why}"[:4000]
        text = (
            f"proposal {proposal_id}: {stopped or 'not every host verified'}. Hosts: {told}. "
            f"Next: `terry proposals show {proposal_id}` shows each host's outcome; fix the "
            f"cause, then `terry proposals apply {proposal_id}` rolls it out again"
        )
        record.attention(proposal_id, text[:3000])
        for host in left:
            incident_id = incidents_of.get(host)
            if incident_id is not None:
                set_attention(store, incident_id, text[:3000])
        for rider in record.riders(proposal_id, left, unfixed=True):
            set_attention(store, rider, text[:3000])  # a second incident on such a host
        return record.state(proposal_id)

    def _confidence(self, proposal_id: int, canary: str | None) -> None:
        """The proposal's confidence, revised by its canary's outcome."""
        with self.ctx.store.session() as session:
            row = get(session, proposal_id)
            if row.confidence_score is None or canary is None:
                return
            # parts stored since 0024; before, the score alone stands for them
            parts = row.confidence_parts or {"before": row.confidence_score}
            now = revised(parts, canary)
            row.confidence_score, row.confidence_parts = now.value, now.parts

    # -- re-check before acting (terry.steps.precheck) --------------------------------------
    def _recheck(self, proposal_id: int, merge_sha: str | None) -> ProposalState | None:
        """Raise ``MainNotGated`` if ``merge_sha`` carries an ungated change on main; the
        proposal's new state when the applier of a host changed on main since it was judged
        or its problem healed before the fix (nothing applied), or None: go ahead."""
        with self.ctx.store.session() as session:
            state = ProposalState(get(session, proposal_id).state)
        if merge_sha is None or state not in MERGED_STATES:  # refused below, in its words
            return None
        self.precheck.gated(proposal_id, merge_sha)
        if state is ProposalState.MERGED and (moved := self.precheck.applier_moved(proposal_id)):
            return self.precheck.set_aside(proposal_id, moved)
        gone = self.precheck.problem_gone(proposal_id, merge_sha)
        if gone is None:
            return None
        return self.precheck.withdraw(proposal_id, gone)


def _why_undone(bad: dict[str, tuple[HostState, str]], failed: tuple[str, ...]) -> str:
    """Why a later wave's failed hosts are rolled back: their fix failed (the apply run
    said so on them), their verification did, or some of each."""
    fix = {h for h in failed if bad[h][1].startswith("apply failed")}
    if fix == set(failed):
        return "the fix failed"
    return "verification failed" if not fix else "the fix or its verification failed"


@dataclass(frozen=True)
class _Ran:
    """A wave's apply run: its result (None: refused before any change, or not seen to end,
    and why) and the verify part of the same run, if it had one."""

    hosts: tuple[str, ...]
    result: RunResult | None
    verified: RunResult | None
    refused: str | None


@dataclass(frozen=True)
class _Early:
    """The run of the wave after the canary, started beside it and held."""

    wave: Wave
    hold: Hold
    future: Future[_Ran]


def _on(host: str, detail: str) -> str:
    """``host: detail``, naming the host once (a verification's evidence may begin with it)."""
    return detail if detail.startswith(f"{host}:") else f"{host}: {detail}"


def _applied(ran: _Ran) -> tuple[str, ...]:
    """The hosts of a wave whose fix ran without failing (verified or not)."""
    if ran.result is None:
        return ()
    stats = ran.result.stats
    return tuple(
        h
        for h in ran.hosts
        if (s := stats.get(h)) is not None and not s.failures and not s.unreachable
    )


def _go(early: _Early) -> _Ran:
    """Let a held run on, and wait for it to end."""
    early.hold.go()
    try:
        return early.future.result()
    finally:
        early.hold.path.unlink(missing_ok=True)
