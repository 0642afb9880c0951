"""Learning from outcomes: what the record says should (or should no longer) merge without
review, proposed as a commit to the policy data for a person to merge.

The shipped gate (``policies/gate.rego``) lets a remedy merge without review where the
static rules would not (medium risk, or a production host) only when it is listed for the
environment in ``settings.auto_merge`` *and* its record there holds. The record can only
take a listed remedy back to review (one failure is enough); it never lists one by itself.
``terry policy learn`` reads every remedy's record per environment and proposes the edit of
``auto_merge`` that the record supports: list what keeps succeeding, unlist what failed.
The edit is one commit on a branch (and a pull request, with a forge); merging it is the
approval, and the next gate decision reads it from main.

Each change is tried before it is proposed: the gate is asked about a typical proposal of
that remedy in that environment with the policies on main and with the edited data, so the
proposal shows the decision it changes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from terry.errors import PolicyError, TerryError
from terry.gate.engine import PolicySet
from terry.store.runs import History, remedy_records

if TYPE_CHECKING:
    from terry.pipeline import Pipeline

__all__ = [
    "Change",
    "LearnSettings",
    "Learned",
    "Standing",
    "learn",
    "propose_learned",
    "stand",
]

SETTINGS_KEYS = ("proven_min_runs", "proven_success_percent")


class Change(StrEnum):
    ADD = "add"  # list it: its record holds
    REMOVE = "remove"  # unlist it: listed, but its record has failures
    NONE = "none"


@dataclass(frozen=True)
class LearnSettings:
    """What the policy data on main says: the thresholds and the current listing."""

    path: str  # the data document holding terry.settings, relative to the repository
    min_runs: int
    success_percent: float
    auto_merge: dict[str, tuple[str, ...]]

    def holds(self, h: History) -> bool:
        return (
            h.runs >= self.min_runs
            and h.verified * 100 >= self.success_percent * h.runs
            and h.last_outcome == "verified"
        )


@dataclass(frozen=True)
class Standing:
    """One remedy in one environment: its record, whether it is listed, what should change."""

    remedy: str
    environment: str
    risk: str | None  # None: not in the catalogue (drift reconcile, AI-composed, edits)
    history: History
    listed: bool
    holds: bool
    change: Change
    why: str
    gate_before: str | None = None  # the decision on a typical proposal, main's policies
    gate_after: str | None = None  # the same with the change made

    def as_json(self) -> dict[str, Any]:
        return {
            "remedy": self.remedy,
            "environment": self.environment,
            "risk": self.risk,
            "record": self.history.as_input(),
            "listed": self.listed,
            "holds": self.holds,
            "change": self.change.value,
            "why": self.why,
            "gate_before": self.gate_before,
            "gate_after": self.gate_after,
        }


@dataclass(frozen=True)
class Learned:
    settings: LearnSettings
    policy_commit: str
    standings: tuple[Standing, ...]
    branch: str | None = None  # the proposal's branch (None: nothing proposed)
    commit: str | None = None
    already_proposed: bool = False  # the same edit is on that branch already
    pull_url: str | None = None
    pull_error: str | None = None

    @property
    def changes(self) -> tuple[Standing, ...]:
        return tuple(s for s in self.standings if s.change is not Change.NONE)

    def as_json(self) -> dict[str, Any]:
        return {
            "schema": "terry.policy-learn/v1",
            "policy_commit": self.policy_commit,
            "data_path": self.settings.path,
            "settings": {
                "proven_min_runs": self.settings.min_runs,
                "proven_success_percent": self.settings.success_percent,
                "auto_merge": {k: list(v) for k, v in self.settings.auto_merge.items()},
            },
            "standings": [s.as_json() for s in self.standings],
            "changes": [f"{s.change.value} {s.remedy}@{s.environment}" for s in self.changes],
            "branch": self.branch,
            "commit": self.commit,
            "already_proposed": self.already_proposed,
            "pull_url": self.pull_url,
            "pull_error": self.pull_error,
        }


def _settings_document(policies_dir: str, files: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
    """The JSON data document that holds ``terry.settings`` (file path, parsed)."""
    for path, text in sorted(files.items()):
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(document, dict) and isinstance(
            document.get("terry", {}).get("settings"), dict
        ):
            return path, document
    raise PolicyError(
        f"no JSON document in {policies_dir}/ holds terry.settings; the learned auto_merge "
        "list has nowhere to go (see docs/policy.md)"
    )


def read_settings(policies_dir: str, files: Mapping[str, str]) -> LearnSettings:
    path, document = _settings_document(policies_dir, files)
    settings = document["terry"]["settings"]
    for key in SETTINGS_KEYS:
        if not isinstance(settings.get(key), int | float):
            raise PolicyError(f"{path}: terry.settings.{key} is missing or not a number")
    listed = settings.get("auto_merge", {})
    if not isinstance(listed, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(e, str) for e in v)
        for k, v in listed.items()
    ):
        raise PolicyError(
            f"{path}: terry.settings.auto_merge must map remedy names to lists of environments"
        )
    return LearnSettings(
        path=path,
        min_runs=int(settings["proven_min_runs"]),
        success_percent=float(settings["proven_success_percent"]),
        auto_merge={k: tuple(v) for k, v in listed.items()},
    )


def _why(
    s: LearnSettings, h: History, *, listed: bool, useful: bool, risk: str | None
) -> tuple[Change, str]:
    record = f"{h.describe()} (needs {s.min_runs} runs at {s.success_percent:g}%, last verified)"
    if listed:
        if s.holds(h) or (h.runs < s.min_runs and h.runs == h.verified):
            return Change.NONE, f"listed; {record}"
        return Change.REMOVE, f"listed, but {record}: back to review"
    if risk is None:
        return Change.NONE, f"not a catalogue remedy; {record}"
    if risk == "high":
        return Change.NONE, "high risk: always reviewed"
    if not useful:
        return Change.NONE, f"low risk outside production merges already; {record}"
    if s.holds(h):
        return Change.ADD, f"{record}: may merge without review"
    return Change.NONE, record


def stand(
    settings: LearnSettings,
    records: Mapping[str, Any],
    risks: Mapping[str, str],
) -> tuple[Standing, ...]:
    """Every (remedy, environment) with a record or a listing, and what should change."""
    pairs: set[tuple[str, str]] = {
        (remedy, env) for remedy, record in records.items() for env in record.by_environment
    }
    pairs |= {(remedy, env) for remedy, envs in settings.auto_merge.items() for env in envs}
    out: list[Standing] = []
    for remedy, env in sorted(pairs):
        record = records.get(remedy)
        h = record.environment(env) if record else History(runs=0, verified=0, rolled_back=0)
        listed = env in settings.auto_merge.get(remedy, ())
        risk = risks.get(remedy)
        useful = risk == "medium" or env == "production"
        change, why = _why(settings, h, listed=listed, useful=useful, risk=risk)
        out.append(Standing(remedy, env, risk, h, listed, settings.holds(h), change, why))
    return tuple(out)


def edited_listing(settings: LearnSettings, changes: tuple[Standing, ...]) -> dict[str, list[str]]:
    listing = {k: set(v) for k, v in settings.auto_merge.items()}
    for s in changes:
        if s.change is Change.ADD:
            listing.setdefault(s.remedy, set()).add(s.environment)
        elif s.change is Change.REMOVE:
            listing.get(s.remedy, set()).discard(s.environment)
    return {k: sorted(v) for k, v in sorted(listing.items()) if v}


def edit_document(text: str, listing: dict[str, list[str]]) -> str:
    """The data document with ``terry.settings.auto_merge`` replaced (key order kept)."""
    document = json.loads(text)
    document["terry"]["settings"]["auto_merge"] = listing
    return json.dumps(document, indent=2) + "\n"


def _gate_input(s: Standing, modules: tuple[str, ...], overall: History) -> dict[str, Any]:
    """A typical proposal of the remedy on one host of the environment, its dry run clean."""
    return {
        "proposal_id": 0,
        "remedy": s.remedy,
        "risk": s.risk or "medium",
        "environment": s.environment,
        "tenants": [],
        "labels": {},
        "hosts": [],
        "host_count": 1,
        "modules": list(modules),
        "recurrence": 0,
        "history": {**overall.as_input(), "in_environment": s.history.as_input()},
        "check": {"ok": True, "changed": 1, "failed_hosts": [], "unreachable_hosts": []},
        "ai_authored": False,
    }


def _policy_files(pipeline: Pipeline, sha: str) -> dict[str, str]:
    tree = pipeline.ctx.repo.tree(sha)
    root = tree / pipeline.ctx.config.policy.path
    if not root.is_dir():
        return {}
    return {
        str(p.relative_to(tree)): p.read_text(encoding="utf-8")
        for p in sorted(root.rglob("*.json"))
    }


def learn(pipeline: Pipeline) -> Learned:
    """Read the record and main's policy data; try each change against the gate."""
    sha, catalogue, _inventory = pipeline.ctx.main.view()
    files = _policy_files(pipeline, sha)
    settings = read_settings(pipeline.ctx.config.policy.path, files)
    records = remedy_records(pipeline.ctx.store)
    risks = {r.name: r.risk.value for r in catalogue.remedies}
    standings = stand(settings, records, risks)
    changes = tuple(s for s in standings if s.change is not Change.NONE)
    if not changes:
        return Learned(settings, sha, standings)
    before = pipeline.ctx.main.policies(sha)
    edited_text = edit_document(files[settings.path], edited_listing(settings, changes))
    after = PolicySet(before.modules, _edited_data(before, files, settings.path, edited_text), None)
    tried: list[Standing] = []
    for s in standings:
        if s.change is Change.NONE:
            tried.append(s)
            continue
        remedy = catalogue.get(s.remedy)
        modules = tuple(remedy.modules) if remedy else ()
        overall = records[s.remedy].overall if s.remedy in records else s.history
        case = _gate_input(s, modules, overall)
        now, then = (pipeline.steps.gate.engine.decide(p, case) for p in (before, after))
        if any("failing closed" in r for r in then.reasons):
            raise TerryError(f"the edited policy data does not evaluate: {then.reasons[0]}")
        tried.append(replace(s, gate_before=now.verdict.value, gate_after=then.verdict.value))
    return Learned(settings, sha, tuple(tried))


def _edited_data(
    policies: PolicySet, files: Mapping[str, str], path: str, edited: str
) -> tuple[dict[str, Any], ...]:
    """The policy set's data documents with the settings document replaced by ``edited``."""
    original = json.loads(files[path])
    return tuple(json.loads(edited) if d == original else d for d in policies.data)


def _message(learned: Learned) -> str:
    adds = [f"{s.remedy} in {s.environment}" for s in learned.changes if s.change is Change.ADD]
    removes = [
        f"{s.remedy} in {s.environment}" for s in learned.changes if s.change is Change.REMOVE
    ]
    parts = ([f"auto-merge {', '.join(adds)}"] if adds else []) + (
        [f"review again {', '.join(removes)}"] if removes else []
    )
    title = "policy: learn from outcomes: " + "; ".join(parts)
    lines = [title[:200], ""]
    for s in learned.changes:
        lines.append(
            f"- {s.change.value} {s.remedy} in {s.environment}: {s.why} "
            f"(a typical proposal: {s.gate_before} -> {s.gate_after})"
        )
    lines += ["", f"Terry-Policy-Learn: {learned.policy_commit}"]
    return "\n".join(lines) + "\n"


def pull_body(learned: Learned) -> str:
    rows = [
        "Terry read every remedy's record per environment and proposes this change to "
        f"`terry.settings.auto_merge` in `{learned.settings.path}`. Merging it is the "
        "approval: the gate reads it from main on its next decision. A listed remedy still "
        "drops back to review on its first failure.",
        "",
        "| change | remedy | environment | record | a typical proposal |",
        "| --- | --- | --- | --- | --- |",
    ]
    for s in learned.changes:
        record = s.history.describe().replace("|", "\\|")
        if s.history.mean_seconds_to_fix is not None:
            record += f", mean {s.history.mean_seconds_to_fix:.0f} s to fix"
        rows.append(
            f"| {s.change.value} | `{s.remedy}` | {s.environment} | {record} | "
            f"{s.gate_before} → {s.gate_after} |"
        )
    return "\n".join(rows) + "\n"


def propose_learned(pipeline: Pipeline, learned: Learned) -> Learned:
    """Commit the learned edit on a branch (one branch per distinct edit: proposing the same
    edit again finds it), and open its pull request when a forge is configured."""
    if not learned.changes:
        return learned
    listing = edited_listing(learned.settings, learned.changes)
    digest = hashlib.sha256(json.dumps(listing, sort_keys=True).encode()).hexdigest()[:10]
    branch = pipeline.ctx.repo.check_branch_name(f"terry/policy-learn-{digest}")
    files = _policy_files(pipeline, learned.policy_commit)
    if pipeline.ctx.repo.ref_exists(branch):
        learned = replace(
            learned, branch=branch, commit=pipeline.ctx.repo.head(branch), already_proposed=True
        )
    else:
        text = edit_document(files[learned.settings.path], listing)
        commit = pipeline.ctx.repo.commit_files(
            branch=branch,
            files={learned.settings.path: text},
            message=_message(learned),
            base=learned.policy_commit,
        )
        learned = replace(learned, branch=branch, commit=commit)
    try:
        url = pipeline.review.open_change(
            branch,
            title=_message(learned).splitlines()[0],
            body=pull_body(learned),
            labels=("terry", "policy"),
        )
        if url is not None:
            learned = replace(learned, pull_url=url)
    except TerryError as exc:
        learned = replace(learned, pull_error=str(exc))
    return learned
