"""Re-check before acting: right before the applier runs (under the hosts' locks), what the
apply is about to act on must still stand. The apply step asks three things here; the
fourth re-check, that the host reached is the host meant, is the applier's (the ansible applier
probes each host's name before it changes anything).

- **Main is gated** (``gated``). A person can put on main what no dry run or gate saw: a
  merged pull request whose head moved after the dry run, or one nobody allowed approved
  (``terry.review.forge`` records each as an *ungated change on main*, an incident kept for a
  person, ``terry.review.base.record_ungated``). No commit that contains such a change is
  applied — it would carry the change to the hosts — until main, as it now is, has been
  re-checked: a *re-check of main* proposal (remedy ``recheck-main``: the desired state,
  ``site.yml``, on every host Ansible manages, branched from main as it now is; dry-run in
  check mode, judged by the gate at high risk, so the shipped policy asks a person) has been
  verified. Its own apply is the one allowed through: its dry run saw the change.
  ``MainNotGated`` names the changes in the way; the pipeline then proposes their re-check
  where none is under way (``recheck_fix``).
- **The hosts' applier is the one judged** (``applier_moved``). A proposal's dry run and
  decision were for one applier (``terry_applier`` of its hosts at its commit). A host whose
  applier on main changed since (moved to AWX, say) would be changed by the applier it left:
  the proposal is withdrawn (``rejected``, outcome ``withdrawn: applier changed since
  judged: ...``), nothing applied, and its incidents kept for a person, told how to have the
  fix judged for the applier the host has now (``terry incidents retry`` for an alert's).
  Only where the merge changes nothing by itself (``_LIVE_STATE_APPLIERS``, no inventory
  edit): an Argo CD merge or an inventory edit is the change, already on main.
- **The problem still holds** (``problem_gone``). Before the first apply of a fix whose
  merge changes nothing by itself (a playbook, ``_LIVE_STATE_APPLIERS``): the incident must
  still be open (an alert's resolved notice, a later forecast, a clean scan close it), and
  for an alert the remedy's own checks — its verify tasks and, when Prometheus is
  configured, its PromQL check — must not all pass already. The PromQL check is asked
  first: when it says the problem holds (or cannot tell), the verify tasks are not run.
  A problem that healed itself is not fixed: the proposal is withdrawn (``rejected``,
  outcome ``withdrawn: healed before apply: ...``) and the incident closed as resolved by
  itself (``withdraw``); the weekly report counts it so (``terry.reports.history``). A
  check that cannot tell leaves the problem standing: the fix goes ahead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from terry.appliers.base import Job, RunKind
from terry.appliers.registry import Appliers
from terry.context import Context
from terry.diagnosis.finding import Finding, Fix, NoFix
from terry.diagnosis.rules import Diagnosis
from terry.errors import RunnerError, StateError
from terry.incidents import lifecycle as incidents
from terry.incidents.retry import next_try
from terry.proposals.hosts import carried as carried_by
from terry.proposals.plan import Plan
from terry.proposals.state import ProposalState, get, transition
from terry.review.base import Ungated, ungated_on_main
from terry.store.models import IncidentRow, ProposalRow
from terry.verify.judge import Outcome, Verification, combine, judge_run, query_prometheus

__all__ = ["HEALED", "MOVED", "RECHECK", "MainNotGated", "Precheck"]

RECHECK = "recheck-main"  # the remedy of a re-check of main
HEALED = "withdrawn: healed before apply"  # the outcome of a fix whose problem went away
MOVED = "withdrawn: applier changed since judged"  # a host's terry_applier changed on main
# Sources whose problem can go away by itself: an alert, a forecast, drift.
_PROBLEM_SOURCES = ("alert", "forecast", "drift")
# Appliers whose merge changes nothing by itself (it adds a playbook) and whose verify
# judges the hosts' live state, so it can say a problem is gone before the fix. Argo CD's
# verify asks whether the merge is synced (never before its apply), and an Argo CD merge
# already changed the desired state: withdrawing it would leave main ahead of the cluster.
_LIVE_STATE_APPLIERS = ("ansible", "awx")
# States in which a re-check of main is over without clearing anything: a new one is asked.
_SPENT = (
    ProposalState.REJECTED,
    ProposalState.DENIED,
    ProposalState.FAILED,
    ProposalState.ROLLED_BACK,
)


class MainNotGated(StateError):
    """Applying would carry a change on main that no dry run or gate saw."""

    def __init__(self, message: str, incident_ids: tuple[int, ...]) -> None:
        super().__init__(message)
        self.incident_ids = incident_ids  # the ungated changes in the way


@dataclass(frozen=True)
class Precheck:
    ctx: Context
    appliers: Appliers

    # -- main is gated ----------------------------------------------------------------------
    def gated(self, proposal_id: int, commit: str) -> None:
        """Raise ``MainNotGated`` when ``commit`` (what is about to be applied) contains an
        ungated change on main that no verified re-check of main covers, unless this
        proposal is that re-check (its dry run saw the change)."""
        found = ungated_on_main(self.ctx.store)
        if not found:
            return
        repo = self.ctx.repo
        with self.ctx.store.session() as session:
            row = get(session, proposal_id)
            remedy, dry_run = row.remedy, row.commit_sha
        blocking: list[Ungated] = []
        for change in found:
            if self._rechecked(change) or not repo.is_ancestor(change.commit, commit):
                continue
            if remedy == RECHECK and dry_run and repo.is_ancestor(change.commit, dry_run):
                continue
            blocking.append(change)
        if not blocking:
            return
        why = "; ".join(
            f"{c.commit[:12]} ({c.detail[:200]}; incident {c.incident_id}"
            + (f", re-check: proposal {p}" if (p := self.live_recheck(c.incident_id)) else "")
            + ")"
            for c in blocking
        )
        raise MainNotGated(
            f"cannot apply proposal {proposal_id}: {commit[:12]} carries a change on main "
            f"that no dry run or gate saw: {why}. A re-check of main (a dry run and a "
            "decision of main as it now is) must be approved and verified first",
            tuple(c.incident_id for c in blocking),
        )

    def _rechecked(self, change: Ungated) -> bool:
        """A verified re-check of main whose dry run contained ``change`` clears it (and
        closes its incident)."""
        with self.ctx.store.session() as session:
            rows = session.execute(
                select(ProposalRow.id, ProposalRow.commit_sha).where(
                    ProposalRow.remedy == RECHECK,
                    ProposalRow.state == ProposalState.VERIFIED.value,
                )
            ).all()
        for proposal_id, dry_run in rows:
            if dry_run and self.ctx.repo.is_ancestor(change.commit, dry_run):
                incidents.resolve(
                    self.ctx.store,
                    change.incident_id,
                    f"main re-checked by proposal {proposal_id}",
                )
                return True
        return False

    def live_recheck(self, incident_id: int) -> int | None:
        """The re-check of main under way for this ungated change, if any."""
        spent = [s.value for s in _SPENT]
        with self.ctx.store.session() as session:
            found = session.scalar(
                select(ProposalRow.id)
                .where(
                    ProposalRow.incident_id == incident_id,
                    ProposalRow.remedy == RECHECK,
                    ProposalRow.state.not_in(spent),
                )
                .order_by(ProposalRow.id.desc())
            )
        return int(found) if found is not None else None

    def recheck_fix(self, incident_id: int) -> Finding:
        """A re-check of main as it now is: the desired state on every host Ansible manages,
        branched from main (which holds the ungated change), dry-run in check mode and judged
        at high risk; verified by a drift scan, which closes the ungated change."""
        from terry.drift.scan import SITE
        from terry.inventory.check import site_roles
        from terry.remedies.catalogue import Remedy, Risk, modules_of_roles
        from terry.remedies.render import render_reconcile

        config = self.ctx.config
        sha, _catalogue, inventory = self.ctx.main.view()
        hosts = tuple(h for _n, h in sorted(inventory.hosts.items()) if h.applier == "ansible")
        if not hosts:
            return NoFix("main holds an ungated change and no host Ansible manages to re-check")
        site = f"{config.playbooks_path}/{SITE}"
        tree = self.ctx.repo.tree(sha)
        remedy = Remedy.of_desired_state(
            RECHECK,
            summary=f"Re-check main as it now is after an ungated change: {site} on every "
            "host Ansible manages",
            role="site",
            alertname="UngatedChangeOnMain",
            modules=modules_of_roles(
                tree / config.roles_path, site_roles(tree / config.playbooks_path / SITE)
            ),
            verify_summary="A drift scan of the hosts finds nothing left to change",
            rollback_summary="None automatic: revert the ungated change on main, then re-check",
            source=site,
            verified_by=("drift-scan",),
            resolves="main re-checked",
        )
        return Fix(
            Diagnosis(replace(remedy, risk=Risk.HIGH), hosts, {}),
            base=sha,
            render=lambda pid, iid: render_reconcile(
                proposal_id=pid, incident_id=iid, site=site, name=RECHECK
            ),
        )

    # -- the hosts' applier is the one judged -----------------------------------------------
    def applier_moved(self, proposal_id: int) -> str | None:
        """Why the proposal cannot be applied as judged, or None: each of its hosts on main
        names the applier it named at the proposal's commit (a host gone from main is not
        this check's to judge)."""
        with self.ctx.store.session() as session:
            row = get(session, proposal_id)
            judged_at, hosts = row.commit_sha, tuple(row.hosts)
            plan = Plan.from_json(row.plan, applier=row.applier)
            after_merge = row.applier in _LIVE_STATE_APPLIERS and not plan.edits
        if not judged_at or not after_merge:
            return None  # a merge that is the change (Argo CD, an inventory edit) is done
        _sha, _catalogue, judged = self.ctx.main.view(judged_at)
        _sha, _catalogue, main = self.ctx.main.view()
        moved = [
            f"{h}: {judged.hosts[h].applier} on the proposal's commit, "
            f"{main.hosts[h].applier} on main"
            for h in hosts
            if h in judged.hosts
            and h in main.hosts
            and judged.hosts[h].applier != main.hosts[h].applier
        ]
        return "; ".join(moved) or None

    def set_aside(self, proposal_id: int, why: str) -> ProposalState:
        """Withdraw a proposal the applier of whose hosts changed on main; nothing applied,
        its incidents kept for a person to retry."""
        said = f"{MOVED}: {why}"[:1000]
        self._withdrawn(proposal_id, reason=f"withdrawn before apply: {why}"[:1000], said=said)
        with self.ctx.store.session() as session:
            carried = [
                (i.id, i.source)
                for i in _incidents(session, carried_by(self.ctx.store, proposal_id))
            ]
        for each, source in carried:
            incidents.set_attention(
                self.ctx.store,
                each,
                f"proposal {proposal_id} was not applied: the applier of its hosts changed "
                f"since it was judged ({why}); to have its fix judged for the applier they "
                f"have now, {next_try(source, each)}",
            )
        self.ctx.reporter.step(proposal_id, f"not applied: {said}")
        return ProposalState.REJECTED

    # -- the problem still holds ------------------------------------------------------------
    def problem_gone(self, proposal_id: int, commit: str) -> Verification | None:
        """Evidence that the proposal's problem no longer holds, or None: it still does, it
        cannot be told, or this is no first apply of a fix a re-check applies to."""
        ctx = self.ctx
        ids = carried_by(ctx.store, proposal_id)
        with ctx.store.session() as session:
            row = get(session, proposal_id)
            state, applier = ProposalState(row.state), row.applier
            plan = Plan.from_json(row.plan, applier=row.applier)
            incident = session.get(IncidentRow, row.incident_id)
            assert incident is not None
            source, title = incident.source, incident.title
            # a storm's problem holds while any host's incident is open
            carried = _incidents(session, ids)
            resolved = [i.resolved_at for i in carried if i.resolved_at is not None]
            resolved_at: datetime | None = max(resolved) if resolved else None
            still_open = any(i.state == str(incidents.IncidentState.OPEN) for i in carried)
            remedy, hosts, params = row.remedy, tuple(row.hosts), dict(row.params)
            job = Job(
                proposal_id=proposal_id,
                kind=RunKind.VERIFY,
                commit=commit,
                hosts=hosts,
                run_dir=ctx.config.state_dir
                / "runs"
                / f"recheck-{proposal_id}-{int(time.time() * 1000)}",
                playbook=row.playbook_path,
                vars_path=row.vars_path,
                branch=row.branch,
                target=row.target,
                params=params,
                recheck=True,
            )
        if (
            state is not ProposalState.MERGED
            or applier not in _LIVE_STATE_APPLIERS
            or source not in _PROBLEM_SOURCES
        ):
            return None
        if not still_open:
            when = resolved_at.isoformat(timespec="seconds") if resolved_at else "earlier"
            said = (
                f"{source} {title!r} resolved at {when}"
                if len(carried) == 1
                else f"all {len(carried)} {source}s resolved, the last at {when}"
            )
            return Verification(Outcome.VERIFIED, (said,))
        if source != "alert":
            return None
        checks: list[Verification] = []
        # The cheap check first: the problem is gone only when every check passes, so a
        # PromQL answer that the problem holds (or cannot tell) settles it without an
        # ansible run on the hosts (seconds, on the path of every fix).
        prom = ctx.config.prometheus
        if "prometheus" in plan.verify and prom.url:
            _sha, catalogue, _inventory = ctx.main.view()
            spec = catalogue.get(remedy)
            if spec is not None and spec.prometheus_verify is not None:
                checks += [
                    query_prometheus(
                        prom,
                        spec.prometheus_verify,
                        {**params, "host": host},
                        timeout=prom.timeout,
                        settle_seconds=0,
                    )
                    for host in hosts
                ]
                if combine(*checks).outcome is not Outcome.VERIFIED:
                    return None
        if "applier" in plan.verify and job.playbook:
            ctx.reporter.step(proposal_id, "re-checking the problem: the remedy's verify tasks")
            try:
                result = self.appliers.get(applier).verify(
                    job, lambda e: ctx.reporter.event(proposal_id, "recheck", e)
                )
                checks.append(judge_run(result))
            except RunnerError as exc:
                checks.append(Verification(Outcome.UNKNOWN, (f"could not run: {exc}",)))
        found = combine(*checks)  # every check passes: none failed, none could not tell
        if found.outcome is Outcome.VERIFIED:
            return Verification(Outcome.VERIFIED, ("the remedy's own checks pass", *found.evidence))
        return None

    def withdraw(self, proposal_id: int, gone: Verification) -> ProposalState:
        """The problem healed before the fix: withdraw the proposal, close the incident as
        resolved by itself. Nothing is applied."""
        evidence = "; ".join(gone.evidence)[:1000]
        self._withdrawn(
            proposal_id,
            reason=f"withdrawn before apply: the problem no longer holds: {evidence}",
            said=f"{HEALED}: {evidence}",
        )
        for each in carried_by(self.ctx.store, proposal_id):  # a storm's: every host's incident
            incidents.resolve(
                self.ctx.store,
                each,
                f"resolved by itself before its fix was applied (proposal {proposal_id}): "
                f"{evidence}",
            )
        self.ctx.reporter.step(
            proposal_id, f"not applied: the problem no longer holds ({evidence})"
        )
        return ProposalState.REJECTED

    def _withdrawn(self, proposal_id: int, *, reason: str, said: str) -> None:
        """``merged → rejected`` by Terry before any apply, ``said`` its outcome."""
        transition(
            self.ctx.store,
            proposal_id,
            ProposalState.REJECTED,
            actor="terry",
            verb="withdraw",
            reason=reason,
            allowed_from=(ProposalState.MERGED,),
            changes={"outcome": said},
        )


def _incidents(session: Session, ids: list[int]) -> list[IncidentRow]:
    """The incidents of these ids (a proposal's, ``hosts.carried``: a storm's problem holds
    while any is open)."""
    return list(session.scalars(select(IncidentRow).where(IncidentRow.id.in_(ids))))
