"""The ansible applier: a proposal's playbook run with ansible-runner from an export of the
commit (``terry.appliers.ansible_runner`` wraps ansible-runner itself).

Before it changes a host (apply, rollback) it checks that the host it reaches is the host
the inventory means: a probe play asks each host its name (``uname -n``, as the drift scan's
probe does) and compares it with ``terry_hostname`` or, without it, the inventory name. A
host with Ansible's local connection is this machine and has no name of its own to check,
unless that connection comes from another inventory source (``all: vars:`` of the example
inventory reaching the lab's hosts): then it is checked like any other, and refused. A
mismatch, or a host that does not answer, refuses the whole run before anything changes.

``apply_and_verify`` runs the fix play and the verify play in one ansible run (``--tags
apply,verify``: the rendered playbook has both) and hands back the two parts, told apart by
the play each event belongs to (``Verify: <remedy>``), each with its own status and
per-host stats: a verify that failed fails the verify part, not the fix.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import yaml

from terry.appliers.ansible_runner import AnsibleRunnerApplier, RunRequest
from terry.appliers.base import (
    EventStatus,
    HostStats,
    Job,
    OnEvent,
    RunnerEvent,
    RunResult,
    RunStatus,
)
from terry.context import Context
from terry.errors import RunnerError

__all__ = [
    "IDENTITY_TASK",
    "VERIFY_PLAY",
    "AnsibleApplier",
    "build",
    "expected_names",
    "split_verify",
]

IDENTITY_TASK = "terry identity probe: uname -n"
VERIFY_PLAY = "Verify: "  # the name of the rendered verify play starts so (remedies/render.py)


class AnsibleApplier:
    """A proposal's playbook, from an export of its commit: the fix (dry run: in check mode
    with diff), then its ``verify`` and ``rollback`` plays by tag."""

    name = "ansible"
    check_words = "ansible-playbook --check --diff"

    def __init__(self, ctx: Context, runner: AnsibleRunnerApplier | None = None) -> None:
        self.ctx = ctx
        self.runner = runner or AnsibleRunnerApplier()

    def check(self, job: Job, on_event: OnEvent) -> RunResult:
        return self._run(job, on_event, check=True)

    def apply(self, job: Job, on_event: OnEvent) -> RunResult:
        self.confirm_identity(job)
        return self._run(job, on_event)

    def verify(self, job: Job, on_event: OnEvent) -> RunResult:
        return self._run(job, on_event, tags=("verify",))

    def apply_and_verify(self, job: Job, on_event: OnEvent) -> tuple[RunResult, RunResult]:
        """The fix, then its verify play, in one ansible run: (the fix's part, the verify's
        part). A host whose fix failed runs no verify (Ansible drops it from the play)."""
        self.confirm_identity(job)
        return split_verify(self._run(job, on_event, tags=("apply", "verify")), job.hosts)

    def rollback(self, job: Job, on_event: OnEvent) -> RunResult:
        self.confirm_identity(job)
        return self._run(job, on_event, tags=("rollback",))

    def _request(self, job: Job, playbook: str) -> RunRequest:
        config = self.ctx.config
        return RunRequest(
            project_dir=self.ctx.repo.tree(job.commit),
            playbook=playbook,
            private_dir=job.run_dir,
            inventory=tuple(config.inventory),
            hosts=job.hosts,
            forks=config.runner.forks,
            timeout=config.runner.timeout,
            env=config.runner.ansible_env(),
            withhold=config.secret_env_names,
        )

    def _run(
        self, job: Job, on_event: OnEvent, *, check: bool = False, tags: tuple[str, ...] = ()
    ) -> RunResult:
        if job.playbook is None:
            raise RunnerError(f"proposal {job.proposal_id} has no playbook to run")
        request = replace(
            self._request(job, job.playbook), vars_file=job.vars_path, check=check, tags=tags
        )
        if job.recheck:
            request = replace(request, env={**request.env, "TERRY_RECHECK": "1"})
        return self.runner.run(request, on_event=on_event)

    # -- the host reached is the host meant -------------------------------------------------
    def confirm_identity(self, job: Job) -> None:
        """Raise ``RunnerError`` unless every host of ``job`` that has a name to check
        answers with it (see the module's docstring)."""
        tree = self.ctx.repo.tree(job.commit)
        expected = expected_names(tree, list(self.ctx.config.inventory), job.hosts)
        if not expected:
            return
        private = job.run_dir / "identity"
        private.mkdir(parents=True, exist_ok=True)
        probe = private / "identity-probe.yml"
        probe.write_text(_probe_play(), encoding="utf-8")
        request = replace(
            self._request(job, str(probe)), private_dir=private, hosts=tuple(sorted(expected))
        )
        result = self.runner.run(request)
        seen: dict[str, str] = {}
        trouble: dict[str, str] = {}
        for event in result.events:
            if event.host is None or event.task != IDENTITY_TASK:
                continue
            if event.status is EventStatus.OK:
                res = (event.raw.get("event_data") or {}).get("res") or {}
                seen[event.host] = str(res.get("stdout") or "").strip()
            elif event.status in (EventStatus.FAILED, EventStatus.UNREACHABLE):
                trouble[event.host] = event.message or event.status.value
        refusals = []
        for host, (wanted, why) in sorted(expected.items()):
            answer = seen.get(host)
            if answer is None:
                said = trouble.get(host) or f"the probe ended {result.status.value}"
                refusals.append(f"{host}: its identity could not be checked ({said[:200]})")
                continue
            # As the drift scan compares: the full name, or its first label.
            if answer != wanted and answer.split(".")[0] not in (wanted, wanted.split(".")[0]):
                refusals.append(
                    f"{host} answers as {answer[:100]!r}, but {why} says {wanted!r}: Terry "
                    "reached another machine"
                )
        if refusals:
            raise RunnerError(
                "refused, nothing was changed: "
                + "; ".join(refusals)
                + " (set terry_hostname in the inventory where a host's own name differs)"
            )


def _play_of(event: RunnerEvent) -> str:
    data = event.raw.get("event_data") if isinstance(event.raw, dict) else None
    return str((data or {}).get("play") or "")


def _stats(events: tuple[RunnerEvent, ...]) -> dict[str, HostStats]:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for event in events:
        if event.host is None or event.status is None:
            continue
        field = {
            EventStatus.OK: "ok",
            EventStatus.IGNORED: "ok",
            EventStatus.FAILED: "failures",
            EventStatus.UNREACHABLE: "unreachable",
            EventStatus.SKIPPED: "skipped",
        }.get(event.status)
        if event.status is EventStatus.CHANGED:
            counts[event.host]["ok"] += 1
            field = "changed"
        if field is not None:
            counts[event.host][field] += 1
    return {host: HostStats(**fields) for host, fields in counts.items()}


def _span(events: tuple[RunnerEvent, ...]) -> float:
    """Seconds from the first to the last of ``events`` (ansible-runner's ``created``)."""
    times = []
    for event in events:
        created = event.raw.get("created") if isinstance(event.raw, dict) else None
        try:
            times.append(datetime.fromisoformat(str(created)))
        except ValueError:
            continue
    return (max(times) - min(times)).total_seconds() if len(times) > 1 else 0.0


def split_verify(result: RunResult, hosts: tuple[str, ...]) -> tuple[RunResult, RunResult]:
    """One ``--tags apply,verify`` run as (the fix's part, the verify's part).

    The fix succeeded when the run did, or when every failure was the verify's and the fix
    itself had none. The verify part says ``successful`` only when the run did and every
    host ran the verify play; a run that stopped early (timeout, error) or a host the verify
    never reached is not taken for healthy: its status is the run's, or ``error``.
    """
    verify = tuple(e for e in result.events if _play_of(e).startswith(VERIFY_PLAY))
    seqs = {e.seq for e in verify}
    fix = tuple(e for e in result.events if e.seq not in seqs)
    fix_stats, verify_stats = _stats(fix), _stats(verify)
    fix_trouble = any(s.failures or s.unreachable for s in fix_stats.values())
    verify_trouble = any(s.failures or s.unreachable for s in verify_stats.values())
    if fix_trouble:
        fix_status = RunStatus.FAILED
    elif result.status is RunStatus.SUCCESSFUL or verify:  # the verify play began: fix done
        fix_status = RunStatus.SUCCESSFUL
    else:
        fix_status = result.status
    reached = {e.host for e in verify if e.host is not None and e.status is not None}
    if result.status is RunStatus.SUCCESSFUL and not set(hosts) <= reached:
        verify_status = RunStatus.ERROR  # a host ran no verify task: it cannot be told
    elif result.status is RunStatus.FAILED and not verify_trouble:
        verify_status = RunStatus.ERROR
    else:
        verify_status = result.status
    verify_seconds = _span(verify)
    fix_part = replace(
        result,
        status=fix_status,
        rc=0 if fix_status is RunStatus.SUCCESSFUL else result.rc,
        stats=fix_stats,
        events=fix,
        ansible_seconds=max(0.0, result.ansible_seconds - verify_seconds),
    )
    verify_part = replace(
        result,
        status=verify_status,
        rc=0 if verify_status is RunStatus.SUCCESSFUL else (result.rc or 1),
        stats=verify_stats,
        events=verify,
        ansible_seconds=verify_seconds,
    )
    return fix_part, verify_part


def expected_names(
    base: Path, sources: list[str], hosts: tuple[str, ...]
) -> dict[str, tuple[str, str]]:
    """{host: (the name it must answer with, where that comes from)} for the hosts of
    ``hosts`` that have one to check, from the inventory at ``base``."""
    from terry.inventory.check import connection_leaks
    from terry.inventory.hosts import load_inventory

    inventory = load_inventory(base, sources)
    leaks = connection_leaks(base, sources, hosts)
    expected: dict[str, tuple[str, str]] = {}
    for name in hosts:
        host = inventory.hosts.get(name)
        if host is None:
            continue
        declared = host.variables.get("terry_hostname")
        leaked = name in leaks and "ansible_connection" in leaks[name].variables
        if declared:
            expected[name] = (str(declared), "its terry_hostname")
        elif host.connection != "local" or leaked:
            why = "its inventory name"
            if leaked:
                source = ", ".join(leaks[name].sources) or "another inventory source"
                why = (
                    f"its inventory name (its ansible_connection={host.connection} comes "
                    f"from {source})"
                )
            expected[name] = (name, why)
    return expected


def _probe_play() -> str:
    """One task per host: its node name, with ``raw`` (no module to build), never in check
    mode, changing nothing."""
    play = {
        "name": "Terry identity probe",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {
                "name": IDENTITY_TASK,
                "ansible.builtin.raw": "uname -n",
                "check_mode": False,
                "changed_when": False,
            }
        ],
    }
    return "# Written by Terry for this run only.\n" + yaml.safe_dump([play], sort_keys=False)


def build(ctx: Context, share: object) -> AnsibleApplier:
    return AnsibleApplier(ctx)
