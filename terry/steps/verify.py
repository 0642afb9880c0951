"""Verify: the checks the proposal's plan names, in order, combined. A check that cannot
tell is ``unknown`` (never ``verified``); a failed one fails the whole.

Checks by name (remedy data, ``Remedy.verified_by``):

- ``applier``: the applier's own verification (the remedy's verify tasks, ``--tags verify``;
  Argo CD: the application Synced at the merge and Healthy); when the apply already ran
  them in its own run (``ran``), that part is recorded as the verify run and judged,
  nothing is run again;
- ``prometheus``: the remedy's PromQL check on each host, when Prometheus is configured;
- ``inventory``: the inventory on main says what an inventory edit asked;
- ``drift-scan``: a drift scan of the hosts finds nothing to change (runs only when every
  check before it verified).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from terry.appliers.base import EventStatus, Job, OnEvent, RunKind, RunResult, RunStatus
from terry.appliers.registry import Appliers
from terry.context import Context
from terry.errors import RunnerError, TerryError
from terry.incidents import lifecycle as incidents
from terry.proposals.plan import Plan
from terry.proposals.state import get
from terry.remedies.catalogue import PrometheusVerify
from terry.steps.record import Record
from terry.store.models import ProposalRow
from terry.verify.freshness import Freshness, await_scrape
from terry.verify.judge import Outcome, Verification, combine, judge_run, query_prometheus

__all__ = ["CHECKS", "Verify"]


@dataclass(frozen=True)
class _Proposal:
    id: int
    incident_id: int
    remedy: str
    hosts: tuple[str, ...]
    params: dict[str, object]
    applier: str
    merge_sha: str
    ran: RunResult | None = None  # the verify part of the apply's own run, if it had one

    @classmethod
    def of(cls, row: ProposalRow, merge_sha: str, ran: RunResult | None) -> _Proposal:
        return cls(
            row.id,
            row.incident_id,
            row.remedy,
            tuple(row.hosts),
            dict(row.params),
            row.applier,
            merge_sha,
            ran,
        )


@dataclass(frozen=True)
class _Ran:
    """An applier whose verify is a run that already happened (the apply's verify part)."""

    result: RunResult

    def verify(self, job: Job, on_event: OnEvent) -> RunResult:
        return self.result


@dataclass(frozen=True)
class Verify:
    ctx: Context
    appliers: Appliers
    record: Record

    def __call__(
        self, proposal_id: int, merge_sha: str, *, ran: RunResult | None = None
    ) -> Verification:
        self.ctx.reporter.step(proposal_id, "verifying")
        with self.ctx.store.session() as session:
            row = get(session, proposal_id)
            plan = Plan.from_json(row.plan, applier=row.applier)
            proposal = _Proposal.of(row, merge_sha, ran)
        checks: list[Verification] = []
        for name in plan.verify:
            check = CHECKS[name]
            if check.after_verified and any(c.outcome is not Outcome.VERIFIED for c in checks):
                continue
            found = check.method(self, proposal)
            if found is not None:  # None: the check does not apply (nothing configured)
                checks.append(found)
        found = combine(*checks)
        if found.outcome is Outcome.VERIFIED and plan.resolves:
            incidents.resolve(
                self.ctx.store, proposal.incident_id, f"{plan.resolves}: {found.evidence[0]}"
            )
        return found

    def per_host(
        self,
        proposal_id: int,
        merge_sha: str,
        hosts: tuple[str, ...],
        *,
        ran: RunResult | None = None,
    ) -> dict[str, Verification]:
        """Each of ``hosts`` verified on its own (a wave of a storm's proposal): the checks
        of ``terry.proposals.plan.PER_HOST`` the plan names, combined per host. A host the
        verify run does not report on is ``unknown``, never verified."""
        self.ctx.reporter.step(proposal_id, f"verifying {', '.join(hosts)}")
        with self.ctx.store.session() as session:
            row = get(session, proposal_id)
            plan = Plan.from_json(row.plan, applier=row.applier)
            proposal = replace(_Proposal.of(row, merge_sha, ran), hosts=hosts)
        checks: dict[str, list[Verification]] = {h: [] for h in hosts}
        if "applier" in plan.verify:
            for host, found in self._applier_per_host(proposal).items():
                checks[host].append(found)
        if "prometheus" in plan.verify:
            fresh = self._fresh(proposal)  # one wait for the wave's next scrape, not one each
            for host in hosts:
                found = self._prometheus(replace(proposal, hosts=(host,)), fresh=fresh)
                if found is not None:
                    checks[host].append(found)
        return {h: combine(*found) for h, found in checks.items()}

    def _applier_per_host(self, p: _Proposal) -> dict[str, Verification]:
        if p.ran is not None:
            result = self.record.run(_Ran(p.ran), RunKind.VERIFY, p.id, p.merge_sha, hosts=p.hosts)
        else:
            try:
                applier = self.appliers.get(p.applier)
                result = self.record.run(applier, RunKind.VERIFY, p.id, p.merge_sha, hosts=p.hosts)
            except RunnerError as exc:
                why = Verification(Outcome.UNKNOWN, (f"verify run could not start: {exc}",))
                return dict.fromkeys(p.hosts, why)
        return {h: judge_host(result, h) for h in p.hosts}

    # -- the checks -----------------------------------------------------------------------
    def _applier(self, p: _Proposal) -> Verification:
        if p.ran is not None:
            found = judge_run(self.record.run(_Ran(p.ran), RunKind.VERIFY, p.id, p.merge_sha))
            return Verification(
                found.outcome, (*found.evidence, "(verify tasks ran in the apply's run)")
            )
        try:
            applier = self.appliers.get(p.applier)
            return judge_run(self.record.run(applier, RunKind.VERIFY, p.id, p.merge_sha))
        except RunnerError as exc:
            return Verification(Outcome.UNKNOWN, (f"verify run could not start: {exc}",))

    def _prometheus(self, p: _Proposal, *, fresh: Freshness | None = None) -> Verification | None:
        prom = self.ctx.config.prometheus
        check = self._promql(p)
        if not prom.url or check is None:
            return None
        # Judge data scraped after the fix, never the sample from before it.
        fresh = fresh or self._fresh(p)
        found = combine(
            *(
                query_prometheus(
                    prom,
                    check,
                    {**p.params, "host": host},
                    timeout=prom.timeout,
                    settle_seconds=prom.settle_seconds,
                )
                for host in p.hosts
            )
        )
        note = fresh.note if fresh is not None else ""
        return replace(found, evidence=(*found.evidence, note)) if note else found

    def _promql(self, p: _Proposal) -> PrometheusVerify | None:
        """The remedy's PromQL check, when it has one (main's catalogue)."""
        remedy = self.ctx.main.view()[1].get(p.remedy)
        return remedy.prometheus_verify if remedy is not None else None

    def _fresh(self, p: _Proposal) -> Freshness | None:
        """Wait for the next scrape of ``p``'s hosts (terry.verify.freshness); None when
        the proposal has no PromQL check."""
        prom = self.ctx.config.prometheus
        if not prom.url or self._promql(p) is None:
            return None
        inventory = self.ctx.main.view()[2]
        host_labels = self.ctx.config.host_labels

        def host_of(labels: Mapping[str, str]) -> str | None:
            """The inventory host a scrape target's labels name (as an alert's would)."""
            for key in host_labels:
                host = inventory.find(labels[key]) if labels.get(key) else None
                if host is not None:
                    return host.name
            return None

        # Verify tasks of the apply's run began after the fix was done on every host (a
        # play starts when the one before it has ended): a scrape since then is fresh.
        done_at = min((e.seen for e in p.ran.events), default=None) if p.ran else None
        return await_scrape(prom, p.hosts, host_of, timeout=prom.timeout, done_at=done_at)

    def _inventory(self, p: _Proposal) -> Verification:
        from terry.inventory.edit_checks import verify_edit

        return verify_edit(self.ctx.config, self.ctx.repo, dict(p.params))

    def _drift_scan(self, p: _Proposal) -> Verification:
        from terry.drift.scan import verify_hosts

        try:
            return verify_hosts(self.ctx.config, self.ctx.store, p.hosts)
        except TerryError as exc:
            return Verification(Outcome.UNKNOWN, (f"drift scan could not run: {exc}",))


@dataclass(frozen=True)
class _Check:
    method: Callable[[Verify, _Proposal], Verification | None]
    after_verified: bool = False  # runs only when every check before it verified


CHECKS: dict[str, _Check] = {
    "applier": _Check(Verify._applier),
    "prometheus": _Check(Verify._prometheus),
    "inventory": _Check(Verify._inventory),
    "drift-scan": _Check(Verify._drift_scan, after_verified=True),
}


def judge_host(result: RunResult, host: str) -> Verification:
    """One host's part of a verify run over several: failed where its tasks failed,
    ``unknown`` where it was not reached or not reported on, or the run did not finish."""
    said = [
        f"{host}: {e.task}: {e.message}".strip()
        for e in result.events
        if e.host == host and e.status in (EventStatus.FAILED, EventStatus.UNREACHABLE)
    ]
    stats = result.stats.get(host)
    if stats is None:
        return Verification(Outcome.UNKNOWN, (f"{host}: the verify run did not report on it",))
    if stats.unreachable:
        return Verification(Outcome.UNKNOWN, (f"{host}: unreachable", *said))
    if stats.failures:
        return Verification(Outcome.FAILED, tuple(said) or (f"{host}: verify failed",))
    if _ran_to_its_end(result) and _ran_every_task(result, host):
        # another host failed (its fix, or its verify); this one passed every verify task
        return Verification(Outcome.VERIFIED, (f"{host}: verify tasks passed",))
    if result.status is not RunStatus.SUCCESSFUL:
        return Verification(Outcome.UNKNOWN, (f"verify run ended {result.status.value}",))
    return Verification(Outcome.VERIFIED, (f"{host}: verify tasks passed",))


_DONE = frozenset({EventStatus.OK, EventStatus.CHANGED, EventStatus.SKIPPED, EventStatus.IGNORED})


def _ran_to_its_end(result: RunResult) -> bool:
    """Whether the playbook ran to its end (its stats event came), failures or not: a run
    cut short (a timeout, a kill, an error of Ansible itself) may stop between two tasks."""
    return result.status in (RunStatus.SUCCESSFUL, RunStatus.FAILED, RunStatus.ERROR) and any(
        e.event == "playbook_on_stats" for e in result.events
    )


def _ran_every_task(result: RunResult, host: str) -> bool:
    """Whether ``host`` has a result that is not a failure for every task the run began
    (by the tasks' ids in the events): a run cut short, or events that do not say which
    task they belong to, never count."""
    begun: set[str] = set()
    done: set[str] = set()
    for event in result.events:
        data = event.raw.get("event_data") if isinstance(event.raw, dict) else None
        task = data.get("task_uuid") if isinstance(data, dict) else None
        if not isinstance(task, str) or not task:
            continue
        if event.event == "playbook_on_task_start":
            begun.add(task)
        elif event.host == host and event.status in _DONE:
            done.add(task)
    return bool(begun) and begun <= done
