"""How Terry reads an Argo CD application (terry/appliers/argocd.py ``AppStatus``): when an
operation is still in progress the way ``argocd app wait`` decides it, when the timestamps
cannot tell (Argo CD writes whole seconds), and the sync policy."""

from __future__ import annotations

from typing import Any

import pytest

from terry.appliers.argocd import AppStatus

pytestmark = pytest.mark.unit

SHA = "a" * 40


def _app(
    *,
    operation: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
    reconciled: str | None = "2026-11-25T10:00:05Z",
    policy: dict[str, Any] | None = None,
    target: str = "main",
) -> AppStatus:
    body: dict[str, Any] = {
        "metadata": {"name": "shop"},
        "spec": {"source": {"targetRevision": target}},
        "status": {
            "sync": {"status": "Synced", "revision": SHA},
            "health": {"status": "Healthy"},
            "reconciledAt": reconciled,
        },
    }
    if policy is not None:
        body["spec"]["syncPolicy"] = policy
    if operation is not None:
        body["operation"] = operation
    if state is not None:
        body["status"]["operationState"] = state
    return AppStatus.from_api(body)


def _state(finished: str | None, *, dry_run: bool = False, phase: str = "Succeeded") -> dict:
    state: dict[str, Any] = {
        "operation": {"sync": {"revision": SHA, "dryRun": dry_run}},
        "phase": phase if finished else "Running",
        "startedAt": "2026-11-25T10:00:01Z",
        "syncResult": {"revision": SHA},
    }
    if finished:
        state["finishedAt"] = finished
    return state


def test_an_operation_is_in_progress_as_argocd_app_wait_decides() -> None:
    # Requested (a sync request sets it and clears the last operation's state).
    asked = _app(operation={"sync": {"revision": SHA}, "initiatedBy": {"automated": True}})
    assert asked.busy and asked.requested is not None and asked.requested.automated
    assert asked.operation is None
    # Running: no finishedAt yet.
    assert _app(state=_state(None)).busy
    # Finished, but the controller has not reconciled since: status is the world before.
    assert _app(state=_state("2026-11-25T10:00:09Z")).busy
    assert _app(state=_state("2026-11-25T10:00:09Z"), reconciled=None).busy
    # Reconciled after it finished.
    assert not _app(state=_state("2026-11-25T10:00:04Z")).busy
    # A dry run changes nothing to reconcile.
    assert not _app(state=_state("2026-11-25T10:00:09Z", dry_run=True)).busy


def test_a_reconcile_in_the_second_the_sync_finished_is_unsure() -> None:
    same = _app(state=_state("2026-11-25T10:00:05Z"))
    assert not same.busy and same.unsure
    assert not _app(state=_state("2026-11-25T10:00:04Z")).unsure
    assert not _app(state=_state("2026-11-25T10:00:09Z")).unsure  # busy, not unsure
    assert not _app(state=_state("2026-11-25T10:00:05Z", dry_run=True)).unsure
    assert not _app().unsure and not _app().busy


def test_the_sync_policy_and_what_it_tracks() -> None:
    assert not _app().auto_sync
    assert _app(policy={"automated": {}}).auto_sync
    assert _app(policy={"automated": {"prune": True, "selfHeal": True}}).auto_sync
    assert not _app(policy={"automated": {"enabled": False}}).auto_sync
    assert not _app(policy={"syncOptions": ["CreateNamespace=true"]}).auto_sync
    for target in ("main", "HEAD", "", "refs/heads/main"):
        assert _app(target=target).tracks("main"), target
    for target in ("release-1", "v1.4.0", SHA):
        assert not _app(target=target).tracks("main"), target
