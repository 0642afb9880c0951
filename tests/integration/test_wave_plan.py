"""The gate is shown the rollout the apply will do (issue 18): a proposal whose checks tell
each host apart rolls out in canary waves; one whose checks judge the whole (a drift
scan's reconciliation, an inventory edit) is one apply, so its plan is one wave, however
many hosts it has. Through the real gate step on a real repository and store."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from terry.app import build_pipeline
from terry.store import Store
from tests.conftest import config_for, stored_proposal

pytestmark = pytest.mark.integration


def _proposal(store: Store, verify: list[str], hosts: list[str]) -> int:
    return stored_proposal(
        store,
        fingerprint=f"waves-{'-'.join(verify)}",
        hosts=hosts,
        source="drift",
        title="drift",
        remedy="reconcile-drift",
        role="site",
        plan={"check": ["ansible"], "verify": verify},
        check_summary={"ok": True, "changed": 2, "failed_hosts": [], "unreachable_hosts": []},
    )


STAGING = ["web-01", "web-02"]
MIXED = ["db-01", "web-01"]  # production and staging


@pytest.mark.parametrize(
    ("verify", "hosts", "min_hosts", "waves"),
    [
        (["applier", "prometheus"], STAGING, 1, [(["web-01"], True), (["web-02"], False)]),
        (["drift"], STAGING, 1, [(["web-01", "web-02"], False)]),
        (["applier", "drift"], STAGING, 1, [(["web-01", "web-02"], False)]),
        # fewer hosts than min_hosts: one wave, unless production is among the others
        (["applier", "prometheus"], STAGING, 3, [(["web-01", "web-02"], False)]),
        (["applier", "prometheus"], MIXED, 3, [(["web-01"], True), (["db-01"], False)]),
        (["drift"], MIXED, 3, [(["db-01", "web-01"], False)]),  # one apply: one wave
    ],
)
def test_the_gate_sees_the_waves_the_apply_will_do(
    gitops: Path,
    store_url: str,
    verify: list[str],
    hosts: list[str],
    min_hosts: int,
    waves: list[tuple[list[str], bool]],
) -> None:
    settings = yaml.safe_load((gitops / "terry.yml").read_text())
    settings["canary"] = {"min_hosts": min_hosts, "watch": 0}  # 1: two hosts make a canary
    (gitops / "terry.yml").write_text(yaml.safe_dump(settings))
    store = Store(store_url)
    store.migrate()
    try:
        pipeline = build_pipeline(config_for(gitops), store)
        sha, _catalogue, _inventory = pipeline.ctx.main.view()
        shown = pipeline.steps.gate.input(_proposal(store, verify, hosts), sha)
        assert [(w["hosts"], w["canary"]) for w in shown.waves] == waves
    finally:
        store.dispose()
