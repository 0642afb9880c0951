"""The pull request a reviewer decides from without leaving the page.

Everything that came from outside (alert labels and annotations, the diff, the commit
message) is shown inside fenced code blocks whose fence is longer than any run of backticks
in the text, so it cannot close the block, mention people, link, or trigger GitHub keywords
such as "closes #1", and made inert (``terry.inert``: control characters and bidirectional
overrides shown, not obeyed). The task files on the branch are shown the same way. Terry's
own words are outside the fences. A fence always opens and closes on a line of its own,
wherever it is put.

Besides the playbook (for a catalogue remedy, three ``import_role`` plays), the body lists
every task those plays run, with its module and arguments (``terry.forges.tasks``), so the
reviewer decides without opening the role. The whole body stays within what GitHub takes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from terry.forges.tasks import PlayTasks, planned_tasks, render_plays
from terry.inert import inert

__all__ = ["MARKER", "ReviewPacket", "fenced", "planned_tasks", "pr_body", "pr_title"]

# Terry finds its own pull requests by this marker (and never trusts it for anything else).
MARKER = "<!-- terry:proposal:{id} -->"
_MAX_DIFF = 20_000
_MAX_PLAYBOOK = 20_000
_MAX_TASKS = 24_000
_MAX_BODY = 65_000  # GitHub refuses a body over 65,536 characters
_MAX_NAMES = 4_000  # characters of host names in one cell; the others are counted


@dataclass(frozen=True)
class ReviewPacket:
    proposal_id: int
    incident_id: int
    incident_ref: str  # INC-2026-12-04-007
    remedy: str
    hosts: tuple[str, ...]
    environments: tuple[str, ...]
    tenants: tuple[str, ...]
    risk: str
    decision: str | None
    reasons: tuple[str, ...]
    policy_commit: str | None
    commit: str
    branch: str
    alertname: str
    labels: dict[str, Any]
    annotations: dict[str, Any]
    opened_at: datetime
    recurrence: int
    diagnosis: str  # the proposal commit's message: what, why, parameters, verify, rollback
    playbook_path: str | None
    playbook: str | None
    check_summary: dict[str, Any]
    check_diff: str | None
    ai_authored: bool = False
    confidence: int | None = None
    applier: str = "ansible"  # or argocd: the change is a manifest, applied by Argo CD
    target: str | None = None  # the Argo CD application
    # What the playbook runs, task by task, read from the proposal commit (``planned_tasks``)
    tasks: tuple[PlayTasks, ...] = ()
    # What the services' traces said (terry.traces.evidence), one fact a line; untrusted.
    traces: tuple[str, ...] = ()
    # Terry's confidence 0-100 (terry.proposals.confidence) and the rollout plan: the
    # hosts of each wave, in order, the first a canary when there are several.
    score: int | None = None
    waves: tuple[tuple[str, ...], ...] = ()


def fenced(text: str, lang: str = "") -> str:
    """``text`` as a code block it cannot break out of. The block starts and ends with a
    line break, so its fences are lines of their own after any text (``Result: ...``)."""
    text = inert(text, multiline=True)  # escapes and bidi overrides shown, not obeyed
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"\n{fence}{lang}\n{text.rstrip()}\n{fence}\n"


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… ({len(text) - limit} more characters; see the branch)"


def pr_title(p: ReviewPacket) -> str:
    hosts = ", ".join(p.hosts)
    title = f"terry #{p.proposal_id}: {p.remedy} on {hosts} ({p.alertname})"
    return inert(re.sub(r"[\x00-\x1f\x7f]+", " ", title))[:200]


def pr_body(p: ReviewPacket, *, details_url: str | None = None) -> str:
    """The body; the task list gets what room GitHub leaves after everything else, and the
    whole never passes GitHub's limit (a storm over thousands of hosts)."""
    without = _body(p, details_url, tasks_room=0)
    body = _body(p, details_url, tasks_room=max(0, min(_MAX_TASKS, _MAX_BODY - len(without))))
    return body if len(body) <= _MAX_BODY else _clip(body, _MAX_BODY - 100)


def _names(hosts: Sequence[str], room: int = _MAX_NAMES) -> str:
    """Host names for a table cell, as many as ``room`` characters take, then how many
    more (every one is in ``terry proposals show``)."""
    out: list[str] = []
    used = 0
    for n, host in enumerate(hosts):
        item = f"`{_cell(host)}`"
        if out and used + len(item) > room:
            return ", ".join(out) + f" … and {len(hosts) - n} more"
        out.append(item)
        used += len(item) + 2
    return ", ".join(out)


def _body(p: ReviewPacket, details_url: str | None, *, tasks_room: int) -> str:
    check = p.check_summary or {}
    verdict = "passed" if check.get("ok") else "FAILED"
    reasons = "\n".join(f"- {r}" for r in p.reasons) or "- (none recorded)"
    lines = [
        MARKER.format(id=p.proposal_id),
        f"## Terry proposal {p.proposal_id}: `{p.remedy}` on {len(p.hosts)} host(s)",
        "",
        "| | |",
        "| --- | --- |",
        f"| incident | {p.incident_id} · {p.incident_ref} (alert `{_cell(p.alertname)}`, "
        f"firing since "
        f"{p.opened_at.isoformat()}, seen {p.recurrence} time(s) before) |",
        f"| hosts | {_names(p.hosts)} |",
        f"| environment | {', '.join(_cell(e) for e in p.environments) or 'unknown'} |",
        f"| risk | **{p.risk}** |",
        f"| gate decision | **{p.decision or 'pending'}** (policies at `{p.policy_commit}`) |",
        f"| dry run | {verdict}: {check.get('changed', 0)} change(s), "
        f"failed hosts {check.get('failed_hosts') or 'none'}, "
        f"unreachable {check.get('unreachable_hosts') or 'none'} |",
        f"| commit | `{p.commit}` on `{_cell(p.branch)}` |",
    ]
    if p.score is not None:
        lines.append(f"| confidence | {p.score}/100 |")
    if len(p.waves) > 1:
        plan = "; ".join(
            f"wave {n}{' (canary: verified before the next)' if n == 0 else ''}: "
            + _names(hosts, max(200, _MAX_NAMES // len(p.waves)))
            for n, hosts in enumerate(p.waves)
        )
        lines.append(f"| rollout | {plan} |")
    if p.ai_authored:
        lines.append(f"| author | AI-authored (confidence {p.confidence}%) — review with care |")
    lines += [
        "",
        "### Why the gate asks for review",
        reasons,
        "",
        "### The alert (as received; untrusted)",
        fenced(json.dumps({"labels": p.labels, "annotations": p.annotations}, indent=2), "json"),
        *_traces(p),
        "",
        "### Diagnosis",
        fenced(p.diagnosis),
        "",
        *_change(p, tasks_room),
        "",
        "### How to decide",
        f"- **Approve**: approve this pull request (or comment `/terry apply`). Terry checks "
        f"that the head is still the dry-run commit, merges, {_applies(p)} and verifies.",
        "- **Reject**: close it, or comment `/terry reject <reason>`.",
        "- `/terry explain` answers with the incident's story. Only configured reviewers' "
        "approvals and commands count; every command gets a reply.",
    ]
    if details_url:
        lines += ["", f"Details: {details_url.rstrip('/')}/api/v1/proposals/{p.proposal_id}"]
    return "\n".join(lines) + "\n"


def _traces(p: ReviewPacket) -> list[str]:
    """What the services' traces said: the slowest and failing spans, the guilty service,
    upstream suspects (names and messages from Jaeger or Tempo: untrusted, fenced)."""
    if not p.traces:
        return []
    text = _clip("\n".join(p.traces), 4_000)
    return ["", "### Traces (as read from the tracing backend; untrusted)", fenced(text)]


def _applies(p: ReviewPacket) -> str:
    if p.applier == "git":
        return "(nothing runs on hosts: the merge is the change)"
    if p.applier == "argocd":
        return f"asks Argo CD to sync `{_cell(p.target or '')}`, waits for Synced and Healthy"
    return "applies over SSH"


def _tasks(p: ReviewPacket, room: int) -> list[str]:
    """Every task the playbook runs (its role files followed), in ``room`` characters."""
    if not p.tasks:
        return []
    head = [
        "",
        "### What it runs (every task, from the proposal commit)",
        "The plays above with the role task files and task imports they name followed: "
        "each task's module and arguments, and when it runs.",
    ]
    if room < 1_000:
        return [*head, "The list does not fit in this pull request: see the role on the branch."]
    return [*head, fenced(_clip(render_plays(p.tasks), room - 200))]


def _change(p: ReviewPacket, tasks_room: int = _MAX_TASKS) -> list[str]:
    """The change itself, its dry run and how it is undone, in the applier's terms."""
    path = _cell(p.playbook_path or "")
    diff = fenced(_clip(p.check_diff or "(no changes reported)", _MAX_DIFF), "diff")
    if p.applier == "argocd":
        app = _cell(p.target or "")
        return [
            f"### The manifest, as it will be (`{path}`)",
            fenced(_clip(p.playbook or "", _MAX_PLAYBOOK), "yaml"),
            "",
            f"### Dry run (Argo CD sync of `{app}` with `dryRun`, at the proposal commit)",
            diff,
            "",
            "### Rollback plan",
            f"Terry reverts the merge commit on main and syncs `{app}` again when the sync "
            "fails, the application turns Degraded or does not become Healthy in time, or "
            f"verification fails; a person can do the same with `terry proposals rollback "
            f"{p.proposal_id}` or by commenting `/terry rollback`.",
        ]
    if p.remedy in ("inventory-edit", "reconcile-drift"):
        return _desired_state_change(p, diff, tasks_room)
    return [
        f"### The playbook (`{path}`)",
        fenced(_clip(p.playbook or "", _MAX_PLAYBOOK), "yaml"),
        *_tasks(p, tasks_room),
        "",
        "### Check-mode diff (`ansible-playbook --check --diff`)",
        diff,
        "",
        "### Rollback plan",
        "The playbook's last play (tags `never, rollback`) undoes the fix. Terry runs it by "
        "itself when the apply or its verification fails; a person can run it with "
        f"`terry proposals rollback {p.proposal_id}` or by commenting `/terry rollback`.",
    ]


def _desired_state_change(p: ReviewPacket, diff: str, tasks_room: int) -> list[str]:
    """A drift fix or an inventory edit: the desired state is the reference, so the undo
    is a revert in git, not a play."""
    hosts = _cell(", ".join(p.hosts))
    if p.remedy == "inventory-edit":
        runs = (
            f"Once merged, the desired state (`site.yml`) runs on {hosts}; the dry run below "
            "is what it changes there."
            if p.playbook
            else "Nothing runs on hosts: the merge is the change. The dry run below is the "
            "inventory edit, read back by Ansible and validated."
        )
        head = ["### The inventory edit", "See the files of this pull request. " + runs]
        head += _tasks(p, tasks_room)
    else:
        head = [
            f"### The playbook (`{_cell(p.playbook_path or '')}`)",
            fenced(_clip(p.playbook or "", _MAX_PLAYBOOK), "yaml"),
            *_tasks(p, tasks_room),
        ]
    return [
        *head,
        "",
        "### Dry run",
        diff,
        "",
        "### Rollback plan",
        "None automatic: the desired state is the reference. If it does not take, Terry "
        "keeps the incident for a person; undo by reverting the merge commit "
        f"(`git revert -m 1`), then `terry drift fix --limit {hosts.split(',')[0]}`.",
    ]


def _cell(text: str) -> str:
    """Untrusted text inside a table cell: no pipes, backticks, newlines or markup starts."""
    cleaned = re.sub(r"[\x00-\x1f\x7f|`<>@\[\]]+", " ", str(text))
    return cleaned[:120]
