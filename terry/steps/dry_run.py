"""Dry run: the proposal commit checked by each applier its plan names, in order (an
inventory edit that converges: the edited inventory first, then the desired state in check
mode). The first that fails is the dry run's result; otherwise the last one's. Its summary
and diff are recorded on the proposal for the gate and for reviewers.

It runs under the same per-host locks as an apply (a shorter lease, the same wait), so the
diff the gate judges is never taken while another proposal is changing one of its hosts. A
proposal whose hosts stay busy longer than ``runner.lock_wait`` stays ``proposed`` and
queued; the worker carries it on once they are free."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from terry.appliers.base import APPLIERS, RunKind, RunResult
from terry.appliers.registry import Appliers
from terry.context import Context
from terry.errors import RunGoesOn, RunnerError, StateError
from terry.proposals.plan import Plan
from terry.proposals.state import ProposalState, get, transition
from terry.remedies.estimate import estimates
from terry.steps.record import Record
from terry.store.locks import host_locks

__all__ = ["DryRun"]


@dataclass(frozen=True)
class DryRun:
    ctx: Context
    appliers: Appliers
    record: Record

    def __call__(self, proposal_id: int) -> RunResult:
        ctx = self.ctx
        with ctx.store.session() as session:
            row = get(session, proposal_id)
            hosts, plan = tuple(row.hosts), Plan.from_json(row.plan, applier=row.applier)
        runner = ctx.config.runner
        # each check is one run of at most runner.timeout; an apply's lease covers three
        ttl = timedelta(seconds=runner.timeout * max(1, len(plan.check)) + 60)
        with host_locks(
            ctx.store,
            hosts,
            proposal_id=proposal_id,
            ttl=ttl,
            wait=runner.lock_wait,
            reap=self.appliers.reap,
        ):
            return self._checked(proposal_id)

    def _checked(self, proposal_id: int) -> RunResult:
        store, reporter = self.ctx.store, self.ctx.reporter
        with store.session() as session:  # read again: it may have waited for its hosts
            row = get(session, proposal_id)
            commit, plan = row.commit_sha, Plan.from_json(row.plan, applier=row.applier)
            state, hosts = ProposalState(row.state), tuple(row.hosts)
        if state is not ProposalState.PROPOSED:
            raise StateError(f"proposal {proposal_id} was dry-run meanwhile: it is {state.value}")
        assert commit is not None
        result: RunResult | None = None
        missed: list[str] = []
        try:
            for name in plan.check:
                applier = self.appliers.get(name)
                reporter.step(proposal_id, f"dry run: {applier.check_words}")
                result = self.record.run(applier, RunKind.CHECK, proposal_id, commit)
                missed = _missed(name, hosts, result)
                if not result.ok or missed:
                    break
        except RunnerError as exc:
            # a run that goes on (RunGoesOn) did start: it was not seen to end
            how = "was not seen to end" if isinstance(exc, RunGoesOn) else "could not start"
            transition(
                store,
                proposal_id,
                ProposalState.FAILED,
                actor="terry",
                reason=f"dry run {how}: {exc}",
                changes={"outcome": str(exc)},
            )
            self.record.check_not_started(proposal_id, str(exc), how=how, setting=exc.setting)
            raise
        assert result is not None, "a plan names at least one applier to check with"
        summary = result.summary()
        summary["messages"] = result.failure_messages()[:20]
        if missed:  # a host the run never matched was not checked: the dry run did not pass
            said = (
                f"the dry run did not run on {', '.join(missed)} (no task reported on them: "
                "the playbook's host pattern or the inventory does not name them)"
            )
            summary.update(ok=False, missed_hosts=missed, messages=[said, *summary["messages"]])
        # What the remedy itself estimates its fix would achieve, per host (the gate's
        # check.estimates): a fix that falls short goes to a person.
        summary["estimates"] = estimates(result.events)
        diff = result.diff_text()
        # An unreachable host is said to be one: the remedy is not what failed there.
        unreachable = ", ".join(result.unreachable_hosts)
        verdict = "passed" if summary["ok"] else "failed"
        if unreachable:
            verdict = f"failed, could not reach {unreachable}"
        elif missed:
            verdict = f"failed, did not run on {', '.join(missed)}"
        transition(
            store,
            proposal_id,
            ProposalState.CHECKED,
            actor="terry",
            reason=f"dry run {verdict}: {result.changed} change(s)",
            changes={"check_diff": diff, "check_summary": summary},
        )
        shown = "\n".join(diff.splitlines()[:12]) + ("\n    …" if diff.count("\n") >= 12 else "")
        reporter.step(
            proposal_id,
            f"check-mode diff ({result.changed} change(s), "
            f"{'passed' if summary['ok'] else 'FAILED' + verdict.removeprefix('failed')})"
            f":\n{shown}",
        )
        return result


def _missed(applier: str, hosts: tuple[str, ...], result: RunResult) -> list[str]:
    """The proposal's hosts a playbook run reported nothing on: ansible never matched them
    (an unreachable or skipped host is still reported). Other appliers' runs are not of
    hosts."""
    registration = APPLIERS.get(applier)
    if registration is None or not registration.playbooks:
        return []
    return [h for h in hosts if h not in result.stats]
