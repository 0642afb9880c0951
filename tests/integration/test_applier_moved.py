"""Re-check before acting: the hosts' applier is the one the proposal was judged for.

A host's ``terry_applier`` changed on main after the proposal's commit (web-02 moved to
AWX). A fix whose merge changes nothing by itself (a playbook for Ansible or AWX) is not
applied by the applier the host left; a merge that is the change (an Argo CD manifest, an
inventory edit) is already on main and is not withdrawn. Through the real precheck on a real
repository and store (the end to end case: tests/integration/test_apply_guards.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from terry.app import build_pipeline
from terry.gitops.repo import Repo
from terry.store import Store
from tests.conftest import config_for, stored_proposal

pytestmark = pytest.mark.integration

HOSTS = "inventories/example/hosts.yml"
MOVED = "web-02: ansible on the proposal's commit, awx on main"


@pytest.mark.parametrize(
    ("applier", "edits", "why"),
    [
        ("ansible", [], MOVED),
        ("awx", [], MOVED),  # the row's applier is not what is compared: the inventory is
        ("ansible", [HOSTS], None),  # an inventory edit: merging it was the change
        ("argocd", [], None),  # an Argo CD merge already changed the desired state
    ],
)
def test_a_host_moved_to_another_applier_since_the_proposal_was_judged(
    gitops: Path, store_url: str, applier: str, edits: list[str], why: str | None
) -> None:
    repo = Repo(gitops)
    judged = repo.head()
    inventory = yaml.safe_load((gitops / HOSTS).read_text())
    inventory["all"]["children"]["staging"]["hosts"]["web-02"]["terry_applier"] = "awx"
    (gitops / HOSTS).write_text(yaml.safe_dump(inventory, sort_keys=False))
    repo.commit_paths([HOSTS], "web-02 is AWX's now")
    store = Store(store_url)
    store.migrate()
    try:
        pipeline = build_pipeline(config_for(gitops), store)
        moved = stored_proposal(
            store,
            fingerprint=f"moved-{applier}-{len(edits)}",
            hosts=["web-01", "web-02"],
            applier=applier,
            plan={"check": [applier], "verify": ["applier"], "edits": edits},
            commit_sha=judged,
            state="merged",
        )
        assert pipeline.steps.precheck.applier_moved(moved) == why
        # judged where main already says awx: nothing moved since
        same = stored_proposal(
            store,
            fingerprint=f"same-{applier}-{len(edits)}",
            hosts=["web-02"],
            applier=applier,
            plan={"check": [applier], "verify": ["applier"], "edits": edits},
            commit_sha=repo.head(),
            state="merged",
        )
        assert pipeline.steps.precheck.applier_moved(same) is None
    finally:
        store.dispose()
