"""The ansible applier: a proposal's playbook run with ansible-runner from an export of the
commit (``terry.appliers.ansible_runner`` wraps ansible-runner itself).

Before it changes a host (apply, rollback) it checks that the host it reaches is the host
the inventory means: a probe play asks each host its name (``uname -n``, as the drift scan's
probe does) and compares it with ``terry_hostname`` or, without it, the inventory name. A
host with Ansible's local connection is this machine and has no name of its own to check,
unless that connection comes from another inventory source (``all: vars:`` of the example
inventory reaching the lab's hosts): then it is checked like any other, and refused. A
mismatch, or a host that does not answer, refuses the whole run before anything changes.

The probe is the first play of the changing run itself (a playbook written for the run
that imports the proposal's): ``any_errors_fatal`` on a linear strategy stops every host
when one fails it, so no play after it starts; Terry then reads the probe's answers and
refuses with the reason. One ansible start per change instead of two.

A run may be *held* (``Job.hold``, ``terry.appliers.hold``): the probe play then ends with
tasks that wait, on one host and on the controller (a lookup of the word's file, no
connection), for Terry's word; any word but ``go``, or none within the run's timeout, fails
them, and ``any_errors_fatal`` stops every host before the proposal's first play. A run
stopped so changed nothing: it is answered ``canceled`` (told ``stop``) or refused (it gave
up before the word came).

``apply_and_verify`` runs the fix play and the verify play in one ansible run (``--tags
apply,verify``: the rendered playbook has both) and hands back the two parts, told apart by
the play each event belongs to (``Verify: <remedy>``), each with its own status and
per-host stats: a verify that failed fails the verify part, not the fix.
"""

from __future__ import annotations

import json
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
    identity_refused,
    last_line,
)
from terry.appliers.hold import GO, GO_TASK, HOLD_TASK, STOP, Hold, retries, wait_tasks
from terry.context import Context
from terry.errors import ConfigError, GitError, RunnerError

__all__ = [
    "GO_TASK",
    "HOLD_TASK",
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
    holds = True  # a changing run may start early and wait for Terry's word (Job.hold)

    def __init__(self, ctx: Context, runner: AnsibleRunnerApplier | None = None) -> None:
        self.ctx = ctx
        self.runner = runner or AnsibleRunnerApplier()

    def check(self, job: Job, on_event: OnEvent) -> RunResult:
        return self._run(job, on_event, check=True)

    def apply(self, job: Job, on_event: OnEvent) -> RunResult:
        return self._changing(job, on_event, tags=())

    def verify(self, job: Job, on_event: OnEvent) -> RunResult:
        return self._run(job, on_event, tags=("verify",))

    def apply_and_verify(self, job: Job, on_event: OnEvent) -> tuple[RunResult, RunResult]:
        """The fix, then its verify play, in one ansible run: (the fix's part, the verify's
        part). A host whose fix failed runs no verify (Ansible drops it from the play). A
        held run told to stop is ``canceled`` as a whole: neither part ran."""
        ran = self._changing(job, on_event, tags=("apply", "verify"))
        if ran.status is RunStatus.CANCELED:
            return ran, ran
        return split_verify(ran, job.hosts)

    def rollback(self, job: Job, on_event: OnEvent) -> RunResult:
        return self._changing(job, on_event, tags=("rollback",))

    def _looks(self, commit: str) -> set[tuple[str, str]]:
        """(role, task file) of every remedy's look in the catalogue at ``commit``; none
        when it cannot be read (a held run then waits in the probe play)."""
        try:
            catalogue = self.ctx.main.view(commit)[1]
        except (ConfigError, GitError):  # a catalogue or inventory that does not load
            return set()
        return {(r.role, r.look) for r in catalogue.remedies if r.look is not None}

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
        self,
        job: Job,
        on_event: OnEvent,
        *,
        check: bool = False,
        tags: tuple[str, ...] = (),
        playbook: str | None = None,
    ) -> RunResult:
        if job.playbook is None:
            raise RunnerError(f"proposal {job.proposal_id} has no playbook to run")
        request = replace(
            self._request(job, playbook or job.playbook),
            vars_file=job.vars_path,
            check=check,
            tags=tags,
        )
        if job.recheck:
            request = replace(request, env={**request.env, "TERRY_RECHECK": "1"})
        return self.runner.run(request, on_event=on_event)

    # -- the host reached is the host meant -------------------------------------------------
    def _changing(self, job: Job, on_event: OnEvent, *, tags: tuple[str, ...]) -> RunResult:
        """A run that changes hosts: the identity probe as its first play (see the module's
        docstring). Raises ``RunnerError`` when a host failed the probe: nothing changed."""
        if job.playbook is None:
            raise RunnerError(f"proposal {job.proposal_id} has no playbook to run")
        tree = self.ctx.repo.tree(job.commit)
        expected = expected_names(tree, list(self.ctx.config.inventory), job.hosts)
        if not expected and job.hold is None:
            return self._run(job, on_event, tags=tags)
        private = job.run_dir / "identity"
        private.mkdir(parents=True, exist_ok=True)
        runner = self.ctx.config.runner
        strategy = runner.ansible_env().get("ANSIBLE_STRATEGY", "linear")
        wrapper = private / "probe-then-playbook.yml"
        wrapper.write_text(
            _probe_then(
                sorted(expected),
                tree / job.playbook,
                strategy,
                hold=job.hold,
                wait=runner.timeout,
                hold_in_play=job.hold is not None
                and _holds_in_play(tree / job.playbook, self._looks(job.commit)),
            ),
            encoding="utf-8",
        )
        result = self._run(job, on_event, tags=tags, playbook=str(wrapper))
        refusals = _refusals(result, expected)
        if refusals:
            raise RunnerError(identity_refused(refusals))
        if job.hold is not None and not _went_on(result) and not _failed_before_hold(result):
            return _unheld(result, Hold(job.hold))
        return result


def _went_on(result: RunResult) -> bool:
    """Whether a held run was let on: its go task passed (the word was go)."""
    return any(e.task == GO_TASK and e.status is EventStatus.OK for e in result.events)


def _failed_before_hold(result: RunResult) -> bool:
    """Whether every host failed before the run reached its hold (a remedy's look failed
    on each: the path is not a directory): the fix failed there, having changed nothing,
    and that is how the run is answered, whatever word Terry says."""
    return (
        not any(e.task == HOLD_TASK for e in result.events)
        and bool(result.stats)
        and all(s.failures or s.unreachable for s in result.stats.values())
    )


def _unheld(result: RunResult, hold: Hold) -> RunResult:
    """A held run that ended at its hold, before any change: ``canceled`` when Terry said
    stop; refused (``RunnerError``) when it ended without being told (the wait ran out, the
    run was stopped from outside), whatever Terry says after."""
    if hold.said() == STOP:
        return replace(result, status=RunStatus.CANCELED, rc=result.rc or 1, stats={})
    raise RunnerError(
        f"refused, nothing was changed: the run ended ({result.status.value}) before Terry "
        f"said {GO} to it"
    )


def _refusals(result: RunResult, expected: dict[str, tuple[str, str]]) -> list[str]:
    """Why each probed host was refused: it answered with another name, or did not answer
    (its name was not read). Empty when every host is the one the inventory means."""
    seen: dict[str, str] = {}
    trouble: dict[str, str] = {}
    for event in result.events:
        if event.host is None or event.task != IDENTITY_TASK:
            continue
        res = (event.raw.get("event_data") or {}).get("res") or {}
        answer = res.get("stdout") if isinstance(res, dict) else None
        if event.status in (EventStatus.OK, EventStatus.FAILED) and isinstance(answer, str):
            seen[event.host] = last_line(answer)
        elif event.status in (EventStatus.FAILED, EventStatus.UNREACHABLE):
            trouble[event.host] = event.message or event.status.value
    refusals = []
    for host, (wanted, why) in sorted(expected.items()):
        answer = seen.get(host)
        if answer is None:
            said = trouble.get(host) or f"the run ended {result.status.value} before it answered"
            refusals.append(f"{host}: its identity could not be checked ({said[:200]})")
        elif not _same_name(answer, wanted):
            refusals.append(
                f"{host} answers as {answer[:100]!r}, but {why} says {wanted!r}: Terry "
                "reached another machine"
            )
    return refusals


def _same_name(answer: str, wanted: str) -> bool:
    """As the drift scan compares: the full name, or its first label."""
    return answer == wanted or answer.split(".")[0] in (wanted, wanted.split(".")[0])


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
    verify = tuple(e for e in result.events if e.play.startswith(VERIFY_PLAY))
    seqs = {e.seq for e in verify}
    fix = tuple(e for e in result.events if e.seq not in seqs)
    if verify:  # the run's end belongs to both parts: whether it ran to it, each host judged
        verify += tuple(e for e in result.events if e.event == "playbook_on_stats")
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


def _probe_then(
    hosts: list[str],
    playbook: Path,
    strategy: str,
    *,
    hold: Path | None = None,
    wait: int = 900,
    hold_in_play: bool = False,
) -> str:
    """The changing run's playbook: the identity probe, then the proposal's own.

    The probe fails a host whose ``uname -n`` is not its ``terry_hostname`` (or inventory
    name), compared as ``_same_name`` does; ``any_errors_fatal`` then stops every host
    before the next play. A free strategy does not honour it, so the probe play runs
    linear (Mitogen's linear under Mitogen). Host names are data (``!unsafe``), never
    template text; ``raw`` needs no module and never runs in check mode.

    With ``hold``, the run waits for Terry's word in ``hold.wait_tasks``: at the end of the
    probe play, or, when ``hold_in_play`` (the proposal's fix play has them between its
    look and its change, ``_holds_in_play``), there, given the word's file with the
    imported playbook's vars. Either way the file's path is data (``!unsafe``) and the wait
    lasts ``wait`` seconds at most.
    """
    linear = strategy.replace("free", "linear")
    # the last non-empty line, as base.last_line reads it: a shell rc file's output comes first
    answer = (
        "(terry_identity.stdout_lines | default([]) | map('trim') | select | list"
        " | last | default('', true))"
    )
    want = "(terry_hostname | default(inventory_hostname) | string)"
    same = f"{answer} == {want} or {answer}.split('.')[0] in [{want}, {want}.split('.')[0]]"
    names = ", ".join(f"!unsafe {json.dumps(h)}" for h in hosts)
    probe_vars, held, imported_vars = f"terry_identity_hosts: [{names}]", "", ""
    if hold is not None:
        path = json.dumps(str(hold))
        word = f"terry_hold_file: !unsafe {path}, terry_hold_retries: {retries(wait)}"
        if hold_in_play:
            imported_vars = f"  vars: {{{word}}}\n"
        else:
            probe_vars += ", " + word
            tasks = yaml.safe_dump(wait_tasks(), sort_keys=False, width=1000)
            held = "".join(f"    {line}\n" for line in tasks.splitlines())
    return (
        "# Written by Terry for this run only: the identity probe, then the proposal's\n"
        "# playbook (terry/appliers/ansible.py).\n"
        "- name: Terry identity probe\n"
        "  hosts: all\n"
        "  gather_facts: false\n"
        "  any_errors_fatal: true\n"
        f"  strategy: {json.dumps(linear)}\n"
        "  tags: [always]\n"
        f"  vars: {{{probe_vars}}}\n"
        "  tasks:\n"
        f"    - name: {json.dumps(IDENTITY_TASK)}\n"
        "      ansible.builtin.raw: uname -n\n"
        "      check_mode: false\n"
        "      changed_when: false\n"
        "      register: terry_identity\n"
        f"      failed_when: {json.dumps(f'terry_identity.rc != 0 or not ({same})')}\n"
        "      when: inventory_hostname in terry_identity_hosts\n"
        f"{held}"
        f"- ansible.builtin.import_playbook: {json.dumps(str(playbook))}\n"
        f"{imported_vars}"
    )


def _holds_in_play(playbook: Path, looks: set[tuple[str, str]]) -> bool:
    """Whether the proposal's playbook waits for the word itself, as ``render`` writes it
    for a remedy with a look: a play whose tasks are one ``import_role`` of a look the
    catalogue declares (``looks``: (role, task file) pairs), then ``hold.wait_tasks``
    exactly, then the rest. Anything else (an older rendering, an edited branch, an
    AI-written playbook, text that is not a playbook) holds in the probe play, before every
    task of the proposal's: a task merely named like the wait, after a change, never lets a
    held wave change hosts before the canary is judged."""
    try:
        plays = yaml.safe_load(playbook.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    waits = wait_tasks()
    for play in plays if isinstance(plays, list) else ():
        tasks = play.get("tasks") if isinstance(play, dict) else None
        if not isinstance(tasks, list) or len(tasks) < 3 or tasks[1:3] != waits:
            continue
        look = tasks[0].get("ansible.builtin.import_role") if isinstance(tasks[0], dict) else None
        if isinstance(look, dict) and (look.get("name"), look.get("tasks_from")) in looks:
            return True
    return False


def build(ctx: Context, share: object) -> AnsibleApplier:
    return AnsibleApplier(ctx)
