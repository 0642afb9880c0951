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
from typing import TYPE_CHECKING

from terry.config import Config
from terry.diagnosis.finding import Fix
from terry.diagnosis.rules import Diagnosis
from terry.drift.scan import SITE
from terry.errors import ConfigError, InputError
from terry.incidents import lifecycle as incidents
from terry.inventory.check import site_roles
from terry.inventory.editor import EditAction, InventoryEdit, apply_edit
from terry.inventory.hosts import Inventory, load_inventory
from terry.proposals.state import get
from terry.remedies.catalogue import Remedy, modules_of_roles
from terry.remedies.render import render_reconcile

if TYPE_CHECKING:
    from terry.pipeline import Pipeline

__all__ = ["INVENTORY_EDIT", "EditOutcome", "propose_edit"]

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
        verified_by=("inventory", "drift-scan") if converge else ("inventory",),
        resolves="inventory edit verified",
    )


def propose_edit(
    pipeline: Pipeline,
    edit: InventoryEdit,
    *,
    converge: bool | None = None,
    apply: bool = True,
    author: str = "terry",
) -> EditOutcome:
    """Make the edit on a branch and carry its proposal as far as the gate allows.

    ``author``: the person who asked for it, kept on the incident (label ``author``): in
    production somebody else approves it (terry.proposals.duties).

    ``converge`` None: a ``set`` on a host Ansible applies converges; nothing else does.
    """
    ctx = pipeline.ctx
    config, repo = ctx.config, ctx.repo
    sha, _catalogue, inventory = ctx.main.view()
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
        ctx.store,
        source="inventory",
        fingerprint="inventory:" + hashlib.sha256(repr(edit).encode()).hexdigest()[:24],
        title=f"Inventory edit: {edit.describe()}",
        host=edit.host,
        labels={
            "alertname": "InventoryEdit",
            "action": edit.action.value,
            "host": edit.host,
            "author": author,
        },
        annotations={"summary": edit.describe()},
        holder=ctx.holder,
        actor=author,
    )
    remedy = edit_remedy(tree, config, edit, converge=converge)
    site = f"{config.playbooks_path}/{SITE}"
    fix = Fix(
        Diagnosis(remedy, (target,), edit.as_params() | {"converge": converge}),
        base=sha,
        render=(
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
        # the edited inventory is checked first; converging, the desired state in check mode
        check=(GIT, "ansible") if converge else (GIT,),
    )
    done = pipeline.handle(incident_id, fix, apply=apply)
    assert done.proposal_id is not None
    with ctx.store.session() as session:
        row = get(session, done.proposal_id)
        branch, commit = row.branch, row.commit_sha
    return EditOutcome(
        edit.describe(),
        tuple(sorted(edits)),
        converge,
        incident_id,
        done.proposal_id,
        branch,
        commit,
        str(done.state),
        done.decision,
        done.reasons,
        done.note or None,
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
