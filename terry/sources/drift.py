"""``drift fix``: drift becomes an incident and a reconciliation proposal, through the
same path as an alert: branch, dry run, gate, review or merge, apply, verify.

The proposal's playbook is the desired state itself (``playbooks/site.yml``, imported),
run on the drifted hosts only; its dry run is the drift. Verification is a new drift scan
of those hosts: verified when it finds nothing left to change. There is no automatic
rollback (the desired state is the reference); a failed reconciliation waits for a human.
Items ``site.yml`` cannot change (another identity, OS or package version, a task that
errors) are reported, not proposed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from terry.appliers.base import RunnerEvent
from terry.diagnosis.finding import Fix
from terry.diagnosis.rules import Diagnosis
from terry.drift.items import HostStatus, ItemKind
from terry.drift.scan import RECONCILE, SITE, ScanOutcome, run_scan
from terry.incidents import lifecycle as incidents
from terry.inventory.check import site_roles
from terry.pipeline import Pipeline
from terry.remedies.catalogue import Remedy, modules_of_roles
from terry.remedies.render import render_reconcile

__all__ = ["FixOutcome", "drift_fixer", "fix_drift", "reconcile_remedy"]


@dataclass(frozen=True)
class FixOutcome:
    scan_id: int
    hosts: tuple[str, ...]  # hosts the proposal reconciles
    incident_id: int | None = None
    proposal_id: int | None = None
    state: str | None = None
    decision: str | None = None
    reasons: tuple[str, ...] = ()
    # What no playbook run fixes: (host, what), for a human.
    left: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    unreachable: tuple[str, ...] = ()


def reconcile_remedy(tree: Path, roles_path: str, playbooks_path: str) -> Remedy:
    """The remedy a drift fix stands for: what the gate sees (risk, every module the
    desired-state roles use)."""
    site = tree / playbooks_path / SITE
    return Remedy.of_desired_state(
        RECONCILE,
        summary=f"Bring the drifted hosts back to the desired state ({playbooks_path}/{SITE})",
        role="site",
        alertname="Drift",
        modules=modules_of_roles(tree / roles_path, site_roles(site)),
        verify_summary="A drift scan of the hosts finds nothing left to change",
        rollback_summary="None automatic: the desired state is the reference; revert its "
        "commit in git and fix again",
        source=f"{playbooks_path}/{SITE}",
        verified_by=("drift-scan",),
        resolves="drift fixed",
    )


def fix_drift(
    pipeline: Pipeline,
    *,
    limit: str | None = None,
    forks: int | None = None,
    apply: bool = True,
    on_event: Callable[[RunnerEvent], None] | None = None,
) -> FixOutcome:
    """Scan, then propose one reconciliation of every host with fixable drift."""
    ctx = pipeline.ctx
    config, store = ctx.config, ctx.store
    scanned = run_scan(config, store, limit=limit, forks=forks, on_event=on_event)
    fixable = tuple(
        sorted(
            name
            for name, host in scanned.hosts.items()
            if any(i.kind is ItemKind.TASK for i in host.items)
        )
    )
    left = tuple(
        (name, f"{i.kind.value}: {i.resource}: {i.detail}".rstrip(": "))
        for name, host in sorted(scanned.hosts.items())
        for i in host.items
        if i.kind is not ItemKind.TASK
    )
    unreachable = tuple(
        sorted(n for n, h in scanned.hosts.items() if h.status is HostStatus.UNREACHABLE)
    )
    if not fixable:
        return FixOutcome(scanned.scan_id, (), left=left, unreachable=unreachable)
    incident_id = _open(pipeline, scanned, fixable)
    sha, _catalogue, inventory = ctx.main.view(scanned.commit)
    remedy = reconcile_remedy(ctx.repo.tree(sha), config.roles_path, config.playbooks_path)
    site = f"{config.playbooks_path}/{SITE}"
    fix = Fix(
        Diagnosis(remedy, tuple(inventory.hosts[h] for h in fixable), {}),
        base=sha,
        render=lambda pid, iid: render_reconcile(proposal_id=pid, incident_id=iid, site=site),
    )
    done = pipeline.handle(incident_id, fix, apply=apply)
    return FixOutcome(
        scanned.scan_id,
        fixable,
        incident_id,
        done.proposal_id,
        done.state,
        done.decision,
        done.reasons,
        left,
        unreachable,
    )


def _open(pipeline: Pipeline, scanned: ScanOutcome, hosts: tuple[str, ...]) -> int:
    count = sum(len(scanned.hosts[h].items) for h in hosts)
    digest = hashlib.sha256("\x1f".join(hosts).encode()).hexdigest()[:24]
    return incidents.open_incident(
        pipeline.ctx.store,
        source="drift",
        fingerprint=f"drift:{digest}",
        title=f"Drift on {len(hosts)} host(s): {', '.join(hosts)}"[:200],
        host=hosts[0],
        labels={"alertname": "Drift", "scan": str(scanned.scan_id), "hosts": ",".join(hosts)},
        annotations={"summary": f"{count} item(s) differ from the desired state"},
        holder=pipeline.ctx.holder,
    )


def drift_fixer(
    pipelines: Callable[[], Pipeline],
) -> Callable[[str | None], tuple[int, int | None]]:
    """What a ``drift-fix`` schedule runs: ``fix(limit) -> (scan_id, proposal_id)``."""

    def fix(limit: str | None) -> tuple[int, int | None]:
        done = fix_drift(pipelines(), limit=limit)
        return done.scan_id, done.proposal_id

    return fix
