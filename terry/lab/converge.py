"""A fresh lab brought to the desired state: ``playbooks/site.yml`` from the repository's
main applied to the lab hosts, the way ``terry example up`` does for the example hosts.

Without it a new lab differs from what the repository says (no ``/etc/app/app.conf``,
kernel parameters as the machine has them), so the first drift scan reports the lab's own
birth as drift. The services were started before (Prometheus must see them up); they are
restarted afterwards so they run with the config site.yml rendered, which they read at
start.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from terry.appliers.ansible_runner import AnsibleRunnerApplier, RunRequest
from terry.appliers.base import RunnerEvent, RunResult
from terry.config import CONFIG_FILE, load_config
from terry.errors import GitError
from terry.gitops.repo import Repo
from terry.lab.hosts import TERRY_SVC, host_exec
from terry.lab.model import LabError, LabState

__all__ = ["SITE", "converge"]

SITE = "playbooks/site.yml"
_SKIP = " ('terry lab up --no-converge' starts the lab without applying it)"


def converge(
    state: LabState, repo: Path, *, on_event: Callable[[RunnerEvent], None] | None = None
) -> str:
    """Apply ``site.yml`` from ``repo``'s main to every lab host through the inventory the
    lab wrote, then restart their services; what was done, in words (``not applied: ...``
    when ``repo`` is no GitOps repository with a site.yml on main: a directory that only
    receives the inventory). ``LabError`` when it fails: the lab is not what the repository
    says."""
    if state.inventory is None:
        raise LabError("the lab has no inventory to apply site.yml with")
    main, forks, timeout = "main", 10, 900
    if (repo / CONFIG_FILE).is_file():
        config = load_config(repo, environ={})
        main, forks, timeout = config.main_branch, config.runner.forks, config.runner.timeout
    try:
        git = Repo(repo, main_branch=main)
        sha = git.head()
        found = git.read_text(sha, SITE) is not None
    except GitError as exc:
        return f"not applied: {exc}"
    if not found:
        return f"not applied: {repo} has no {SITE} on {main}"
    result: RunResult = AnsibleRunnerApplier().run(
        RunRequest(
            project_dir=git.tree(sha),
            playbook=SITE,
            private_dir=state.config.state_dir / "runs" / f"site-{int(time.time() * 1000)}",
            inventory=(str(state.inventory),),
            hosts=tuple(h.name for h in state.hosts),
            forks=forks,
            timeout=timeout,
        ),
        on_event=on_event,
    )
    if not result.ok:
        why = "; ".join(result.failure_messages()[:3]) or f"ansible ended {result.status.value}"
        raise LabError(f"{SITE} did not bring the lab to the desired state: {why}{_SKIP}")
    for host in state.hosts:
        for service in host.services:
            restarted = host_exec(
                host,
                [
                    str(TERRY_SVC),
                    "restart",
                    service.name,
                    "--port",
                    str(service.port),
                    "--bind",
                    service.bind,
                    "--root",
                    "/",
                ],
                check=False,
            )
            if restarted.returncode != 0:
                said = (restarted.stderr or restarted.stdout).strip().replace("\n", " | ")
                raise LabError(f"{host.name}: {service.name} did not start again: {said}")
    return f"{SITE} at {sha[:10]} applied: {result.changed} change(s)"
