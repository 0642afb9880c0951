"""Creating (or adopting) a GitOps repository: ``terry init``.

The repository holds everything Terry acts on: ``inventories/``, ``roles/``, ``playbooks/``,
``policies/`` and ``terry.yml``. Terry's own source tree only ships the starting content.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

import terry
from terry.config import CONFIG_FILE
from terry.errors import ConfigError
from terry.gitops.repo import Repo
from terry.ports import free_port

__all__ = ["EXAMPLE_HOSTS", "InitResult", "content_root", "example_inventory", "init_repository"]

CONTENT_DIRS = ("roles", "playbooks", "policies", "examples")
GITIGNORE = ".terry/\n"
ANSIBLE_CFG = "ansible.cfg"
# Ansible run from the repository's root finds the roles at its root: AWX (whose jobs run
# playbooks/ from a checkout of this repository) and a person at the shell. Terry's own
# runs set the same path in their environment. Relative to this file, as Ansible reads it.
ANSIBLE_CFG_TEXT = """\
# Written by terry init. Ansible run from this repository (an AWX job, a person at the
# shell) finds the roles the playbooks use; Terry's own runs set the same path themselves.
[defaults]
roles_path = roles
"""

# name → environment; the example fleet the walkthrough runs on (local connection).
EXAMPLE_HOSTS = {"web-01": "staging", "web-02": "staging", "db-01": "production"}
EXAMPLE_QUOTA_MB = 32


@dataclass(frozen=True)
class InitResult:
    path: Path
    commit: str
    created: bool
    example_hosts: tuple[str, ...]


def content_root() -> Path:
    """Where the starting content lives: inside the wheel, or the source checkout."""
    package = Path(terry.__file__).resolve().parent
    for candidate in (package / "content", package.parent):
        if (candidate / "roles").is_dir() and (candidate / "policies").is_dir():
            return candidate
    raise ConfigError("Terry's starting content (roles/, policies/) is missing from the install")


def example_inventory(repo: Path) -> dict[str, Any]:
    """Hosts reachable with Ansible's local connection, each with its own scratch root."""
    groups: dict[str, dict[str, Any]] = {}
    for name, environment in EXAMPLE_HOSTS.items():
        group = groups.setdefault(
            environment, {"vars": {"terry_environment": environment}, "hosts": {}}
        )
        group["hosts"][name] = {
            "terry_root": str(repo / ".terry" / "hosts" / name),
            "terry_services": {"web": {"port": free_port(), "bind": "127.0.0.1"}},
            "terry_disk_quota_mb": EXAMPLE_QUOTA_MB,
            "terry_labels": {"role": name.split("-")[0]},
        }
    return {
        "all": {
            "vars": {
                "ansible_connection": "local",
                # Set explicitly: interpreter discovery picks a wrong shim on some machines.
                "ansible_python_interpreter": sys.executable,
                "terry_tenant": "example",
            },
            "children": groups,
        }
    }


def _config_text() -> str:
    return (
        "# Terry's configuration for this GitOps repository. Layering: defaults < this file <\n"
        "# TERRY_* environment < command-line flags. See docs/configuration.md.\n"
        + yaml.safe_dump(
            {
                "main_branch": "main",
                "inventory": ["inventories/example"],
                "host_labels": ["host", "instance", "nodename"],
                "policy": {"engine": "regorus", "path": "policies", "timeout": 5},
                "prometheus": {"url": None, "settle_seconds": 0},
                "runner": {"forks": 10, "timeout": 900},
            },
            sort_keys=False,
        )
    )


def init_repository(path: Path, *, example: bool = True) -> InitResult:
    """Create ``path`` as a GitOps repository, or add what is missing to an existing one.

    Existing files are never overwritten: adopting a repository only adds.
    """
    path = path.resolve()
    created = not (path / ".git").exists()
    repo = Repo.init(path)
    source = content_root()
    for name in CONTENT_DIRS:
        target = path / name
        if not target.exists() and (source / name).is_dir():
            shutil.copytree(
                source / name, target, ignore=shutil.ignore_patterns("__pycache__", ".keep")
            )
    (path / "playbooks" / "remediations").mkdir(parents=True, exist_ok=True)
    keep = path / "playbooks" / "remediations" / ".gitkeep"
    if not keep.exists():
        keep.write_text("", encoding="utf-8")
    hosts: tuple[str, ...] = ()
    inventory = path / "inventories" / "example" / "hosts.yml"
    if example and not inventory.exists():
        inventory.parent.mkdir(parents=True, exist_ok=True)
        inventory.write_text(
            "# The example fleet: hosts reached with Ansible's local connection, each with its\n"
            "# own scratch root under .terry/hosts/. Start them with 'terry example up'.\n"
            + yaml.safe_dump(example_inventory(path), sort_keys=False),
            encoding="utf-8",
        )
        hosts = tuple(EXAMPLE_HOSTS)
    config = path / CONFIG_FILE
    if not config.exists():
        config.write_text(_config_text(), encoding="utf-8")
    cfg = path / ANSIBLE_CFG
    if not cfg.exists():
        cfg.write_text(ANSIBLE_CFG_TEXT, encoding="utf-8")
    ignore = path / ".gitignore"
    existing = ignore.read_text(encoding="utf-8") if ignore.exists() else ""
    if ".terry/" not in existing.splitlines():
        ignore.write_text(
            existing + ("" if existing.endswith("\n") or not existing else "\n") + GITIGNORE,
            encoding="utf-8",
        )
    paths = [
        *(n for n in CONTENT_DIRS if (path / n).exists()),
        "playbooks",
        CONFIG_FILE,
        ANSIBLE_CFG,
        ".gitignore",
    ]
    if (path / "inventories").exists():
        paths.append("inventories")
    commit = repo.commit_paths(
        paths,
        "terry init: GitOps repository with inventories, roles, playbooks and policies"
        if created
        else "terry init: add Terry's starting content",
    )
    return InitResult(path=path, commit=commit, created=created, example_hosts=hosts)
