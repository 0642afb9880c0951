"""The default applier: ``ansible-playbook`` through ansible-runner.

A failed playbook is an outcome, returned as data (status, rc, per-host stats, events), not
raised. Runner events are turned into typed ``RunnerEvent`` values here, once, at the
boundary; artifacts stay on disk per run so every run can be inspected later.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ansible_runner.interface import init_runner

from terry.appliers.base import HostStats, RunnerEvent, RunResult, RunStatus
from terry.errors import RunnerError

__all__ = ["AnsibleRunnerApplier", "RunRequest"]


@dataclass(frozen=True)
class RunRequest:
    project_dir: Path
    playbook: str
    private_dir: Path
    inventory: tuple[str, ...]
    hosts: tuple[str, ...]
    vars_file: str | None = None
    check: bool = False
    tags: tuple[str, ...] = ()
    forks: int = 10
    timeout: int = 900
    env: dict[str, str] = field(default_factory=dict)
    # Variables of Terry's own environment ansible must not see (Terry's credentials).
    withhold: tuple[str, ...] = ()


_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|PRIVATE_KEY|CREDENTIAL", re.IGNORECASE)


def _job_env(inherited: dict[str, str], request: RunRequest) -> dict[str, str]:
    """The environment of the ansible process: Terry's own, without its credentials.

    ansible-runner starts from the whole process environment and records it in the run's
    artifacts (``command``); a GitHub token or webhook secret must reach neither. Withheld:
    the names Terry's configuration points at, and any name that looks like a credential,
    except ANSIBLE_* settings and what ``runner.env`` sets on purpose.
    """
    keep = set(request.env)
    return {
        k: v
        for k, v in inherited.items()
        if k in keep
        or (k not in request.withhold and (k.startswith("ANSIBLE_") or not _SECRET_NAME.search(k)))
    }


def _stats(raw: dict[str, Any] | None) -> dict[str, HostStats]:
    raw = raw or {}
    hosts: set[str] = set()
    for key in ("ok", "changed", "failures", "dark", "skipped", "processed"):
        hosts |= set((raw.get(key) or {}).keys())
    return {
        host: HostStats(
            ok=int((raw.get("ok") or {}).get(host, 0)),
            changed=int((raw.get("changed") or {}).get(host, 0)),
            failures=int((raw.get("failures") or {}).get(host, 0)),
            unreachable=int((raw.get("dark") or {}).get(host, 0)),
            skipped=int((raw.get("skipped") or {}).get(host, 0)),
        )
        for host in sorted(hosts)
    }


def _search_path() -> str:
    """PATH with the ansible of Terry's own environment first (a venv need not be on PATH)."""
    here = str(Path(sys.executable).parent)
    current = os.environ.get("PATH", os.defpath)
    if not (Path(here) / "ansible-playbook").exists():
        if shutil.which("ansible-playbook") is None:
            raise RunnerError("ansible-playbook not found (install ansible-core beside Terry)")
        return current
    return os.pathsep.join([here, *(p for p in current.split(os.pathsep) if p != here)])


class AnsibleRunnerApplier:
    """Runs a playbook from an exported commit; one private data dir per run."""

    name = "ansible-runner"

    def run(
        self, request: RunRequest, on_event: Callable[[RunnerEvent], None] | None = None
    ) -> RunResult:
        events: list[RunnerEvent] = []

        def handle(raw: dict[str, Any]) -> bool:
            event = RunnerEvent.from_runner(raw)
            events.append(event)
            if on_event is not None:
                on_event(event)
            return True  # keep it in the artifacts too

        args: list[str] = []
        for inventory in request.inventory:
            args += ["-i", str(request.project_dir / inventory)]
        if request.vars_file:
            args += ["-e", f"@{request.project_dir / request.vars_file}"]
        if request.check:
            args += ["--check", "--diff"]
        else:
            args += ["--diff"]
        if request.tags:
            args += ["--tags", ",".join(request.tags)]
        request.private_dir.mkdir(parents=True, exist_ok=True)
        env = {
            "ANSIBLE_ROLES_PATH": str(request.project_dir / "roles"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_HOST_KEY_CHECKING": "0",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
            # One SSH round trip per module instead of several (no file transfer); safe
            # where sudo's requiretty is off, which is Ansible's own recommendation.
            "ANSIBLE_PIPELINING": "1",
            "PATH": _search_path(),
            **request.env,
        }
        started = time.monotonic()
        try:
            runner = init_runner(
                private_data_dir=str(request.private_dir),
                project_dir=str(request.project_dir),
                playbook=request.playbook,
                cmdline=shlex.join(args),
                limit=":".join(request.hosts) if request.hosts else None,
                forks=request.forks,
                envvars=env,
                timeout=request.timeout,
                event_handler=handle,
                quiet=True,
                json_mode=False,
                settings={"suppress_ansible_output": True},
            )
            runner.config.env = _job_env(runner.config.env, request)
            runner.run()
        except Exception as exc:  # ansible-runner raises bare exceptions when it cannot start
            raise RunnerError(f"ansible-runner could not start: {exc}") from exc
        elapsed = time.monotonic() - started
        try:
            status = RunStatus(runner.status)
        except ValueError:
            status = RunStatus.ERROR
        return RunResult(
            status=status,
            rc=int(runner.rc if runner.rc is not None else -1),
            stats=_stats(runner.stats),
            events=tuple(events),
            artifact_dir=Path(runner.config.artifact_dir) if runner.config else None,
            ansible_seconds=elapsed,
        )
