"""The git applier: changes whose merge is the change (an inventory edit of the desired
state only). Nothing runs on hosts. Its dry run checks the edited inventory and shows the
files' diffs; applying it is the merge, done by review before this applier is asked.
"""

from __future__ import annotations

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
from terry.gitops.repo import Repo
from terry.inventory.edit_checks import check_edit

__all__ = ["GitApplier", "build", "commit_diffs", "edit_run"]


class GitApplier:
    name = "git"
    check_words = "the edited inventory, read by Ansible and validated"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def check(self, job: Job, on_event: OnEvent) -> RunResult:
        repo = self.ctx.repo
        problems = check_edit(self.ctx.config, repo, job.commit, job.params)
        diffs = None
        if not problems:
            parent = repo.head(f"{job.commit}^")
            diffs = commit_diffs(repo, job.commit, repo.changed_paths(parent, job.commit))
        return _told(edit_run(_host(job), problems, diffs), on_event)

    def apply(self, job: Job, on_event: OnEvent) -> RunResult:
        return _told(edit_run(_host(job), []), on_event)  # merged: the change is made

    def verify(self, job: Job, on_event: OnEvent) -> RunResult:
        return _told(edit_run(_host(job), []), on_event)  # nothing ran on hosts

    def rollback(self, job: Job, on_event: OnEvent) -> RunResult:
        raise RunnerError("a change whose merge is the change is rolled back by reverting it")


def build(ctx: Context, share: object) -> GitApplier:
    return GitApplier(ctx)


def _host(job: Job) -> str:
    return str(job.params.get("host") or job.hosts[0])


def _told(result: RunResult, on_event: OnEvent) -> RunResult:
    for event in result.events:
        on_event(event)
    return result


def edit_run(
    host: str, problems: list[str], diffs: list[tuple[str, str, str]] | None = None
) -> RunResult:
    """A dry run (or apply) of an edit that runs nothing on hosts, as a run result: failed
    with the problems, or ok with the inventory diffs (path, before, after)."""
    events: list[RunnerEvent] = []
    for seq, message in enumerate(problems, 1):
        events.append(
            RunnerEvent(
                seq, "inventory_check", host, "inventory", None, EventStatus.FAILED, message, (), {}
            )
        )
    for seq, (path, old, new) in enumerate(diffs or [], len(events) + 1):
        diff = {"before": old, "after": new, "before_header": path, "after_header": path}
        events.append(
            RunnerEvent(
                seq,
                "inventory_edit",
                host,
                f"edit {path}",
                "inventory",
                EventStatus.CHANGED,
                "",
                (diff,),
                {},
            )
        )
    stats = HostStats(failures=1) if problems else HostStats(ok=1, changed=len(diffs or []))
    return RunResult(
        RunStatus.FAILED if problems else RunStatus.SUCCESSFUL,
        1 if problems else 0,
        {host: stats},
        tuple(events),
        None,
        0.0,
    )


def commit_diffs(repo: Repo, commit: str, paths: list[str]) -> list[tuple[str, str, str]]:
    """(path, before, after) of each inventory file the proposal commit changes."""
    parent = repo.head(f"{commit}^")
    out: list[tuple[str, str, str]] = []
    for path in paths:
        old, new = repo.read_text(parent, path) or "", repo.read_text(commit, path) or ""
        if old != new:
            out.append((path, old, new))
    return out
