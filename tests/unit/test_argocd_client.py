"""The Argo CD client and applier against a tiny local server that answers as Argo CD's REST
API does (server/application/application.go, util/argo SetAppOperation, grpc-gateway error
bodies) or as a server in front of it may: FailedPrecondition as 409, an answer that is not
JSON, applications in other namespaces, a status that lags the sync (the last operation
still shown, a refresh answered before the controller reconciled), an operation that does
not finish."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from terry.appliers.argocd import ArgoCDApplier, ArgoCDClient, ArgoCDError, SyncRequest
from terry.appliers.base import EventStatus, RunStatus
from tests.fakes.scripted import Scripted

pytestmark = pytest.mark.unit

TOKEN = "argocd-CANARY-unit-token-4242"
REV = "c" * 40
OLD = "b" * 40
APP = "/api/v1/applications/shop"


@pytest.fixture
def argocd() -> Iterator[Scripted]:
    server = Scripted("scripted Argo CD", lambda: _error(404, 5, "not found"))
    server.start()
    yield server
    server.stop()


class Clock:
    """Time that passes only when the applier sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def client(url: str, retries: int = 2) -> ArgoCDClient:
    return ArgoCDClient(url, TOKEN, retries=retries, sleep=lambda _: None)


def applier(url: str, *, timeout: float = 30.0) -> ArgoCDApplier:
    clock = Clock()
    return ArgoCDApplier(
        client(url), timeout=timeout, poll_interval=0.5, clock=clock, sleep=clock.sleep
    )


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "code": code, "message": message}, status)


def _state(
    revision: str, finished: str | None, *, phase: str = "Succeeded", kind: str = "configured"
) -> dict[str, Any]:
    state: dict[str, Any] = {
        "operation": {"sync": {"revision": revision}, "initiatedBy": {"username": "terry"}},
        "phase": phase if finished else "Running",
        "message": "successfully synced (all tasks run)" if phase == "Succeeded" else "failed",
        "startedAt": "2026-11-25T10:00:01Z",
        "syncResult": {
            "revision": revision,
            "resources": [
                {
                    "kind": "Deployment",
                    "namespace": "shop",
                    "name": "shop",
                    "status": "Synced",
                    "message": f"deployment.apps/shop {kind}",
                }
            ],
        },
    }
    if finished:
        state["finishedAt"] = finished
    return state


def app(
    *,
    sync: str = "Synced",
    revision: str = REV,
    health: str = "Healthy",
    reconciled: str = "2026-11-25T10:00:00Z",
    state: dict[str, Any] | None = None,
    operation: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "metadata": {"name": "shop", "namespace": "argocd"},
        "spec": {"project": "default", "source": {"targetRevision": "main"}},
        "status": {
            "sync": {"status": sync, "revision": revision},
            "health": {"status": health},
            "reconciledAt": reconciled,
        },
    }
    if state is not None:
        body["status"]["operationState"] = state
    if operation is not None:
        body["operation"] = operation
    return JSONResponse(body)


def asked(revision: str = REV) -> dict[str, Any]:
    return {"sync": {"revision": revision}, "initiatedBy": {"username": "terry"}}


def sync(url: str, *, timeout: float = 30.0) -> Any:
    request = SyncRequest("shop", "shop", REV, dry_run=False)
    return applier(url, timeout=timeout).sync(request)


# -- refusals, as Argo CD words them -----------------------------------------------------------


@pytest.mark.parametrize("status", [400, 409])
def test_another_operation_in_progress_is_waited_out_whatever_its_http_status(
    argocd: Scripted, status: int
) -> None:
    # FailedPrecondition (code 9): grpc-gateway answers 400; a server or proxy may say 409.
    before = app(sync="OutOfSync", revision=OLD, state=_state(OLD, "2026-11-25T09:00:00Z"))
    others = app(sync="OutOfSync", revision=OLD, operation=asked(OLD))  # someone else's
    argocd.on(
        "GET /api/v1/applications/shop",
        before,
        others,
        app(state=_state(REV, "2026-11-25T10:00:03Z"), reconciled="2026-11-25T10:00:04Z"),
    )
    argocd.on(
        "POST /api/v1/applications/shop/sync",
        _error(status, 9, "another operation is already in progress"),
        app(sync="OutOfSync", revision=OLD, operation=asked()),
    )

    result = sync(argocd.base_url)

    assert result.status is RunStatus.SUCCESSFUL, [e.message for e in result.events]
    assert len(argocd.hits(f"POST {APP}/sync")) == 2


def test_a_refusal_carries_argo_cds_message_and_code_never_the_token(argocd: Scripted) -> None:
    argocd.on(f"GET {APP}", _error(403, 7, "permission denied"))
    with pytest.raises(ArgoCDError) as raised:
        client(argocd.base_url).get("shop")
    assert str(raised.value) == "Argo CD answered 403: permission denied"
    assert (raised.value.status, raised.value.code) == (403, 7)
    assert not raised.value.in_transit and not raised.value.precondition
    assert TOKEN not in str(raised.value)
    assert argocd.requests[0]["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    "answer",
    [
        HTMLResponse("<html><title>Sign in</title><p>token " + TOKEN[:5] + "</p></html>"),
        Response('{"metadata": {"name": "sh', media_type="application/json"),  # truncated
        JSONResponse(["not", "an", "application"]),
    ],
)
def test_an_answer_that_is_not_an_application_is_an_argocd_error(
    argocd: Scripted, answer: Response
) -> None:
    # A single sign-on proxy's login page, a body cut short: not Argo CD's answer. Retried
    # like a 5xx, then a typed error (not a JSONDecodeError), without the token.
    argocd.on(f"GET {APP}", answer)
    with pytest.raises(ArgoCDError) as raised:
        client(argocd.base_url, retries=2).get("shop")
    assert "Argo CD answered 200 with" in str(raised.value)
    assert raised.value.in_transit and TOKEN not in str(raised.value)
    assert len(argocd.hits(f"GET {APP}")) == 3


# -- applications outside Argo CD's namespace --------------------------------------------------


def test_an_app_in_another_namespace_is_named_namespace_slash_name(argocd: Scripted) -> None:
    # As the CLI's ParseFromQualifiedName: the namespace goes as appNamespace, in the query
    # of a get and in the body of a sync (its HTTP rule takes the body "*").
    argocd.on(f"GET {APP}", app())
    argocd.on(f"POST {APP}/sync", app(operation=asked()))
    argocd.on(f"DELETE {APP}/operation", JSONResponse({}))
    argo = client(argocd.base_url)

    assert argo.get("team-a/shop", refresh=True).name == "shop"
    argo.sync("team-a/shop", revision=REV, dry_run=True)
    assert argo.terminate("team-a/shop")

    get, post, delete = argocd.requests
    assert get["query"] == {"appNamespace": "team-a", "refresh": "normal"}
    assert json.loads(post["body"]) == {
        "name": "shop",
        "revision": REV,
        "dryRun": True,
        "prune": False,
        "appNamespace": "team-a",
    }
    assert delete["query"] == {"appNamespace": "team-a"}
    for bad in ("Team/shop", "a/b/shop", "/shop", "team-a/"):
        with pytest.raises(ArgoCDError, match="not an Argo CD application name"):
            argo.get(bad)


# -- a status that lags the sync -------------------------------------------------------------


def test_the_last_operation_still_shown_after_a_sync_is_not_taken_for_it(
    argocd: Scripted,
) -> None:
    # The same revision was synced before (Succeeded). The sync is accepted, but the status
    # lags: no operation shown yet, the last one's state still there. Terry waits for its
    # own, which fails.
    previous = _state(REV, "2026-11-25T09:00:00Z", kind="unchanged")
    stale = app(state=previous, reconciled="2026-11-25T09:00:01Z")
    argocd.on(
        f"GET {APP}",
        stale,
        stale,
        stale,
        app(state=_state(REV, None), operation=None),
        app(state=_state(REV, "2026-11-25T10:00:03Z", phase="Failed")),
    )
    argocd.on(f"POST {APP}/sync", app(state=None, operation=asked()))

    result = sync(argocd.base_url)

    assert result.status is RunStatus.FAILED
    assert "sync Failed" in result.events[-1].message


def test_a_refresh_answered_before_the_controller_reconciled_is_not_trusted(
    argocd: Scripted,
) -> None:
    # The sync finished at :05 and the last reconcile is of :05 too (before or after it?).
    # Before the sync the app was Degraded at main's head (the merge); a refresh answered
    # before the controller reconciled still says so. Only a reconcile in a later second
    # tells.
    finished = _state(REV, "2026-11-25T10:00:05Z")
    degraded: dict[str, Any] = {"sync": "OutOfSync", "health": "Degraded"}
    unsure = app(**degraded, state=finished, reconciled="2026-11-25T10:00:05Z")
    settled = app(state=finished, reconciled="2026-11-25T10:00:07Z")
    refreshes: list[str] = []

    def get(request: Request) -> Response:
        if not argocd.hits(f"POST {APP}/sync"):
            return app(**degraded, state=_state(OLD, "2026-11-25T09:00:00Z"))
        if request.query_params.get("refresh") == "normal":
            refreshes.append("asked")
            return settled if len(refreshes) >= 2 else unsure  # the first one lags
        return unsure

    argocd.on(f"GET {APP}", get)
    argocd.on(f"POST {APP}/sync", app(operation=asked()))

    result = sync(argocd.base_url)

    assert result.status is RunStatus.SUCCESSFUL, [e.message for e in result.events]
    assert refreshes == ["asked", "asked"]


def test_a_controller_that_reconciles_only_when_asked_is_asked(argocd: Scripted) -> None:
    # The sync finished; reconciledAt stays older than it until a refresh is asked for.
    finished = _state(REV, "2026-11-25T10:00:05Z")

    def get(request: Request) -> Response:
        if not argocd.hits(f"POST {APP}/sync"):
            return app(sync="OutOfSync", revision=OLD)
        if request.query_params.get("refresh") == "normal":
            return app(state=finished, reconciled="2026-11-25T10:00:09Z")
        return app(sync="OutOfSync", revision=OLD, state=finished)

    argocd.on(f"GET {APP}", get)
    argocd.on(f"POST {APP}/sync", app(operation=asked()))

    result = sync(argocd.base_url, timeout=20)

    assert result.status is RunStatus.SUCCESSFUL, [e.message for e in result.events]


# -- an operation that does not finish --------------------------------------------------------


def test_terrys_sync_still_running_at_the_timeout_is_terminated(argocd: Scripted) -> None:
    # Left running it could deploy the merge after the rollback, and Argo CD refuses the
    # rollback's sync while it runs.
    running = app(sync="OutOfSync", revision=OLD, state=_state(REV, None), operation=asked())
    argocd.on(f"GET {APP}", app(sync="OutOfSync", revision=OLD), running)
    argocd.on(f"POST {APP}/sync", app(operation=asked()))
    argocd.on(f"DELETE {APP}/operation", JSONResponse({}))

    result = sync(argocd.base_url, timeout=3)

    assert result.status is RunStatus.TIMEOUT
    assert len(argocd.hits(f"DELETE {APP}/operation")) == 1
    [event] = [e for e in result.events if e.event == "argocd_operation"]
    assert event.status is EventStatus.FAILED
    assert (
        event.message == "the sync did not finish within 3 s; Terry asked Argo CD to terminate it"
    )


def test_an_operation_that_is_not_terrys_is_not_terminated(argocd: Scripted) -> None:
    # Someone else's sync took over (another revision): Terry leaves it alone.
    theirs = app(sync="OutOfSync", revision=OLD, state=_state(OLD, None), operation=asked(OLD))
    argocd.on(f"GET {APP}", app(sync="OutOfSync", revision=OLD), theirs)
    argocd.on(f"POST {APP}/sync", app(operation=asked()))

    result = sync(argocd.base_url, timeout=3)

    assert result.status is RunStatus.TIMEOUT
    assert argocd.hits(f"DELETE {APP}/operation") == []
    # Nothing to stop: Argo CD answers 400 "No operation is in progress" (InvalidArgument).
    argocd.on(
        f"DELETE {APP}/operation",
        _error(400, 3, "Unable to terminate operation. No operation is in progress"),
    )
    assert client(argocd.base_url).terminate("shop") is False
