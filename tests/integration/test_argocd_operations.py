"""Argo CD as Argo CD behaves: the operation lifecycle, the status refresh that lags a sync,
applications with automated sync, and a sync request a proxy timed out. The local Argo CD
(tests/fakes/argocd.py) models each of them from Argo CD's source; Terry's real httpx
client talks to it, driven through the ``terry`` command.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from terry.app import build_pipeline
from terry.store import Store
from terry.store.models import AuditRow, HostLockRow, RunEventRow, RunRow
from tests.conftest import Cli, alert, config_for, ingest_then_kill, make_cli, payload
from tests.fakes.argocd import FakeArgoCD
from tests.shop import git, ingest_one, shop_repo

pytestmark = pytest.mark.integration

TOKEN = "argocd-token-operations"


def _world(
    tmp_path: Path,
    *,
    timeout: float = 20,
    automated: bool = False,
    target_revision: str | None = None,
    paused: bool = False,
) -> tuple[Cli, FakeArgoCD]:
    repo = tmp_path / "ops"
    fake = FakeArgoCD(repo, token=TOKEN)
    shop_repo(
        repo,
        fake.base_url,
        argocd={"url": fake.base_url, "timeout": timeout, "poll_interval": 0.05},
    )
    if paused:  # kubectl rollout pause, kept in git: Argo CD reports the app Suspended
        path = repo / "apps" / "shop" / "shop.yaml"
        path.write_text(path.read_text().replace("  replicas: 2", "  paused: true\n  replicas: 2"))
        git(repo, "-c", "user.name=T", "-c", "user.email=t@x", "commit", "-qam", "paused")
    if target_revision is not None:  # a branch the app tracks instead of main
        git(repo, "branch", target_revision, "main")
    fake.add_app(
        "shop", "apps/shop", automated=automated, target_revision=target_revision or "main"
    )
    fake.start()
    cli = make_cli(repo)
    cli.env["ARGOCD_AUTH_TOKEN"] = TOKEN
    return cli, fake


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Cli, FakeArgoCD]]:
    cli, fake = _world(tmp_path)
    yield cli, fake
    fake.stop()


@pytest.fixture
def make_world(tmp_path: Path) -> Iterator[Callable[..., tuple[Cli, FakeArgoCD]]]:
    started: list[FakeArgoCD] = []

    def make(**options: Any) -> tuple[Cli, FakeArgoCD]:
        cli, fake = _world(tmp_path, **options)
        started.append(fake)
        return cli, fake

    yield make
    for fake in started:
        fake.stop()


def _rows(cli: Cli, model: type, *where: Any, order: Any = None) -> list[Any]:
    store = Store(config_for(cli.repo).store_url)
    try:
        with store.session() as session:
            query = select(model).where(*where)
            rows = list(session.scalars(query.order_by(order) if order is not None else query))
            session.expunge_all()
            return rows
    finally:
        store.dispose()


def _runs(cli: Cli, pid: int) -> list[tuple[str, str]]:
    return [
        (r.kind, r.status) for r in _rows(cli, RunRow, RunRow.proposal_id == pid, order=RunRow.id)
    ]


def _events(cli: Cli, pid: int, kind: str) -> list[RunEventRow]:
    [run] = _rows(cli, RunRow, RunRow.proposal_id == pid, RunRow.kind == kind)
    return _rows(cli, RunEventRow, RunEventRow.run_id == run.id, order=RunEventRow.seq)


def _at_verify(cli: Cli, fake: FakeArgoCD, pid: int, action: Callable[[], None]) -> list[str]:
    """Has the fake run ``action`` once, on the first refresh asked for after the proposal's
    apply run is recorded as successful: at verify time. Returns what it did, to check."""
    done: list[str] = []

    def hook(app: str) -> None:
        applied = RunRow.kind == "apply", RunRow.status == "successful"
        if not done and _rows(cli, RunRow, RunRow.proposal_id == pid, *applied):
            done.append(app)
            action()

    fake.on_refresh = hook
    return done


# -- the local Argo CD behaves as Argo CD's source says -------------------------------------


def test_the_local_argocd_models_the_operation_the_refresh_and_auto_sync(
    world: tuple[Cli, FakeArgoCD],
) -> None:
    cli, fake = world
    fake.sync_seconds, fake.refresh_lag = 0.3, 60.0  # the controller's refresh comes late
    path = cli.repo / "apps" / "shop" / "shop.yaml"
    path.write_text(path.read_text().replace("replicas: 2", "replicas: 3"))
    git(cli.repo, "-c", "user.name=T", "-c", "user.email=t@x", "commit", "-qam", "three")
    head = git(cli.repo, "rev-parse", "main")
    http = httpx.Client(base_url=fake.base_url, headers={"Authorization": f"Bearer {TOKEN}"})
    app = "/api/v1/applications/shop"
    try:
        seen = http.get(f"{app}?refresh=normal").json()["status"]
        assert (seen["sync"]["status"], seen["sync"]["revision"]) == ("OutOfSync", head)
        # A sync request sets the operation and clears the last operation's state...
        asked = http.post(f"{app}/sync", json={"name": "shop", "revision": head}).json()
        assert asked["operation"]["sync"]["revision"] == head
        assert "operationState" not in asked["status"]
        # ...the controller runs it, and refuses another meanwhile (400, code 9).
        running = http.get(app).json()
        assert running["status"]["operationState"]["phase"] == "Running"
        again = http.post(f"{app}/sync", json={"name": "shop", "revision": head})
        assert again.status_code == 400 and again.json()["code"] == 9
        assert "another operation is already in progress" in again.json()["message"]
        time.sleep(0.4)
        done = http.get(app).json()
        state = done["status"]["operationState"]
        assert "operation" not in done and state["phase"] == "Succeeded"
        assert state["finishedAt"].endswith("Z") and len(state["finishedAt"]) == 20  # seconds
        # Until the controller reconciles, the status is the world before the sync.
        assert done["status"]["sync"]["status"] == "OutOfSync"
        assert done["status"]["reconciledAt"] <= state["finishedAt"]
        assert fake.live("shop", "Deployment", "shop")["spec"]["replicas"] == 3
        # A refresh reconciles: Synced, and health goes through Progressing to Healthy.
        fresh = http.get(f"{app}?refresh=normal").json()["status"]
        assert fresh["sync"]["status"] == "Synced" and fresh["health"]["status"] == "Progressing"
        assert fresh["reconciledAt"] >= state["finishedAt"]
        time.sleep(fake.progress_seconds)
        assert http.get(app).json()["status"]["health"]["status"] == "Healthy"
        # With auto-sync on, a pinned revision is refused unless it is a dry run.
        fake.apps["shop"].automated = True
        pinned = http.post(f"{app}/sync", json={"name": "shop", "revision": head})
        assert pinned.status_code == 400 and pinned.json() == {
            "error": f"Cannot sync to {head}: auto-sync currently set to main",
            "code": 9,
            "message": f"Cannot sync to {head}: auto-sync currently set to main",
        }
        dry = http.post(f"{app}/sync", json={"name": "shop", "revision": head, "dryRun": True})
        assert dry.status_code == 200
        # A proxy that gives up answers with its own page; the sync was taken all the same.
        time.sleep(0.4)
        fake.apps["shop"].automated = False
        fake.gateway_timeout_on_sync()
        lost = http.post(f"{app}/sync", json={"name": "shop", "revision": head})
        assert lost.status_code == 504 and "Gateway Time-out" in lost.text
        assert http.get(app).json()["operation"]["sync"]["revision"] == head
    finally:
        http.close()


# -- verify: Synced is not enough -----------------------------------------------------------


def test_synced_but_progressing_at_verify_time_is_waited_out(
    world: tuple[Cli, FakeArgoCD],
) -> None:
    cli, fake = world
    outcome = ingest_one(cli, "AppReplicasTooLow", "fp-progress", host="shop", replicas="4")
    pid = outcome["proposal_id"]
    # Healthy after the apply, then a rollout restarts: Progressing when verify reads.
    restarted = _at_verify(cli, fake, pid, lambda: fake.restart("shop", 1.0))

    approved = cli.as_("alice").json("proposals", "approve", str(pid))

    assert approved["state"] == "verified", approved
    assert restarted == ["shop"] and fake.health("shop") == "Healthy"
    assert _runs(cli, pid) == [
        ("check", "successful"),
        ("apply", "successful"),
        ("verify", "successful"),
    ]
    [health] = [e for e in _events(cli, pid, "verify") if e.event == "argocd_health"]
    assert (
        health.status == "ok"
        and "Synced" in health.data["message"]
        and "Healthy" in health.data["message"]
    )


def test_synced_at_an_older_revision_is_never_verified(world: tuple[Cli, FakeArgoCD]) -> None:
    cli, fake = world
    outcome = ingest_one(cli, "AppReplicasTooLow", "fp-older", host="shop", replicas="4")
    pid = outcome["proposal_id"]
    older = git(cli.repo, "rev-parse", "main")
    # Someone pins the app to the commit before the merge and syncs it: Synced, Healthy,
    # at a revision that does not contain the fix.
    pinned = _at_verify(cli, fake, pid, lambda: fake.pin("shop", older))

    approved = cli.as_("alice").json("proposals", "approve", str(pid))

    assert approved["state"] == "escalated", approved
    assert pinned == ["shop"]
    assert git(cli.repo, "rev-parse", "main") == approved["merge_commit"]  # nothing reverted
    assert _runs(cli, pid)[-1] == ("verify", "timeout")  # cannot tell
    [health] = [e for e in _events(cli, pid, "verify") if e.event == "argocd_health"]
    assert health.status == "skipped"
    assert f"sync Synced at {older[:10]}" in health.data["message"]
    assert "does not contain the commit" in health.data["message"]


# -- apply: judged only once Argo CD has reconciled after the sync ------------------------


def test_a_degraded_app_fixed_by_a_sync_is_judged_after_the_refresh(
    world: tuple[Cli, FakeArgoCD],
) -> None:
    cli, fake = world
    # The shop crash-loops for want of memory: Degraded before the fix, which is why the fix
    # exists. After the sync, the controller reconciles only a while later.
    fake.crash("shop", "shop", "back-off restarting failed container app (OOMKilled)")
    fake.refresh_lag = 1.5
    outcome = ingest_one(
        cli, "ContainerOOMKilled", "fp-oom-crash", host="shop", container="app", memory="1Gi"
    )
    pid = outcome["proposal_id"]
    commit = cli.json("proposals", "show", str(pid))["commit"]

    approved = cli.as_("alice").json("proposals", "approve", str(pid))

    assert approved["state"] == "verified", approved
    merge = approved["merge_commit"]
    assert git(cli.repo, "rev-parse", "main") == merge  # not reverted
    assert [s["revision"] for s in fake.syncs("shop")] == [commit, merge]
    assert fake.health("shop") == "Healthy"
    assert _runs(cli, pid) == [
        ("check", "successful"),
        ("apply", "successful"),
        ("verify", "successful"),
    ]
    [health] = [e for e in _events(cli, pid, "apply") if e.event == "argocd_health"]
    assert health.data["message"] == f"sync Synced at {merge[:10]}, health Healthy"


def test_missing_after_a_sync_fails_at_once_and_is_rolled_back(
    make_world: Callable[..., tuple[Cli, FakeArgoCD]],
) -> None:
    cli, fake = make_world(timeout=8)
    outcome = ingest_one(cli, "AppReplicasTooLow", "fp-missing", host="shop", replicas="4")
    pid = outcome["proposal_id"]
    fake.evict("shop", "Service", "shop")  # something deletes it right after the sync

    approved = cli.as_("alice").json("proposals", "approve", str(pid))

    assert approved["state"] == "rolled_back", approved
    # Failed on Missing, not at the timeout; the revert put the Service back.
    assert _runs(cli, pid) == [
        ("check", "successful"),
        ("apply", "failed"),
        ("rollback", "successful"),
    ]
    assert "health Missing" in approved["outcome"] and "Service shop/shop" in approved["outcome"]
    assert fake.live("shop", "Service", "shop")["metadata"]["name"] == "shop"


def test_suspended_after_a_sync_is_left_to_a_person(
    make_world: Callable[..., tuple[Cli, FakeArgoCD]],
) -> None:
    cli, fake = make_world(timeout=8, paused=True)
    outcome = ingest_one(cli, "AppReplicasTooLow", "fp-paused", host="shop", replicas="4")
    pid = outcome["proposal_id"]

    approved = cli.as_("alice").json("proposals", "approve", str(pid))

    # Synced at the merge but paused: applied, nothing failed, and verification cannot
    # tell, so a person decides (no rollback, no wait for the timeout).
    assert approved["state"] == "escalated", approved
    assert git(cli.repo, "rev-parse", "main") == approved["merge_commit"]
    assert _runs(cli, pid) == [
        ("check", "successful"),
        ("apply", "successful"),
        ("verify", "timeout"),
    ]
    [health] = [e for e in _events(cli, pid, "verify") if e.event == "argocd_health"]
    assert "health Suspended: Deployment is paused" in health.data["message"]
    assert fake.live("shop", "Deployment", "shop")["spec"]["replicas"] == 4


# -- automated sync ------------------------------------------------------------------------


def test_an_auto_synced_app_is_deployed_by_auto_sync_and_verified(
    make_world: Callable[..., tuple[Cli, FakeArgoCD]],
) -> None:
    cli, fake = make_world(automated=True)
    outcome = ingest_one(cli, "AppReplicasTooLow", "fp-auto", host="shop", replicas="4")
    assert outcome["state"] == "awaiting_review", outcome
    pid = outcome["proposal_id"]
    commit = cli.json("proposals", "show", str(pid))["commit"]
    # The check is still a dry run of the proposal commit (allowed with auto-sync), and
    # says how the change will be deployed.
    policy = [e for e in _events(cli, pid, "check") if e.event == "argocd_policy"]
    assert [(e.status, "auto-synced to main" in e.data["message"]) for e in policy] == [
        ("ok", True)
    ]

    approved = cli.as_("alice").json("proposals", "approve", str(pid))

    assert approved["state"] == "verified", approved
    merge = approved["merge_commit"]
    # No pinned sync was asked for (Argo CD refuses it); auto-sync deployed the merge.
    assert fake.syncs("shop") == [
        {"name": "shop", "revision": commit, "dryRun": True, "prune": False}
    ]
    assert [(o["revision"], o["dryRun"], o["automated"]) for o in fake.operations("shop")] == [
        (commit, True, False),
        (merge, False, True),
    ]
    assert fake.live("shop", "Deployment", "shop")["spec"]["replicas"] == 4
    events = _events(cli, pid, "apply")
    assert ("argocd_resource", "Deployment shop/shop", "changed") in [
        (e.event, e.task, e.status) for e in events
    ]


def test_an_auto_synced_app_that_degrades_is_reverted_and_auto_sync_deploys_the_revert(
    make_world: Callable[..., tuple[Cli, FakeArgoCD]],
) -> None:
    cli, fake = make_world(automated=True)
    fake.capacity = 5
    outcome = ingest_one(cli, "AppReplicasTooLow", "fp-auto-bad", host="shop", replicas="8")
    pid = outcome["proposal_id"]
    before = git(cli.repo, "rev-parse", "main")

    approved = cli.as_("alice").json("proposals", "approve", str(pid))

    assert approved["state"] == "rolled_back", approved
    merge, revert = approved["merge_commit"], git(cli.repo, "rev-parse", "main")
    assert git(cli.repo, "rev-parse", f"{revert}^") == merge
    assert git(cli.repo, "diff", before, revert) == ""
    assert [(o["revision"], o["automated"]) for o in fake.operations("shop")][1:] == [
        (merge, True),
        (revert, True),
    ]
    assert len(fake.syncs("shop")) == 1  # the dry run only
    assert fake.live("shop", "Deployment", "shop")["spec"]["replicas"] == 2
    assert _runs(cli, pid)[1:] == [("apply", "failed"), ("rollback", "successful")]
    assert "exceeded its progress deadline" in (approved["outcome"] or "")


def test_auto_sync_to_a_revision_a_merge_does_not_move_is_refused_at_the_gate(
    make_world: Callable[..., tuple[Cli, FakeArgoCD]],
) -> None:
    cli, fake = make_world(automated=True, target_revision="release-1")
    outcome = ingest_one(cli, "AppReplicasTooLow", "fp-auto-tag", host="shop", replicas="4")

    assert outcome["state"] == "denied", outcome
    shown = cli.json("proposals", "show", str(outcome["proposal_id"]))
    assert shown["merge_commit"] is None
    [message] = shown["check_summary"]["messages"]
    assert "auto-synced to 'release-1', which a merge to main does not move" in message
    assert fake.syncs("shop") == []


# -- requests that fail on the way ---------------------------------------------------------


def test_a_sync_a_proxy_timed_out_is_adopted_not_sent_again(
    world: tuple[Cli, FakeArgoCD],
) -> None:
    cli, fake = world
    outcome = ingest_one(cli, "AppReplicasTooLow", "fp-504", host="shop", replicas="4")
    pid = outcome["proposal_id"]
    fake.sync_seconds = 1.5  # still running when Terry looks again
    fake.gateway_timeout_on_sync(1)  # Argo CD took the sync; the proxy answered 504

    approved = cli.as_("alice").json("proposals", "approve", str(pid))

    assert approved["state"] == "verified", approved
    merge = approved["merge_commit"]
    assert [s["revision"] for s in fake.syncs("shop")][1:] == [merge]  # asked once
    assert [o["revision"] for o in fake.operations("shop") if not o["dryRun"]] == [merge]
    assert fake.live("shop", "Deployment", "shop")["spec"]["replicas"] == 4


def test_an_apply_argocd_refuses_to_start_is_reverted_on_main(
    world: tuple[Cli, FakeArgoCD],
) -> None:
    cli, fake = world
    outcome = ingest_one(cli, "AppReplicasTooLow", "fp-refused", host="shop", replicas="4")
    pid = outcome["proposal_id"]
    before = git(cli.repo, "rev-parse", "main")
    cli.env["ARGOCD_AUTH_TOKEN"] = "a-revoked-token"  # between the check and the merge

    approved = cli.as_("alice").json("proposals", "approve", str(pid))

    # The merge could not be deployed: it does not stay on main undeployed.
    assert approved["state"] == "failed", approved
    revert = git(cli.repo, "rev-parse", "main")
    assert git(cli.repo, "rev-parse", f"{revert}^") == approved["merge_commit"]
    assert git(cli.repo, "diff", before, revert) == ""
    assert "the sync could not start: Argo CD answered 401" in approved["outcome"]
    assert "a-revoked-token" not in approved["outcome"]
    assert _runs(cli, pid) == [("check", "successful"), ("apply", "error"), ("rollback", "error")]
    reasons = [
        a.reason
        for a in _rows(cli, AuditRow, AuditRow.entity == "proposal", AuditRow.entity_id == pid)
    ]
    assert any("apply failed" in r for r in reasons), reasons
    assert fake.live("shop", "Deployment", "shop")["spec"]["replicas"] == 2
    assert len(fake.syncs("shop")) == 1


def test_a_sync_that_does_not_finish_is_terminated_and_the_revert_deployed(
    make_world: Callable[..., tuple[Cli, FakeArgoCD]],
) -> None:
    cli, fake = make_world(timeout=3)
    outcome = ingest_one(cli, "AppReplicasTooLow", "fp-hang", host="shop", replicas="4")
    pid = outcome["proposal_id"]
    fake.hang(1)  # the apply's sync runs on (a hook that never ends) until terminated

    approved = cli.as_("alice").json("proposals", "approve", str(pid))

    # Terminated at the timeout: it cannot deploy the merge later, and Argo CD takes the
    # rollback's sync instead of refusing it while the hung one runs.
    assert approved["state"] == "rolled_back", approved
    merge, revert = approved["merge_commit"], git(cli.repo, "rev-parse", "main")
    assert [s["revision"] for s in fake.syncs("shop")][1:] == [merge, revert]
    assert [r["method"] for r in fake.requests if r["path"].endswith("/operation")] == ["DELETE"]
    assert _runs(cli, pid)[1:] == [("apply", "timeout"), ("rollback", "successful")]
    [stopped] = [e for e in _events(cli, pid, "apply") if e.event == "argocd_operation"]
    assert "Terry asked Argo CD to terminate it" in stopped.data["message"]
    assert fake.live("shop", "Deployment", "shop")["spec"]["replicas"] == 2


def test_a_sync_whose_terry_was_killed_is_terminated_before_its_target_is_freed(
    make_world: Callable[..., tuple[Cli, FakeArgoCD]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Terry killed outright while the sync it asked for runs: Argo CD goes on with it. The
    next look at what dead processes left terminates that operation (``DELETE .../operation``)
    before the target's lock is freed; while Argo CD cannot be asked, the lock stays."""
    cli, fake = make_world(timeout=120)
    fake.hang(1)  # the dry run's sync runs on until it is terminated
    body = payload([alert("AppReplicasTooLow", fingerprint="fp-killed", host="shop", replicas="4")])
    ingest_then_kill(
        cli, body, lambda: any(r.remote for r in _rows(cli, RunRow)), "the dry run's sync"
    )
    [run] = _rows(cli, RunRow)
    assert (
        run.remote is not None
        and run.remote.startswith("argocd:")
        and run.remote.endswith(":1:shop")
    )
    running = fake.apps["shop"].op_state
    assert running is not None and running["phase"] == "Running", running
    monkeypatch.setenv("ARGOCD_AUTH_TOKEN", TOKEN)
    store = Store(config_for(cli.repo).store_url)
    pipeline = build_pipeline(config_for(cli.repo), store)
    try:
        fake.fail_next(1000, status=503)  # Argo CD cannot be asked: the sync may go on
        held = pipeline.reap()
        assert held.runs == () and held.released == ()
        assert [lock.host for lock in _rows(cli, HostLockRow)] == ["shop"]

        fake.fail_next(0)
        reaped = pipeline.reap()
        assert [r["method"] for r in fake.requests if r["path"].endswith("/operation")] == [
            "DELETE"
        ]
        [run] = _rows(cli, RunRow)
        assert reaped.runs == (run.id,) and run.status == "interrupted"
        assert _rows(cli, HostLockRow) == [] and "shop" in reaped.released
        ended = fake.apps["shop"].op_state
        assert ended is not None and ended["phase"] == "Failed", ended
    finally:
        store.dispose()
