"""A fault goes in or out through the ``chaos`` role, run by ansible-runner like every
other change Terry makes (``terry.appliers.ansible_runner``): same allow-listed
environment, same redaction, artifacts on disk per run."""

from __future__ import annotations

import contextlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from terry.appliers.ansible_runner import AnsibleRunnerApplier, RunRequest
from terry.appliers.base import RunStatus
from terry.config import Config
from terry.gitops.init import content_root
from terry.gitops.repo import Repo

__all__ = ["FaultRun", "run_fault"]

PLAYBOOK = "playbooks/chaos.yml"


@dataclass(frozen=True)
class FaultRun:
    ok: bool
    result: dict[str, Any]  # what the host's fault script printed
    detail: str


def _project(config: Config) -> tuple[Path, tuple[str, ...]]:
    """The GitOps repository's main tree when it carries the chaos role, else Terry's own
    content; the inventory is always the repository's."""
    repo = Repo(config.repo, main_branch=config.main_branch)
    tree = repo.tree(repo.head())
    inventories = tuple(str(tree / i) for i in config.inventory)
    if (tree / PLAYBOOK).is_file() and (tree / "roles" / "chaos").is_dir():
        return tree, inventories
    return content_root(), inventories


def run_fault(
    config: Config, host: str, fault: str, action: str, params: dict[str, Any]
) -> FaultRun:
    """Run ``action`` (inject | remove | check) of ``fault`` on ``host``; a failed playbook
    is an outcome (``ok`` False), not an exception. ``params`` were checked by
    ``terry.chaos.faults.check_params``."""
    project, inventories = _project(config)
    work = config.state_dir / "chaos"
    work.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix=f"{action}-", dir=work))
    values = {"chaos_fault": fault, "chaos_action": action, "chaos_params": params}
    vars_file = private / "chaos-vars.yml"
    vars_file.write_text(yaml.safe_dump(values), encoding="utf-8")
    request = RunRequest(
        project_dir=project,
        playbook=PLAYBOOK,
        private_dir=private,
        inventory=inventories,
        hosts=(host,),
        vars_file=str(vars_file),
        timeout=config.runner.timeout,
        env=config.runner.ansible_env(),
        withhold=config.secret_env_names,
    )
    result = AnsibleRunnerApplier().run(request)
    printed: dict[str, Any] = {}
    for event in result.events:
        result_data = (event.raw.get("event_data") or {}).get("res")
        text = result_data.get("stdout") if isinstance(result_data, dict) else None
        if isinstance(text, str) and text.startswith("{"):
            with contextlib.suppress(ValueError):
                printed = json.loads(text)
    failures = [e.message for e in result.events if e.message and e.status is not None]
    ok = result.status is RunStatus.SUCCESSFUL and result.rc == 0
    detail = f"{action} {fault} on {host}: {result.status.value}"
    if not ok and isinstance(printed.get("error"), str):  # the fault script's own words
        detail += f" ({printed['error'][:200]})"
    elif not ok and failures:
        detail += f" ({failures[-1].splitlines()[0][:200]})"
    return FaultRun(ok=ok, result=printed, detail=detail)
