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


def _proposal(store: Store, verify: list[str]) -> int:
    return stored_proposal(
        store,
        fingerprint=f"waves-{'-'.join(verify)}",
        hosts=["web-01", "web-02"],
        source="drift",
        title="drift",
        remedy="reconcile-drift",
        role="site",
        plan={"check": ["ansible"], "verify": verify},
        check_summary={"ok": True, "changed": 2, "failed_hosts": [], "unreachable_hosts": []},
    )


@pytest.mark.parametrize(
    ("verify", "waves"),
    [
        (["applier", "prometheus"], [(["web-01"], True), (["web-02"], False)]),
        (["drift"], [(["web-01", "web-02"], False)]),
        (["applier", "drift"], [(["web-01", "web-02"], False)]),
    ],
)
def test_the_gate_sees_the_waves_the_apply_will_do(
    gitops: Path, store_url: str, verify: list[str], waves: list[tuple[list[str], bool]]
) -> None:
    settings = yaml.safe_load((gitops / "terry.yml").read_text())
    settings["canary"] = {"min_hosts": 1, "watch": 0}  # two staging hosts make a canary
    (gitops / "terry.yml").write_text(yaml.safe_dump(settings))
    store = Store(store_url)
    store.migrate()
    try:
        pipeline = build_pipeline(config_for(gitops), store)
        sha, _catalogue, _inventory = pipeline.ctx.main.view()
        shown = pipeline.steps.gate.input(_proposal(store, verify), sha)
        assert [(w["hosts"], w["canary"]) for w in shown.waves] == waves
    finally:
        store.dispose()
