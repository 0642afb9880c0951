"""The default applier: ``ansible-playbook`` through ansible-runner.

A failed playbook is an outcome, returned as data (status, rc, per-host stats, events), not
raised. Runner events are turned into typed ``RunnerEvent`` values here, once, at the
boundary; artifacts stay on disk per run so every run can be inspected later.

Ansible gets an allow-listed environment (``_job_env``), so Terry's credentials never reach
it, its artifacts or its tasks. What ansible reports is redacted all the same at this
boundary (``terry.redact``): each event before it is kept in memory, the store or the
artifacts, and the run's other artifact files after it, so a secret a task prints (read
from a host, say) is not copied on.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ansible_runner.interface import init_runner

from terry.appliers.base import HostStats, RunnerEvent, RunResult, RunStatus, host_pattern
from terry.errors import RunnerError
from terry.redact import Redactor, looks_like_credential, process_redactor
from terry.traces.spans import child, traceparent

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
    # Variables of Terry's own environment ansible must not see (Terry's credentials), even
    # where the allow-list would pass them.
    withhold: tuple[str, ...] = ()


# What ansible gets of Terry's environment (an allow-list): what ansible-playbook, ssh and
# Python need to run as this user, the ANSIBLE_* settings, and what ansible-runner sets for
# its event callback (read from ansible_runner/config/_base.py and config/runner.py, and
# display_callback/callback/awx_display.py, which reads them in the ansible process).
_PASSED = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "SSH_AUTH_SOCK",
        "KRB5CCNAME",
        "PYTHONPATH",
        "VIRTUAL_ENV",
        # ansible-runner's, for its awx_display callback in the ansible process
        "AWX_ISOLATED_DATA_DIR",
        "RUNNER_OMIT_EVENTS",
        "RUNNER_ONLY_FAILED_EVENTS",
        "ORIGINAL_STDOUT_CALLBACK",
        "AD_HOC_COMMAND_ID",
        # W3C trace context: the run's span, for an OpenTelemetry-aware callback to join
        "TRACEPARENT",
        "TRACESTATE",
    }
)
_PASSED_PREFIXES = ("LC_", "ANSIBLE_")


def _passed(name: str) -> bool:
    """Whether ansible gets variable ``name`` of Terry's environment: allow-listed, and for
    ANSIBLE_* settings not one that looks like a credential itself (a path to one, such as
    ANSIBLE_VAULT_PASSWORD_FILE, is fine)."""
    if name in _PASSED:
        return True
    if name.startswith(_PASSED_PREFIXES):
        return not looks_like_credential(name)
    return False


def _job_env(inherited: dict[str, str], request: RunRequest) -> dict[str, str]:
    """The environment of the ansible process: an allow-list of Terry's own, never its
    credentials.

    ansible-runner starts from the whole process environment and records it in the run's
    artifacts (``command``), and ansible hands its environment to every task on a local
    connection (and reports it as the ``ansible_env`` fact). So ansible gets only what
    ``_passed`` allows, minus the names Terry's configuration reads credentials from
    (``withhold``), plus what ``runner.env`` sets on purpose.
    """
    keep = set(request.env)
    return {
        k: v
        for k, v in inherited.items()
        if k in keep or (k not in request.withhold and _passed(k))
    }


def _run_redactor(request: RunRequest) -> Redactor:
    """What a run's output is redacted with: this process's secrets, the variables the
    configuration withholds, and credential-like values ``runner.env`` passes on purpose."""
    on_purpose = [v for k, v in request.env.items() if looks_like_credential(k)]
    return process_redactor() | Redactor.from_environ(names=request.withhold, extra=on_purpose)


def _redact_files(directory: Path, redactor: Redactor) -> None:
    """Rewrite the run's text artifacts (stdout, the command, facts) without the secrets.
    Events were redacted as they came; this catches what ansible printed around them."""
    for path in directory.rglob("*"):
        try:
            if not path.is_file() or path.is_symlink() or path.stat().st_size > 64 << 20:
                continue
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        clean = redactor(text)
        if clean != text:
            path.write_text(clean, encoding="utf-8")


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
        redactor = _run_redactor(request)

        def handle(raw: dict[str, Any]) -> bool:
            if redactor:  # in place: ansible-runner writes this dict to the artifacts next
                clean = redactor.scrub(raw)
                raw.clear()
                raw.update(clean)
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
        kind = "check" if request.check else ",".join(request.tags) or "apply"
        with child("ansible-playbook", {"terry.run": kind, "terry.hosts": ",".join(request.hosts)}):
            if parent := traceparent():
                env["TRACEPARENT"] = parent
            return self._run(request, redactor, handle, args, env, started, events)

    def _run(
        self,
        request: RunRequest,
        redactor: Redactor,
        handle: Callable[[dict[str, Any]], bool],
        args: list[str],
        env: dict[str, str],
        started: float,
        events: list[RunnerEvent],
    ) -> RunResult:
        try:
            runner = init_runner(
                private_data_dir=str(request.private_dir),
                project_dir=str(request.project_dir),
                playbook=request.playbook,
                cmdline=shlex.join(args),
                limit=host_pattern(request.hosts) if request.hosts else None,
                forks=request.forks,
                envvars=env,
                timeout=request.timeout,
                event_handler=handle,
                # Given none, ansible-runner puts its own SIGINT and SIGTERM handlers on the
                # whole process at the first run (main thread) and never puts them back:
                # Ctrl-C and SIGTERM would only ever cancel an ansible run, and be ignored
                # between runs, overriding whoever else handles them (chaoslib removing a
                # fault before it exits). The process's own handling stays in force.
                cancel_callback=_never,
                quiet=True,
                json_mode=False,
                settings={"suppress_ansible_output": True},
            )
            runner.config.env = _job_env(runner.config.env, request)
            runner.run()
        except Exception as exc:  # ansible-runner raises bare exceptions when it cannot start
            raise RunnerError(f"ansible-runner could not start: {redactor(str(exc))}") from exc
        elapsed = time.monotonic() - started
        artifact_dir = Path(runner.config.artifact_dir) if runner.config else None
        if artifact_dir is not None and redactor:
            _redact_files(artifact_dir, redactor)
        try:
            status = RunStatus(runner.status)
        except ValueError:
            status = RunStatus.ERROR
        return RunResult(
            status=status,
            rc=int(runner.rc if runner.rc is not None else -1),
            stats=_stats(runner.stats),
            events=tuple(events),
            artifact_dir=artifact_dir,
            ansible_seconds=elapsed,
        )


def _never() -> bool:
    """ansible-runner's cancel callback: Terry never cancels a run by asking; a signal
    reaches the process as it would without ansible-runner (terry.appliers.ansible_runner)."""
    return False
