"""A drifted host's unapplied commits (terry.drift.report): the commits on main since its
last clean scan that can change what it should be, and not those that change another host
or group, or another inventory. Real git, a real store, Ansible's own inventory reading."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from terry.config import load_config
from terry.drift.items import HostScan, HostStatus
from terry.drift.ledger import finish_scan, start_scan
from terry.drift.report import load_report
from terry.gitops.init import init_repository
from terry.gitops.repo import Repo
from terry.store import Store

pytestmark = pytest.mark.integration


def _commit(repo: Path, files: dict[str, str], subject: str) -> None:
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    who = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "-C", str(repo), *who, "commit", "-q", "-m", subject], check=True)


def _scan(store: Store, commit: str, statuses: dict[str, HostStatus]) -> None:
    scan = start_scan(store, commit=commit, limit=None, run_dir="")
    finish_scan(store, scan, {h: HostScan(h, s) for h, s in statuses.items()})


def test_only_commits_that_can_change_the_host_are_its_unapplied_ones(tmp_path: Path) -> None:
    repo = init_repository(tmp_path / "ops", example=True).path
    config = load_config(repo, environ={})
    store = Store(config.store_url)
    store.migrate()
    git = Repo(repo, main_branch=config.main_branch)
    clean = {h: HostStatus.CLEAN for h in ("web-01", "web-02", "db-01")}
    _scan(store, git.head(), clean)
    inventory = "inventories/example"
    _commit(repo, {f"{inventory}/host_vars/web-02.yml": "x: 1\n"}, "web-02's own vars")
    _commit(repo, {f"{inventory}/group_vars/production.yml": "x: 1\n"}, "production's vars")
    _commit(repo, {"inventories/other/hosts.yml": "all: {}\n"}, "another inventory")
    _commit(repo, {f"{inventory}/group_vars/staging.yml": "x: 1\n"}, "staging's vars")
    _commit(repo, {f"{inventory}/host_vars/web-01/ports.yml": "x: 1\n"}, "web-01's vars dir")
    _commit(repo, {"playbooks/group_vars/all.yml": "x: 1\n"}, "vars for every host")
    _commit(repo, {"roles/managed_file/defaults/main.yml": "# edited\n"}, "a role")
    hosts = (repo / inventory / "hosts.yml").read_text()
    _commit(repo, {f"{inventory}/hosts.yml": hosts + "# edited\n"}, "the hosts file")
    _scan(store, git.head(), {**clean, "web-01": HostStatus.DRIFTED, "db-01": HostStatus.DRIFTED})

    report = {h.host: h for h in load_report(store, config).hosts}
    subjects = {name: [c["subject"] for c in h.unapplied] for name, h in report.items()}
    assert subjects["web-01"] == [
        "the hosts file",
        "a role",
        "vars for every host",
        "web-01's vars dir",
        "staging's vars",
    ]
    assert subjects["db-01"] == [
        "the hosts file",
        "a role",
        "vars for every host",
        "production's vars",
    ]
    assert subjects["web-02"] == []  # clean: nothing to explain
    assert all(len(c["commit"]) == 40 for c in report["web-01"].unapplied)
