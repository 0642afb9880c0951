"""The applier seam: the run types every applier returns, and the ``Applier`` protocol.

An applier carries one proposal's commit to its hosts. It is asked four things, each of
which returns a ``RunResult`` (a failed run is an outcome, returned as data, not raised):
``check`` (the dry run), ``apply``, ``verify`` and ``rollback``. ``RunnerError`` means it
could not start at all. Appliers know nothing of the store or the state machine: the steps
record their runs (``terry.steps.record``) and move the proposal.

The event and result types follow ansible-runner's events (one per host and task); Argo CD
and the git applier speak them too, so a run reads the same whichever applier made it.
Implementations are picked by name from ``terry.appliers.registry``.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "APPLIERS",
    "Applier",
    "EventStatus",
    "HostStats",
    "Job",
    "OnEvent",
    "Registration",
    "RunKind",
    "RunResult",
    "RunStatus",
    "RunnerEvent",
    "Share",
    "carries",
    "host_pattern",
    "identity_refused",
    "last_line",
    "render_diffs",
]


class RunKind(StrEnum):
    CHECK = "check"
    APPLY = "apply"
    VERIFY = "verify"
    ROLLBACK = "rollback"


class EventStatus(StrEnum):
    OK = "ok"
    CHANGED = "changed"
    FAILED = "failed"
    IGNORED = "ignored"
    SKIPPED = "skipped"
    UNREACHABLE = "unreachable"


class RunStatus(StrEnum):
    SUCCESSFUL = "successful"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELED = "canceled"
    ERROR = "error"


_HOST_EVENTS = {
    "runner_on_ok": EventStatus.OK,
    "runner_on_failed": EventStatus.FAILED,
    "runner_on_skipped": EventStatus.SKIPPED,
    "runner_on_unreachable": EventStatus.UNREACHABLE,
}


@dataclass(frozen=True)
class RunnerEvent:
    seq: int
    event: str
    host: str | None
    task: str | None
    action: str | None
    status: EventStatus | None
    message: str
    diffs: tuple[dict[str, Any], ...]
    raw: dict[str, Any] = field(repr=False, compare=False)
    # When Terry had the event (``time.monotonic()``): never before it happened. Verify
    # reads the fix done by the time its verify play's first event was seen.
    seen: float = field(default_factory=time.monotonic, repr=False, compare=False)

    @classmethod
    def from_runner(cls, raw: dict[str, Any]) -> RunnerEvent:
        name = str(raw.get("event", ""))
        data = raw.get("event_data") or {}
        result = data.get("res") if isinstance(data.get("res"), dict) else {}
        status = _HOST_EVENTS.get(name)
        if status is EventStatus.OK and result.get("changed"):
            status = EventStatus.CHANGED
        if status is EventStatus.FAILED and data.get("ignore_errors"):
            status = EventStatus.IGNORED
        diffs = result.get("diff") or ()
        if isinstance(diffs, dict):
            diffs = (diffs,)
        message = result.get("msg") or ""
        if not message and status is EventStatus.FAILED:
            message = str(result.get("stderr") or result.get("stdout") or "")
        return cls(
            seq=int(raw.get("counter") or 0),
            event=name,
            host=data.get("host"),
            task=data.get("task") or data.get("play"),
            action=data.get("resolved_action") or data.get("task_action"),
            status=status,
            message=str(message)[:2000],
            diffs=tuple(d for d in diffs if isinstance(d, dict)),
            raw=raw,
        )

    @property
    def play(self) -> str:
        """The name of the play the event came from ("" for none: Terry's own notes)."""
        data = self.raw.get("event_data") if isinstance(self.raw, dict) else None
        return str((data or {}).get("play") or "") if isinstance(data, dict) else ""


@dataclass(frozen=True)
class HostStats:
    ok: int = 0
    changed: int = 0
    failures: int = 0
    unreachable: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class RunResult:
    status: RunStatus
    rc: int
    stats: dict[str, HostStats]
    events: tuple[RunnerEvent, ...]
    artifact_dir: Path | None
    ansible_seconds: float
    # The commit the run acted on when it is not the one it was asked for (an Argo CD
    # rollback syncs the revert commit it made).
    revision: str | None = None

    @property
    def failed_hosts(self) -> tuple[str, ...]:
        return tuple(sorted(h for h, s in self.stats.items() if s.failures))

    @property
    def unreachable_hosts(self) -> tuple[str, ...]:
        return tuple(sorted(h for h, s in self.stats.items() if s.unreachable))

    @property
    def changed(self) -> int:
        return sum(s.changed for s in self.stats.values())

    @property
    def ok(self) -> bool:
        return (
            self.status is RunStatus.SUCCESSFUL
            and not self.failed_hosts
            and not self.unreachable_hosts
        )

    def summary(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "rc": self.rc,
            "ok": self.ok,
            "changed": self.changed,
            "failed_hosts": list(self.failed_hosts),
            "unreachable_hosts": list(self.unreachable_hosts),
        }

    def failure_messages(self) -> list[str]:
        return [
            f"{e.host}: {e.task}: {e.message}".strip()
            for e in self.events
            if e.status in (EventStatus.FAILED, EventStatus.UNREACHABLE)
        ]

    def diff_text(self) -> str:
        """What ``--diff`` would print, per host and task, as unified diffs."""
        out: list[str] = []
        for event in self.events:
            if event.status is not EventStatus.CHANGED:
                continue
            out.append(f"## {event.host} · {event.task} ({event.action})")
            if not event.diffs:
                out.append("(changed; the module reported no diff)")
            for diff in event.diffs:
                out.extend(_render_diff(diff))
        return "\n".join(out)


def render_diffs(diffs: Iterable[dict[str, Any]]) -> str:
    """Ansible's ``diff`` results as unified diffs (what ``--diff`` would print)."""
    return "\n".join(line for diff in diffs for line in _render_diff(diff))


def host_pattern(hosts: Iterable[str]) -> str:
    """Hosts as one Ansible host pattern (a play's ``hosts:``, ``--limit``): joined with
    commas, never colons, which Ansible splits a pattern on when it has no comma, and of
    which an IPv6 address is made."""
    return ",".join(hosts)


def identity_refused(why: Iterable[str]) -> str:
    """How an applier refuses a run its identity probe stopped before any change (a host
    that answered as another machine, or could not be asked): the ansible applier's wrapper
    play and the AWX templates' entry playbook say it alike."""
    return (
        "refused, nothing was changed: "
        + "; ".join(why)
        + " (set terry_hostname in the inventory where a host's own name differs)"
    )


def last_line(stdout: str) -> str:
    """A ``raw`` command's own answer: its output's last non-empty line. The user's shell
    reads its rc files before the command runs, and what they print (a banner, a version
    manager's warning on stderr, merged on SSH's terminal) comes first."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "".join(f"{k}: {v}\n" for k, v in value.items())
    return "" if value is None else f"{value}\n"


def _render_diff(diff: dict[str, Any]) -> list[str]:
    if "prepared" in diff:
        return [str(diff["prepared"]).rstrip("\n")]
    before, after = _as_text(diff.get("before")), _as_text(diff.get("after"))
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"before: {diff.get('before_header', '')}".strip(),
        tofile=f"after: {diff.get('after_header', '')}".strip(),
    )
    return ["".join(lines).rstrip("\n")] if before != after else []


OnEvent = Callable[[RunnerEvent], None]


@dataclass(frozen=True)
class Job:
    """What an applier is given of a proposal for one run."""

    proposal_id: int
    kind: RunKind
    commit: str  # the proposal commit (check) or its merge on main (apply, verify, rollback)
    hosts: tuple[str, ...]
    run_dir: Path  # private to this run: artifacts, scratch files
    playbook: str | None = None
    vars_path: str | None = None
    branch: str | None = None
    target: str | None = None  # what the applier addresses beyond hosts (an Argo CD app)
    params: dict[str, Any] = field(default_factory=dict)
    # A look, not a wait: the re-check before an apply asks whether the problem still holds
    # now; a remedy's verify may skip its waiting for things to come up (TERRY_RECHECK=1).
    recheck: bool = False
    # A changing run started early (terry.appliers.hold): before its first change it waits
    # for Terry's word in this file; only "go" lets it on. Asked only of appliers that hold.
    hold: Path | None = None
    # An applier whose run goes on in another system says where, as soon as it is there
    # ("awx:<job id>"): recorded, so that if Terry dies a restart stops it (``stop_remote``,
    # terry.store.runs.reap) before freeing the run's hosts.
    on_remote: Callable[[str], None] | None = field(default=None, compare=False, repr=False)


class Applier(Protocol):
    """One way of carrying a commit to hosts. ``name`` is its registry key, stored on each
    proposal (``proposals.applier``)."""

    name: str
    check_words: str  # what its dry run is, in words, for progress lines

    def check(self, job: Job, on_event: OnEvent) -> RunResult: ...

    def apply(self, job: Job, on_event: OnEvent) -> RunResult: ...

    def verify(self, job: Job, on_event: OnEvent) -> RunResult: ...

    def rollback(self, job: Job, on_event: OnEvent) -> RunResult: ...


class Share(Protocol):
    """Where commits are shared before an applier that reads git from elsewhere (Argo CD
    reads the forge) is asked to use them. Review implements it: locally there is nothing
    to share; with a forge, branches and main are pushed, and main fetched."""

    def share_branch(self, branch: str) -> None: ...

    def share_main(self) -> None: ...

    def refresh_main(self) -> None: ...


@dataclass(frozen=True)
class Registration:
    module: str  # has ``build(ctx, share) -> Applier``; imported on first use
    targets: bool  # an inventory target may name it (``terry_applier``)
    # It runs the playbooks Terry renders (the remedies whose applier is "ansible").
    playbooks: bool = False


# Every applier, by the name proposals and the inventory use. A new applier is one module
# and one line here (``terry.appliers.registry`` builds them).
APPLIERS: Mapping[str, Registration] = {
    "ansible": Registration("terry.appliers.ansible", targets=True, playbooks=True),
    "argocd": Registration("terry.appliers.argocd", targets=True),
    "awx": Registration("terry.appliers.awx", targets=True, playbooks=True),  # docs/awx.md
    "git": Registration("terry.appliers.git", targets=False),  # edits whose merge is the change
}


def carries(host_applier: str, remedy_applier: str) -> bool:
    """Whether a host applied by ``host_applier`` can take a remedy made for
    ``remedy_applier``: the same one, or any applier that runs playbooks for a playbook
    remedy (an AWX host takes the remedies Ansible runs)."""
    if host_applier == remedy_applier:
        return True
    host, remedy = APPLIERS.get(host_applier), APPLIERS.get(remedy_applier)
    return host is not None and remedy is not None and host.playbooks and remedy.playbooks
