"""Run a drift scan: a facts probe and the desired state in check mode, in one ansible run.

The probe play (written by Terry into the run's private directory, never into the
repository) gathers the few facts the inventory can contradict: the hostname (``uname -n``
with ``raw``: no module to build and start), and the distribution and packages of hosts
that declare ``terry_os`` and ``terry_packages``. It then imports
``playbooks/site.yml`` from an export of main, run with ``--check --diff``: every task
that would change something is drift. One ``ansible-playbook`` start for both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from terry.appliers.ansible_runner import AnsibleRunnerApplier, RunRequest
from terry.appliers.base import RunnerEvent, RunStatus, host_pattern
from terry.config import Config
from terry.drift.items import (
    OS_TASK,
    PACKAGES_TASK,
    PROBE_TASK,
    HostScan,
    HostStatus,
    ItemKind,
    items_from_run,
)
from terry.drift.ledger import fail_scan, finish_scan, start_scan
from terry.errors import InputError, RunnerError
from terry.gitops.repo import Repo
from terry.inventory.hosts import load_inventory, match_hosts
from terry.store import Store
from terry.verify.judge import Outcome, Verification

__all__ = ["RECONCILE", "SITE", "ScanOutcome", "run_scan", "verify_hosts"]

SITE = "site.yml"
# The remedy name of drift fixes (terry.sources.drift): verified by a scan, never rolled back.
RECONCILE = "reconcile-drift"


@dataclass(frozen=True)
class ScanOutcome:
    scan_id: int
    commit: str
    hosts: dict[str, HostScan]
    run_status: str
    seconds: float


def _probe(site: Path) -> str:
    plays = [
        {
            "name": "Terry drift probe",
            "hosts": "all",
            "gather_facts": False,
            "tasks": [
                {  # the hostname, for the identity check: one command, no Python module
                    "name": PROBE_TASK,
                    "ansible.builtin.raw": "uname -n",
                    "check_mode": False,
                    "changed_when": False,
                },
                {
                    "name": OS_TASK,
                    "ansible.builtin.setup": {"gather_subset": ["!all", "!min", "distribution"]},
                    "when": "terry_os is defined",
                },
                {
                    "name": PACKAGES_TASK,
                    "ansible.builtin.package_facts": {},
                    "when": "terry_packages is defined",
                },
            ],
        },
        {"ansible.builtin.import_playbook": str(site)},
    ]
    return "# Written by terry drift scan for this run only.\n" + yaml.safe_dump(
        plays, sort_keys=False
    )


def run_scan(
    config: Config,
    store: Store,
    *,
    limit: str | None = None,
    forks: int | None = None,
    on_event: Callable[[RunnerEvent], None] | None = None,
    applier: AnsibleRunnerApplier | None = None,
) -> ScanOutcome:
    """Scan the hosts ``limit`` selects (an Ansible pattern; all when None) and record it."""
    if limit is not None and (not limit.strip() or limit.startswith("-")):
        raise InputError(f"--limit {limit!r} is not an Ansible host pattern")
    repo = Repo(config.repo, main_branch=config.main_branch)
    commit = repo.head()
    tree = repo.tree(commit)
    site = tree / config.playbooks_path / SITE
    if not site.is_file():
        raise InputError(f"{config.playbooks_path}/{SITE} is not on {config.main_branch}")
    inventory = load_inventory(tree, config.inventory)
    # Targets Argo CD applies have no site.yml desired state: never scanned.
    managed = {n for n, h in inventory.hosts.items() if h.applier == "ansible"}
    chosen = sorted(managed & set(match_hosts(tree, config.inventory, limit or "all")))
    if not chosen:
        what = f"--limit {limit!r} matches" if limit else "the inventory has"
        raise InputError(f"{what} no host that Ansible manages")
    private = config.state_dir / "runs" / f"drift-{int(time.time() * 1000)}"
    private.mkdir(parents=True, exist_ok=True)
    probe = private / "drift-probe.yml"
    probe.write_text(_probe(site), encoding="utf-8")
    scan_id = start_scan(store, commit=commit, limit=limit, run_dir=str(private))
    started = time.monotonic()
    try:
        result = (applier or AnsibleRunnerApplier()).run(
            RunRequest(
                project_dir=tree,
                playbook=str(probe),
                private_dir=private,
                inventory=tuple(config.inventory),
                hosts=tuple(chosen) if limit or len(chosen) < len(inventory.hosts) else (),
                check=True,
                forks=forks or config.runner.forks,
                timeout=config.runner.timeout,
                env=config.runner.ansible_env(),
                withhold=config.secret_env_names,
            ),
            on_event=on_event,
        )
    except RunnerError as exc:
        fail_scan(store, scan_id, str(exc))
        raise
    if result.status in (RunStatus.TIMEOUT, RunStatus.CANCELED, RunStatus.ERROR) or (
        not result.stats and result.status is not RunStatus.SUCCESSFUL
    ):
        why = f"ansible ended {result.status.value} (rc {result.rc})"
        fail_scan(store, scan_id, why)
        raise RunnerError(f"drift scan {scan_id}: {why}; see {private}")
    hosts = items_from_run(result, inventory.hosts)
    finish_scan(store, scan_id, hosts)
    return ScanOutcome(scan_id, commit, hosts, result.status.value, time.monotonic() - started)


def verify_hosts(config: Config, store: Store, hosts: tuple[str, ...]) -> Verification:
    """A drift fix is verified when a new scan of its hosts finds nothing to change."""
    scanned = run_scan(config, store, limit=host_pattern(hosts))
    unreachable = [
        h
        for h in hosts
        if scanned.hosts.get(h, None) is None or scanned.hosts[h].status is HostStatus.UNREACHABLE
    ]
    if unreachable:
        return Verification(
            Outcome.UNKNOWN,
            (f"drift scan {scanned.scan_id}: unreachable {', '.join(unreachable)}",),
        )
    remaining = [
        f"{h}: {i.resource}"
        for h in hosts
        for i in scanned.hosts[h].items
        if i.kind in (ItemKind.TASK, ItemKind.ERROR)
    ]
    if remaining:
        return Verification(
            Outcome.FAILED,
            (f"drift scan {scanned.scan_id} still finds: {'; '.join(remaining[:10])}",),
        )
    return Verification(
        Outcome.VERIFIED,
        (f"drift scan {scanned.scan_id}: {', '.join(hosts)} match the desired state",),
    )
