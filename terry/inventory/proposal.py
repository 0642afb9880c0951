"""Inventory edits as proposals: GitOps for the desired state itself.

``terry inventory add|remove|set`` edits the YAML inventory on a branch (``terry.
inventory_yaml``) and the edit takes the path every fix takes: an incident of source
``inventory``, a proposal commit, a dry run, the gate, review or merge, apply, verify.

- The dry run loads the edited inventory with Ansible's loader, checks that it says what
  was asked, and that ``terry inventory validate`` finds no new problem on the host. An
  edit that *converges* (``set`` by default) also runs the desired state
  (``playbooks/site.yml``) on the host in check mode: its diff is what the edit will change
  on the host.
- Apply: a converging edit runs ``site.yml`` on the host (applier ``ansible``); an edit of
  the desired state only (``remove``, ``add`` by default) has nothing to run (applier
  ``git``): merging is the change.
- Verify: the inventory on main says what was asked (and, converging, a drift scan of the
  host is clean). There is no automatic rollback: the rollback is reverting the merge.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from terry.appliers.ansible_runner import (
    EventStatus,
    HostStats,
    RunnerEvent,
    RunResult,
    RunStatus,
)
from terry.config import Config
from terry.diagnosis.rules import Diagnosis
from terry.drift.scan import SITE
from terry.errors import ConfigError, InputError
from terry.gitops.repo import Repo
from terry.incidents import lifecycle as incidents
from terry.inventory.check import site_roles, validate
from terry.inventory.editor import EditAction, InventoryEdit, apply_edit, parse_var_path
from terry.inventory.hosts import Host, Inventory, load_inventory
from terry.proposals.state import get
from terry.remedies.catalogue import Remedy, modules_of_roles
from terry.remedies.render import render_reconcile
from terry.verify.judge import Outcome, Verification

if TYPE_CHECKING:
    from terry.pipeline import Pipeline

__all__ = [
    "INVENTORY_EDIT",
    "EditOutcome",
    "check_edit",
    "edit_run",
    "propose_edit",
    "verify_edit",
]

INVENTORY_EDIT = "inventory-edit"
# The applier of an edit with nothing to run on hosts: merging it is the change.
GIT = "git"


@dataclass(frozen=True)
class EditOutcome:
    edit: str  # what was asked, in words
    files: tuple[str, ...]
    converge: bool
    incident_id: int
    proposal_id: int
    branch: str | None
    commit: str | None
    state: str
    decision: str | None
    reasons: tuple[str, ...]
    outcome: str | None


def edit_remedy(tree: Path, config: Config, edit: InventoryEdit, *, converge: bool) -> Remedy:
    """What the gate sees of an inventory edit: medium risk, and the modules of the desired
    state when it converges."""
    site = tree / config.playbooks_path / SITE
    modules = modules_of_roles(tree / config.roles_path, site_roles(site)) if converge else ()
    then = f"run {config.playbooks_path}/{SITE} on {edit.host}" if converge else "nothing to run"
    return Remedy.of_desired_state(
        INVENTORY_EDIT,
        summary=f"Inventory: {edit.describe()}",
        role="inventory",
        alertname="InventoryEdit",
        modules=tuple(modules),
        verify_summary=(
            "The inventory on main says so"
            + (f", and a drift scan of {edit.host} finds nothing to change" if converge else "")
        ),
        rollback_summary="None automatic: revert the merge commit (git revert -m 1), then "
        f"'terry drift fix --limit {edit.host}'",
        source=f"inventory ({then})",
    )


def propose_edit(
    pipeline: Pipeline, edit: InventoryEdit, *, converge: bool | None = None, apply: bool = True
) -> EditOutcome:
    """Make the edit on a branch and carry its proposal as far as the gate allows.

    ``converge`` None: a ``set`` on a host Ansible applies converges; nothing else does.
    """
    config, repo = pipeline.config, pipeline.repo
    sha, _catalogue, inventory = pipeline.main_view()
    tree = repo.tree(sha)
    before = inventory.hosts.get(edit.host)
    if converge is None:
        converge = (
            edit.action is EditAction.SET and before is not None and before.applier == "ansible"
        )
    if converge and edit.action is EditAction.REMOVE:
        raise InputError("a removed host has no desired state to converge to")
    if converge and before is not None and before.applier != "ansible":
        raise InputError(f"{edit.host} is applied by {before.applier}; it cannot converge")
    edits = apply_edit(tree, config.inventory, edit, before)
    after = _load(tree, config, edits)
    target = after.hosts.get(edit.host) or before
    assert target is not None  # add: present after; set/remove: present before
    incident_id = incidents.open_incident(
        pipeline.store,
        source="inventory",
        fingerprint="inventory:" + hashlib.sha256(repr(edit).encode()).hexdigest()[:24],
        title=f"Inventory edit: {edit.describe()}",
        host=edit.host,
        labels={"alertname": "InventoryEdit", "action": edit.action.value, "host": edit.host},
        annotations={"summary": edit.describe()},
        holder=pipeline.holder,
    )
    remedy = edit_remedy(tree, config, edit, converge=converge)
    site = f"{config.playbooks_path}/{SITE}"
    proposal_id = pipeline.propose(
        incident_id,
        Diagnosis(remedy, (target,), edit.as_params() | {"converge": converge}),
        base=sha,
        renderer=(
            (
                lambda pid, iid: render_reconcile(
                    proposal_id=pid, incident_id=iid, site=site, name=INVENTORY_EDIT
                )
            )
            if converge
            else (lambda pid, iid: None)
        ),
        edits=edits,
        applier="ansible" if converge else GIT,
    )
    incidents.mark_diagnosed(pipeline.store, incident_id, host=edit.host)
    pipeline.advance(proposal_id, apply=apply)
    with pipeline.store.session() as session:
        row = get(session, proposal_id)
        return EditOutcome(
            edit.describe(),
            tuple(sorted(edits)),
            converge,
            incident_id,
            proposal_id,
            row.branch,
            row.commit_sha,
            row.state,
            row.decision,
            tuple(row.reasons),
            row.outcome,
        )


def _load(tree: Path, config: Config, edits: dict[str, str | None]) -> Inventory:
    """The inventory as it would read with ``edits`` made (in a scratch copy of ``tree``)."""
    with tempfile.TemporaryDirectory(prefix="terry-edit-") as scratch:
        copy = Path(scratch) / "tree"
        shutil.copytree(tree, copy, symlinks=True)
        for path, text in edits.items():
            if text is None:
                (copy / path).unlink(missing_ok=True)
            else:
                (copy / path).write_text(text, encoding="utf-8")
        try:
            return load_inventory(copy, config.inventory)
        except ConfigError as exc:
            raise InputError(f"the edited inventory does not load: {exc}") from exc


# -- dry run and verification -------------------------------------------------------------


def _says(inventory: Inventory, params: dict[str, Any]) -> list[str]:
    """What the inventory fails to say of what the edit asked (empty: it says it all)."""
    host = str(params["host"])
    found = inventory.hosts.get(host)
    action = EditAction(params["action"])
    if action is EditAction.REMOVE:
        return [f"{host} is still in the inventory"] if found else []
    if found is None:
        return [f"{host} is not in the inventory"]
    missing: list[str] = []
    if action is EditAction.ADD and params.get("group") not in found.groups:
        missing.append(f"{host} is not in group {params.get('group')}")
    for name, value in (params.get("set") or {}).items():
        seen = _value(found, parse_var_path(name))
        if seen != ("set", value) and seen[0] != "named":
            missing.append(f"{host}: {name} is not {value!r}")
    return missing


def _value(host: Host, path: tuple[str, ...]) -> tuple[str, Any]:
    """("set", value) for a Terry variable, ("named", None) for another one Ansible has
    (only Terry's variables are kept with their values), ("unset", None) when absent."""
    if path[0] not in host.variables:
        return ("named", None) if path[0] in host.var_names and len(path) == 1 else ("unset", None)
    node: Any = host.variables
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return ("unset", None)
        node = node[key]
    return ("set", node)


def check_edit(config: Config, repo: Repo, commit: str, params: dict[str, Any]) -> list[str]:
    """The dry run's inventory half: the edited inventory loads, says what was asked, and
    adds no ``validate`` problem on the host. Returns what is wrong."""
    host = str(params["host"])
    parent = repo.head(f"{commit}^")
    try:
        after = load_inventory(repo.tree(commit), config.inventory)
    except ConfigError as exc:
        return [f"the edited inventory does not load: {exc}"]
    wrong = _says(after, params)
    before_tree = repo.tree(parent)
    known = {
        (p.rule, p.message)
        for p in validate(config, before_tree, load_inventory(before_tree, config.inventory))
        if p.host == host
    }
    wrong.extend(
        f"inventory validate: {p.rule}: {p.message}"
        for p in validate(config, repo.tree(commit), after)
        if p.host == host and (p.rule, p.message) not in known
    )
    return wrong


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


def verify_edit(config: Config, repo: Repo, params: dict[str, Any]) -> Verification:
    """After the merge: the inventory on main, read by Ansible, says what was asked."""
    try:
        inventory = load_inventory(repo.tree(repo.head()), config.inventory)
    except ConfigError as exc:
        return Verification(Outcome.FAILED, (f"the inventory on main does not load: {exc}",))
    missing = _says(inventory, params)
    if missing:
        return Verification(Outcome.FAILED, tuple(missing))
    return Verification(Outcome.VERIFIED, (f"the inventory on main says so ({params['host']})",))
