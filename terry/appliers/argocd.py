"""The Argo CD applier: sync an application to a commit through Argo CD's REST API.

For inventory targets labelled ``terry_applier: argocd`` a proposal is a manifest change in
the GitOps repository; Argo CD, not Ansible, puts it on the cluster. Terry asks for a sync
of the exact commit (``POST /api/v1/applications/{name}/sync`` with ``revision``; a dry run
is the same request with ``dryRun``), waits for the operation it started to finish, then
for the application to be ``Synced`` at that commit and ``Healthy``. The outcome is a
``RunResult`` like ansible's, so the store, the gate and verification read both the same way.

Waiting is done the way ``argocd app wait`` decides (cmd/argocd/commands/app.go): an
operation is in progress while the application's ``operation`` is set, while
``operationState`` has no ``finishedAt``, and, after a real (not dry) sync, until the
controller has reconciled the application since (``reconciledAt`` not before
``finishedAt``); until then ``status.sync`` and ``status.health`` describe the world before
the sync. Argo CD writes whole seconds, so a reconcile in the same second as the finish may
have been before it: until one is seen in a later second Terry asks for a refresh (``GET
?refresh=normal``) once a second, never trusting that one answer reflects it. The operation
Terry waits for is one for its revision that is not the one read before the request (a
status that lags still shows the last operation). Only then is health judged, as Argo CD's
health model means it: ``Healthy`` (and Synced at the commit or one containing it)
succeeds; ``Degraded`` and ``Missing`` fail at once; ``Suspended`` (paused, waiting for
something outside Argo CD) ends the wait and is left to a person (verification cannot
tell); ``Progressing`` and ``Unknown`` are waited on.

An application with automated sync (``spec.syncPolicy.automated``) refuses a sync to any
revision but its ``targetRevision`` (dry runs excepted), and deploys main by itself. For it
the check still dry-runs the proposal commit and says so in an ``argocd_policy`` event; the
apply and the rollback (a revert committed on main) ask for no sync: they refresh the
application so Argo CD sees main, and wait for auto-sync to deploy a revision containing the
commit, then judge it as above. An auto-synced application whose ``targetRevision`` a merge
to main does not move fails the check with that reason (the gate denies it), since nothing
could deploy the merge.

Applications in other namespaces are named ``namespace/name``, as the CLI does; the
namespace is sent as ``appNamespace``.

Errors: 5xx and connection failures are retried with backoff; a 4xx is an ``ArgoCDError``
carrying Argo CD's own message and gRPC code (never the token); an answer under 400 that is
not a JSON object (a login page, a truncated body) is treated like a 5xx. Refusals for the
application's state are told by the gRPC code FailedPrecondition (9), whether it comes as
400 (grpc-gateway) or 409. A sync request that failed in transit (a proxy's 504) may have
been accepted, so before asking again Terry reads the application and adopts an operation
for the same revision. During the check an error that stops the sync from starting is
raised (nothing merged, the run could not start); during apply and rollback it is a failed
run, so a merge that could not be deployed is reverted. Once a sync is under way, an error
means Terry cannot tell (``unreachable``). Terry's own sync still running at the timeout is
terminated (``DELETE .../operation``), so it cannot deploy later and does not hold off the
rollback's sync.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import httpx

from terry.appliers.base import (
    EventStatus,
    HostStats,
    Job,
    OnEvent,
    RunnerEvent,
    RunResult,
    RunStatus,
    Share,
)
from terry.appliers.rest import request_with_retries
from terry.config import ArgoCDConfig
from terry.errors import GitError, RunnerError

if TYPE_CHECKING:
    from terry.context import Context
    from terry.gitops.repo import Repo

__all__ = [
    "AppStatus",
    "ArgoCDApplier",
    "ArgoCDClient",
    "ArgoCDError",
    "Operation",
    "Requested",
    "SyncRequest",
    "build",
]

ACTION = "argocd.sync"
_APP_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # a Kubernetes namespace
_FINISHED = ("Succeeded", "Failed", "Error")  # Argo CD's completed operation phases
_AUTO_SYNC_REFUSAL = "auto-sync currently set to"  # FailedPrecondition from Sync
_IN_PROGRESS = "in progress"  # "another operation is already in progress"
_NO_OPERATION = "no operation is in progress"  # TerminateOperation with nothing to stop
_FAILED_PRECONDITION = 9  # the gRPC code of both refusals above
# How often an auto-synced application that has not yet compared with the merge is asked
# to refresh (Argo CD itself polls git every three minutes unless a webhook tells it).
_NUDGE_SECONDS = 30.0
# How often an application whose controller has not reconciled in a later second than the
# last sync finished is asked to refresh (Argo CD's timestamps are whole seconds).
_RECONCILE_SECONDS = 1.0


class ArgoCDError(RunnerError):
    """Argo CD refused or could not be reached; ``status`` is the HTTP status (0: none),
    ``code`` the gRPC code of Argo CD's error body, when it had one."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: int | None = None,
        setting: str | None = None,
    ) -> None:
        super().__init__(message, setting=setting)
        self.status = status
        self.code = code

    @property
    def in_transit(self) -> bool:
        """No answer from Argo CD itself (none, a 5xx, or one under 400 that is not Argo
        CD's JSON): the request may or may not have been carried out."""
        return not 400 <= self.status < 500

    @property
    def precondition(self) -> bool:
        """Refused for the application's state (gRPC FailedPrecondition: "another operation
        is already in progress", "auto-sync currently set to"). grpc-gateway answers it
        with 400; servers and proxies that map it to 409 Conflict say the same."""
        if self.code is not None:
            return self.code == _FAILED_PRECONDITION
        return self.status in (400, 409)


def _time(value: Any) -> datetime | None:
    """A ``metav1.Time`` (RFC 3339; Argo CD writes whole seconds)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Operation:
    """``status.operationState``: the last operation Argo CD ran, or runs, for the app."""

    phase: str
    message: str
    revision: str | None
    dry_run: bool
    started_at: str | None
    resources: tuple[dict[str, Any], ...]
    finished_at: str | None = None
    automated: bool = False  # started by auto-sync (initiatedBy.automated)

    @property
    def finished(self) -> bool:
        return self.phase in _FINISHED

    @classmethod
    def from_api(cls, state: dict[str, Any]) -> Operation:
        requested = state.get("operation") or {}
        sync_op = requested.get("sync") or {}
        result = state.get("syncResult") or {}
        return cls(
            phase=str(state.get("phase", "")),
            message=str(state.get("message", "")),
            revision=sync_op.get("revision") or result.get("revision"),
            dry_run=bool(sync_op.get("dryRun", False)),
            started_at=state.get("startedAt"),
            resources=tuple(r for r in result.get("resources") or () if isinstance(r, dict)),
            finished_at=state.get("finishedAt"),
            automated=bool((requested.get("initiatedBy") or {}).get("automated", False)),
        )


@dataclass(frozen=True)
class Requested:
    """The application's ``operation``: asked for and not finished; while it is set, Argo CD
    refuses another."""

    revision: str | None
    dry_run: bool
    automated: bool

    @classmethod
    def from_api(cls, operation: dict[str, Any]) -> Requested:
        sync_op = operation.get("sync") or {}
        return cls(
            revision=sync_op.get("revision"),
            dry_run=bool(sync_op.get("dryRun", False)),
            automated=bool((operation.get("initiatedBy") or {}).get("automated", False)),
        )


@dataclass(frozen=True)
class AppStatus:
    name: str
    sync_status: str  # Synced | OutOfSync | Unknown
    sync_revision: str | None
    health: str  # Healthy | Progressing | Degraded | Suspended | Missing | Unknown
    health_message: str
    operation: Operation | None
    raw: dict[str, Any] = field(repr=False, compare=False)
    requested: Requested | None = None
    reconciled_at: str | None = None
    auto_sync: bool = False  # spec.syncPolicy.automated, not disabled
    target_revision: str = ""  # spec.source.targetRevision

    def settled(self, at: Callable[[str | None], bool]) -> bool:
        """Synced at a revision ``at`` accepts, and Healthy."""
        return self.sync_status == "Synced" and at(self.sync_revision) and self.health == "Healthy"

    @property
    def busy(self) -> bool:
        """An operation is in progress, as ``argocd app wait`` decides: one is requested or
        running, or a sync finished that the controller has not reconciled since."""
        if self.requested is not None:
            return True
        operation = self.operation
        if operation is None:
            return False
        finished = _time(operation.finished_at)
        if finished is None:
            return True
        if operation.dry_run:
            return False
        reconciled = _time(self.reconciled_at)
        return reconciled is None or reconciled < finished

    @property
    def unsure(self) -> bool:
        """Reconciled in the same second as the last sync finished: before or after it?"""
        operation = self.operation
        if self.busy or operation is None or operation.dry_run:
            return False
        return _time(self.reconciled_at) == _time(operation.finished_at)

    @property
    def reconciling(self) -> bool:
        """The last real sync finished and the controller has not reconciled in a later
        second since (busy or unsure, for that reason only): a refresh settles it."""
        operation = self.operation
        if self.requested is not None or operation is None or operation.dry_run:
            return False
        finished = _time(operation.finished_at)
        if finished is None:
            return False
        reconciled = _time(self.reconciled_at)
        return reconciled is None or reconciled <= finished

    def tracks(self, branch: str) -> bool:
        """Whether ``targetRevision`` follows ``branch`` (HEAD: the default branch)."""
        return self.target_revision in ("", "HEAD", branch, f"refs/heads/{branch}")

    def missing(self) -> list[str]:
        """The resources Argo CD reports Missing."""
        return [
            f"{r.get('kind')} {r.get('namespace') or ''}/{r.get('name')}".replace(" /", " ")
            for r in (self.raw.get("status") or {}).get("resources") or ()
            if isinstance(r, dict) and (r.get("health") or {}).get("status") == "Missing"
        ]

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> AppStatus:
        status = body.get("status") or {}
        sync = status.get("sync") or {}
        health = status.get("health") or {}
        state = status.get("operationState")
        requested = body.get("operation")
        spec = body.get("spec") or {}
        automated = (spec.get("syncPolicy") or {}).get("automated")
        return cls(
            name=str((body.get("metadata") or {}).get("name", "")),
            sync_status=str(sync.get("status", "Unknown")),
            sync_revision=sync.get("revision"),
            health=str(health.get("status", "Unknown")),
            health_message=str(health.get("message", "")),
            operation=Operation.from_api(state) if isinstance(state, dict) else None,
            raw=body,
            requested=Requested.from_api(requested) if isinstance(requested, dict) else None,
            reconciled_at=status.get("reconciledAt"),
            auto_sync=isinstance(automated, dict) and automated.get("enabled") is not False,
            target_revision=str((spec.get("source") or {}).get("targetRevision") or ""),
        )


def _at(revision: str, contains: Callable[[str, str], bool] | None) -> Callable[[str | None], bool]:
    """Whether a revision Argo CD reports is ours or (per ``contains``) includes ours."""

    def accepts(reported: str | None) -> bool:
        if reported is None:
            return False
        return reported == revision or (contains is not None and contains(revision, reported))

    return accepts


def check_app_name(name: str) -> str:
    """``name``, or ``namespace/name`` for an application outside Argo CD's own namespace
    (the CLI's qualified name, util/argo ``ParseFromQualifiedName``)."""
    namespace, slash, app = name.rpartition("/")
    if not _APP_NAME.fullmatch(app) or (slash and not _NAMESPACE.fullmatch(namespace)):
        raise ArgoCDError(f"{name[:80]!r} is not an Argo CD application name")
    return name


def _app_path(app: str, suffix: str = "", **query: str) -> tuple[str, str | None]:
    """The path of an application's resource, and its namespace (``appNamespace``, sent as
    a query parameter here and in the body of a sync)."""
    namespace, _, name = check_app_name(app).rpartition("/")
    params = {"appNamespace": namespace, **query} if namespace else query
    path = f"/api/v1/applications/{quote(name)}{suffix}"
    return (f"{path}?{urlencode(params)}" if params else path), namespace or None


class ArgoCDClient:
    """The few REST calls Terry needs: application get, sync, and terminating an operation."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        verify_tls: bool = True,
        timeout: float = 15.0,
        retries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        headers = {"Accept": "application/json", "User-Agent": "terry"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=url.rstrip("/"), headers=headers, verify=verify_tls, timeout=timeout
        )
        self.url = url
        self.retries = retries
        self._sleep = sleep

    @classmethod
    def from_config(cls, config: ArgoCDConfig, environ: dict[str, str]) -> ArgoCDClient:
        if not config.url:
            raise ArgoCDError(
                "argocd.url is not configured (terry.yml or TERRY_ARGOCD_URL)",
                setting="argocd.url",
            )
        return cls(
            config.url,
            environ.get(config.token_env) or None,
            verify_tls=config.verify_tls,
            timeout=config.request_timeout,
            retries=config.retries,
        )

    def close(self) -> None:
        self._http.close()

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, retry: bool = True
    ) -> dict[str, Any]:
        codes: dict[int, int | None] = {}  # HTTP status -> the gRPC code its body gave

        def refused(response: httpx.Response) -> str:
            code, message = _error(response)
            codes[response.status_code] = code
            return f"Argo CD answered {response.status_code}: {message}"

        response = request_with_retries(
            self._http,
            method,
            path,
            body,
            attempts=self.retries + 1,
            repeatable=retry,
            sleep=self._sleep,
            unreachable=lambda exc: (
                f"Argo CD at {self.url} could not be reached: {type(exc).__name__}"
            ),
            refused=refused,
            error=lambda problem, status, _sent: ArgoCDError(
                problem, status=status, code=codes.get(status)
            ),
            check=_not_an_object,
        )
        answer: dict[str, Any] = response.json()  # checked: a JSON object
        return answer

    def get(self, app: str, *, refresh: bool = False) -> AppStatus:
        path, _ = _app_path(app, **({"refresh": "normal"} if refresh else {}))
        return AppStatus.from_api(self._request("GET", path))

    def sync(self, app: str, *, revision: str, dry_run: bool) -> AppStatus:
        """One request, never repeated here: one that failed in transit may have been carried
        out, so whether to ask again is decided after reading the application."""
        path, namespace = _app_path(app, "/sync")
        body: dict[str, Any] = {
            "name": app.rpartition("/")[2],
            "revision": revision,
            "dryRun": dry_run,
            "prune": False,
        }
        if namespace is not None:
            body["appNamespace"] = namespace
        return AppStatus.from_api(self._request("POST", path, body, retry=False))

    def terminate(self, app: str) -> bool:
        """Terminate the application's operation (``DELETE .../operation``); ``False`` when
        Argo CD has none in progress (it finished meanwhile)."""
        path, _ = _app_path(app, "/operation")
        try:
            self._request("DELETE", path)
        except ArgoCDError as exc:
            if exc.status == 400 and _NO_OPERATION in str(exc).lower():
                return False
            raise
        return True


def _error(response: httpx.Response) -> tuple[int | None, str]:
    """Argo CD's error body is gRPC-gateway JSON: {"error", "code", "message"}."""
    try:
        body = response.json()
    except ValueError:
        return None, response.reason_phrase or "no message"
    if not isinstance(body, dict):
        return None, "no message"
    code = body.get("code")
    message = str(body.get("message") or body.get("error") or "no message")[:500]
    return (code if isinstance(code, int) and not isinstance(code, bool) else None), message


def _not_an_object(response: httpx.Response) -> str | None:
    """An answer under 400 that is not a JSON object is not Argo CD's (a proxy's or a
    single sign-on login page, a truncated body)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return None
    kind = response.headers.get("content-type", "no content type").split(";")[0]
    return f"Argo CD answered {response.status_code} with {kind}, not an application"


@dataclass(frozen=True)
class SyncRequest:
    app: str
    target: str  # the inventory name, for stats and events
    revision: str
    dry_run: bool
    # (path, before, after) of the manifest the proposal changed: the dry run's diff.
    manifest: tuple[str, str, str] | None = None


class _Verdict(Enum):
    """What a settled read of the application says of a revision."""

    HEALTHY = "healthy"  # Synced at it and Healthy
    BROKEN = "broken"  # Degraded or Missing at it
    SYNC_FAILED = "sync failed"  # auto-sync's operation for it failed
    SUSPENDED = "suspended"  # Synced at it, paused: waits for something outside Argo CD
    ELSEWHERE = "elsewhere"  # Argo CD compares with a revision that does not contain it
    UNSETTLED = "unsettled"  # none of those (in time)


def _underway(status: AppStatus, request: SyncRequest, before: AppStatus) -> bool:
    """Whether the application shows an operation for ``request``: requested or running, or
    finished since ``before`` was read (a sync request clears the last operation's state)."""
    asked = status.requested
    if asked is not None:
        return asked.revision == request.revision and asked.dry_run == request.dry_run
    operation = status.operation
    return (
        operation is not None
        and operation.finished
        and operation.revision == request.revision
        and operation.dry_run == request.dry_run
        and operation != before.operation
    )


def _deployed(status: AppStatus, at: Callable[[str | None], bool]) -> Operation | None:
    """The last operation, when it was a real sync of a revision ``at`` accepts."""
    operation = status.operation
    if operation is not None and operation.finished and not operation.dry_run:
        return operation if at(operation.revision) else None
    return None


class ArgoCDApplier:
    """Sync (or let auto-sync deploy), wait, judge; one ``RunResult`` per sync or read."""

    name = "argocd"
    check_words = "Argo CD sync --dry-run"

    def __init__(
        self,
        client: ArgoCDClient,
        *,
        timeout: float = 300.0,
        poll_interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        repo: Repo | None = None,
        share: Share | None = None,
        say: Callable[[int, str], None] | None = None,
    ) -> None:
        self.client = client
        self.timeout = timeout
        self.poll_interval = poll_interval
        self._clock = clock
        self._sleep = sleep
        self._repo = repo
        self._share = share
        self._say = say

    # -- the applier protocol: a proposal's manifest change --------------------------------
    # Argo CD reads the repository from where it is shared (the forge): a branch it dry-runs
    # and a revert it syncs are shared first.
    @property
    def repo(self) -> Repo:
        if self._repo is None:
            raise RunnerError("the Argo CD applier was built without a repository")
        return self._repo

    @property
    def main_branch(self) -> str:
        return self._repo.main_branch if self._repo is not None else "main"

    def check(self, job: Job, on_event: OnEvent) -> RunResult:
        """A dry-run sync of the proposal commit, with the manifest's diff."""
        path, app = job.playbook, _app(job)
        assert path is not None and job.branch is not None
        parent = self.repo.head(f"{job.commit}^")
        manifest = (
            path,
            self.repo.read_text(parent, path) or "",
            self.repo.read_text(job.commit, path) or "",
        )
        if self._share is not None:
            self._share.share_branch(job.branch)
        request = SyncRequest(app, job.hosts[0], job.commit, dry_run=True, manifest=manifest)
        return self.sync(
            request, on_event=on_event, contains=self.repo.is_ancestor, on_remote=job.on_remote
        )

    def apply(self, job: Job, on_event: OnEvent) -> RunResult:
        """Sync the merge (or let auto-sync deploy it) and wait for Synced at it (or after
        it) and Healthy."""
        request = SyncRequest(_app(job), job.hosts[0], job.commit, dry_run=False)
        return self.sync(
            request, on_event=on_event, contains=self.repo.is_ancestor, on_remote=job.on_remote
        )

    def verify(self, job: Job, on_event: OnEvent) -> RunResult:
        return self.status(
            _app(job), job.hosts[0], job.commit, contains=self.repo.is_ancestor, on_event=on_event
        )

    def rollback(self, job: Job, on_event: OnEvent) -> RunResult:
        """Revert the merge on main (shared where Argo CD reads), then sync the revert (or
        let auto-sync deploy it)."""
        if self._share is not None:
            self._share.refresh_main()
        try:
            sha = self.repo.revert_merge(
                job.commit,
                message=(
                    f"Revert proposal {job.proposal_id} (merge {job.commit[:10]})\n\n"
                    f"Terry-Proposal: {job.proposal_id}\nTerry-Reverts: {job.commit}\n"
                ),
            )
        except GitError as exc:
            raise RunnerError(f"cannot revert {job.commit[:10]} on main: {exc}") from exc
        if self._share is not None:
            self._share.share_main()
        if self._say is not None:
            self._say(job.proposal_id, f"reverted {job.commit[:10]} on main as {sha[:10]}")
        request = SyncRequest(_app(job), job.hosts[0], sha, dry_run=False)
        result = self.sync(
            request, on_event=on_event, contains=self.repo.is_ancestor, on_remote=job.on_remote
        )
        return replace(result, revision=sha)

    def sync(
        self,
        request: SyncRequest,
        on_event: Callable[[RunnerEvent], None] | None = None,
        *,
        contains: Callable[[str, str], bool] | None = None,
        on_remote: Callable[[str], None] | None = None,
    ) -> RunResult:
        """Sync and wait. ``contains(ours, compared)``: whether the revision Argo CD compares
        with (main's head) includes ours, so main moving on meanwhile is still "Synced".
        ``on_remote`` is told the sync Terry asked for, once Argo CD took it
        (``stop_remote`` ends it should Terry die meanwhile)."""
        started = self._clock()
        deadline = started + self.timeout
        at = _at(request.revision, contains)
        events = _Events(request.target, on_event)
        if request.manifest is not None:
            path, before_text, after_text = request.manifest
            events.add(
                "argocd_manifest",
                f"manifest {path}",
                EventStatus.CHANGED if before_text != after_text else EventStatus.OK,
                f"{path} at {request.revision[:10]}",
                diffs=(
                    {
                        "before": before_text,
                        "after": after_text,
                        "before_header": path,
                        "after_header": path,
                    },
                ),
            )
        try:
            auto, before = self._begin(request, events, deadline)
        except ArgoCDError as exc:
            if request.dry_run:
                raise  # the check could not start; nothing is merged
            kind = EventStatus.UNREACHABLE if exc.in_transit else EventStatus.FAILED
            events.add("argocd_operation", "sync", kind, f"the sync could not start: {exc}")
            return events.result(RunStatus.ERROR, started, self._clock())
        if auto is None:
            return events.result(RunStatus.FAILED, started, self._clock())
        if not auto and on_remote is not None:  # auto-sync's operation is Argo CD's own
            on_remote(f"{self.name}:{request.revision}:{int(request.dry_run)}:{request.app}")
        try:
            if auto:
                status, verdict = self._watch(request.app, at, deadline, patient=True, auto=True)
                return self._conclude(status, verdict, at, events, started, applying=True)
            operation = self._operation(request, before, deadline)
            if operation is None:
                events.add(
                    "argocd_operation",
                    "sync",
                    EventStatus.FAILED,
                    f"the sync did not finish within {self.timeout:.0f} s"
                    + self._terminate(request),
                )
                return events.result(RunStatus.TIMEOUT, started, self._clock())
            for resource in operation.resources:
                events.resource(resource)
            if operation.phase != "Succeeded":
                events.add(
                    "argocd_operation",
                    "sync",
                    EventStatus.FAILED,
                    f"sync {operation.phase}: {operation.message}",
                )
                return events.result(RunStatus.FAILED, started, self._clock())
            if request.dry_run:
                return events.result(RunStatus.SUCCESSFUL, started, self._clock())
            status, verdict = self._watch(request.app, at, deadline, patient=True)
        except ArgoCDError as exc:
            events.add("argocd_operation", "sync", EventStatus.UNREACHABLE, str(exc))
            return events.result(RunStatus.FAILED, started, self._clock())
        return self._conclude(status, verdict, at, events, started, applying=True)

    def status(
        self,
        app: str,
        target: str,
        revision: str,
        *,
        contains: Callable[[str, str], bool],
        on_event: Callable[[RunnerEvent], None] | None = None,
    ) -> RunResult:
        """The application now, once no operation is in progress and health is not
        Progressing (or at the timeout): ``Synced`` at ``revision`` (or a commit containing
        it) and ``Healthy`` is verified; ``Degraded`` or ``Missing`` failed; anything else
        (Suspended, Synced elsewhere, OutOfSync, not settled) cannot tell."""
        started = self._clock()
        at = _at(revision, contains)
        events = _Events(target, on_event)
        try:
            status, verdict = self._watch(
                app, at, started + self.timeout, patient=False, refresh=True
            )
        except ArgoCDError as exc:
            events.add("argocd_health", "status", EventStatus.UNREACHABLE, str(exc))
            return events.result(RunStatus.FAILED, started, self._clock())
        return self._conclude(status, verdict, at, events, started, applying=False)

    # -- the steps of a sync ---------------------------------------------------------------
    def _policy(self, status: AppStatus, request: SyncRequest, events: _Events) -> bool:
        """An auto-synced application, in an event: whether a merge to main reaches it."""
        main, tracked = self.main_branch, status.target_revision or "HEAD"
        if not status.tracks(main):
            events.add(
                "argocd_policy",
                "sync policy",
                EventStatus.FAILED,
                f"{request.app} is auto-synced to {tracked!r}, which a merge to {main} does "
                "not move, and Argo CD refuses a sync to any other revision while auto-sync "
                "is on: nothing would deploy this change (turn auto-sync off, or point the "
                f"application at {main})",
            )
            return False
        events.add(
            "argocd_policy",
            "sync policy",
            EventStatus.OK,
            f"{request.app} is auto-synced to {tracked}: Argo CD deploys {main} itself, so "
            "after the merge Terry asks for a refresh and waits for auto-sync to deploy it "
            "(a rollback is a revert on main, deployed the same way)",
        )
        return True

    def _begin(
        self, request: SyncRequest, events: _Events, deadline: float
    ) -> tuple[bool | None, AppStatus]:
        """Start the sync Terry asks for (``False``), or find that auto-sync deploys it
        (``True``: a real sync of an auto-synced app); ``None``: nothing would deploy it,
        the reason in an event. With the application as read before."""
        # Refreshed: Argo CD compares with main as it is now, so an auto-synced app starts
        # deploying a merge it had not seen yet.
        before = self.client.get(request.app, refresh=True)
        if before.auto_sync:
            if not self._policy(before, request, events):
                return None, before
            if not request.dry_run:
                return True, before
        if self._start(request, before, deadline):
            return False, before
        # Refused because auto-sync was turned on since the read: it deploys main.
        auto = self._policy(self.client.get(request.app), request, events)
        return (True if auto else None), before

    def _start(self, request: SyncRequest, before: AppStatus, deadline: float) -> bool:
        """Ask for the sync; ``False`` when Argo CD refuses it because auto-sync is on.

        While another operation runs (FailedPrecondition: 400, or 409 from some servers) wait
        and ask again, until the timeout. A request that failed in transit is asked again
        with backoff, but first the application is read: an operation for this revision there
        (requested, running, or finished since ``before``) is adopted, since it is this
        request's."""
        delay, failures = 0.5, 0
        while True:
            try:
                self.client.sync(request.app, revision=request.revision, dry_run=request.dry_run)
                return True
            except ArgoCDError as exc:
                refused, message = exc.precondition, str(exc)
                if refused and _AUTO_SYNC_REFUSAL in message and not request.dry_run:
                    return False
                if refused and _IN_PROGRESS in message:
                    pause = self.poll_interval
                elif exc.in_transit and failures < self.client.retries:
                    failures += 1
                    pause, delay = delay, min(delay * 2, 8.0)
                else:
                    raise
                if self._timed_out(deadline):
                    raise
            self._sleep(pause)
            if _underway(self.client.get(request.app), request, before):
                return True

    def _operation(
        self, request: SyncRequest, before: AppStatus, deadline: float
    ) -> Operation | None:
        """The operation this request started, once finished (None at the timeout). A sync
        request clears the last operation's state, so a finished one for this revision, with
        nothing requested, is this request's, unless it is the one read before the request
        (a status that lags still shows the last operation)."""
        while True:
            status = self.client.get(request.app)
            operation = status.operation
            if (
                status.requested is None
                and operation is not None
                and operation.finished
                and operation.dry_run == request.dry_run
                and operation.revision == request.revision
                and operation != before.operation
            ):
                return operation
            if self._timed_out(deadline):
                return None
            self._sleep(self.poll_interval)

    def stop_remote(self, ref: str) -> bool:
        """The sync of a run whose Terry died (``<revision>:<dry run 0|1>:<app>``): terminated
        if it is still the application's operation, and whether it has ended (it finished,
        another operation replaced it, or the termination shows within a little while).
        Argo CD's refusal or an outage raises: the hosts stay held."""
        revision, _, rest = ref.partition(":")
        dry, _, app = rest.partition(":")
        if not revision or dry not in ("0", "1") or not app:
            return False

        def ours() -> bool:  # the application's operation is still the one Terry asked for
            asked = self.client.get(app).requested
            return (
                asked is not None
                and not asked.automated
                and asked.revision == revision
                and asked.dry_run == (dry == "1")
            )

        if not ours():
            return True
        self.client.terminate(app)
        give_up = self._clock() + max(30.0, 10 * self.poll_interval)
        while self._clock() < give_up:
            if not ours():
                return True
            self._sleep(self.poll_interval)
        return False

    def _terminate(self, request: SyncRequest) -> str:
        """Terminate this request's operation, still running at the timeout, so that it does
        not deploy later and the rollback's sync is not refused while it runs; what was done,
        for the event."""
        try:
            asked = self.client.get(request.app).requested
            if (
                asked is None
                or asked.automated
                or asked.revision != request.revision
                or asked.dry_run != request.dry_run
            ):
                return ""
            if not self.client.terminate(request.app):
                return ""
        except ArgoCDError as exc:
            return f"; terminating it failed: {exc}"
        return "; Terry asked Argo CD to terminate it"

    def _watch(
        self,
        app: str,
        at: Callable[[str | None], bool],
        deadline: float,
        *,
        patient: bool,
        auto: bool = False,
        refresh: bool = False,
    ) -> tuple[AppStatus, _Verdict]:
        """Read the application until it decides (or the timeout). ``patient``: wait for it
        to reach the revision and settle (apply, rollback), or only while Argo CD is busy or
        Progressing (verify). ``auto``: auto-sync, not Terry, deploys the revision."""
        nudged = self._clock()  # when a refresh was last asked for, or the wait began
        while True:
            status = self.client.get(app, refresh=refresh)
            if refresh:
                nudged = self._clock()
            refresh = False
            verdict = _decide(status, at, patient=patient, auto=auto)
            if verdict is not None:
                return status, verdict
            if self._timed_out(deadline):
                return status, _Verdict.UNSETTLED
            since = self._clock() - nudged
            if status.reconciling:
                # Not reconciled in a later second than the sync finished: ask for it, once
                # a second, rather than trust one refresh's answer (or wait for the
                # controller's own).
                refresh = since >= _RECONCILE_SECONDS
            elif auto and not status.busy and since >= _NUDGE_SECONDS:
                refresh = not at(status.sync_revision)
            self._sleep(self.poll_interval)

    def _conclude(
        self,
        status: AppStatus,
        verdict: _Verdict,
        at: Callable[[str | None], bool],
        events: _Events,
        started: float,
        *,
        applying: bool,
    ) -> RunResult:
        where = f"sync {status.sync_status} at {str(status.sync_revision)[:10]}"
        detail = f"{where}, health {status.health}" + (
            f": {status.health_message}" if status.health_message else ""
        )
        deployed = _deployed(status, at)
        if applying and deployed is not None and deployed.automated:
            for resource in deployed.resources:  # what auto-sync did
                events.resource(resource)
        if verdict is _Verdict.HEALTHY:
            events.add("argocd_health", "status", EventStatus.OK, detail)
            return events.result(RunStatus.SUCCESSFUL, started, self._clock())
        if verdict is _Verdict.BROKEN:
            missing = status.missing() if status.health == "Missing" else []
            if missing:
                detail += f" (missing: {', '.join(missing)})"
            events.add("argocd_health", "status", EventStatus.FAILED, detail)
            return events.result(RunStatus.FAILED, started, self._clock())
        if verdict is _Verdict.SYNC_FAILED and deployed is not None:
            events.add(
                "argocd_operation",
                "sync",
                EventStatus.FAILED,
                f"auto-sync to {str(deployed.revision)[:10]} {deployed.phase}: {deployed.message}",
            )
            return events.result(RunStatus.FAILED, started, self._clock())
        if verdict is _Verdict.SUSPENDED:
            # Paused by intent (a paused rollout, a suspended job): nothing failed and the
            # sync is done, but whether the change works is for a person to see.
            events.add(
                "argocd_health",
                "status",
                EventStatus.SKIPPED,
                f"{detail} (paused: waits for something outside Argo CD; Terry cannot tell "
                "whether the change works)",
            )
            status_now = RunStatus.SUCCESSFUL if applying else RunStatus.TIMEOUT
            return events.result(status_now, started, self._clock())
        if verdict is _Verdict.ELSEWHERE:
            detail += ", which does not contain the commit"
        events.add("argocd_health", "status", EventStatus.SKIPPED, f"not settled: {detail}")
        return events.result(RunStatus.TIMEOUT, started, self._clock())

    def _timed_out(self, deadline: float) -> bool:
        return self._clock() >= deadline


def _decide(
    status: AppStatus,
    at: Callable[[str | None], bool],
    *,
    patient: bool,
    auto: bool,
) -> _Verdict | None:
    """What one read of the application decides, or ``None``: keep waiting."""
    if status.busy or status.unsure:
        # The operation runs, or its status has not been reconciled since (in a later
        # second than it finished: one in the same second may have been before it).
        return None
    if auto:
        deployed = _deployed(status, at)
        if deployed is not None and deployed.phase != "Succeeded":
            return _Verdict.SYNC_FAILED  # auto-sync does not try the same revision again
        if deployed is None and not (status.sync_status == "Synced" and at(status.sync_revision)):
            return None  # auto-sync has not deployed it yet
    if not at(status.sync_revision):
        return None if patient else _Verdict.ELSEWHERE
    if status.health in ("Degraded", "Missing"):
        return _Verdict.BROKEN
    if status.sync_status == "Synced" and status.health == "Healthy":
        return _Verdict.HEALTHY
    if status.sync_status == "Synced" and status.health == "Suspended":
        return _Verdict.SUSPENDED
    if patient or status.health == "Progressing":
        return None
    return _Verdict.UNSETTLED


def _app(job: Job) -> str:
    if not job.target:
        raise RunnerError(f"proposal {job.proposal_id} names no Argo CD application")
    return job.target


def build(ctx: Context, share: Share) -> ArgoCDApplier:
    config = ctx.config.argocd
    return ArgoCDApplier(
        ArgoCDClient.from_config(config, dict(os.environ)),
        timeout=config.timeout,
        poll_interval=config.poll_interval,
        repo=ctx.repo,
        share=share,
        say=ctx.reporter.step,
    )


class _Events:
    """Argo CD's answers as runner events and per-target stats."""

    def __init__(self, target: str, on_event: Callable[[RunnerEvent], None] | None) -> None:
        self.target = target
        self.on_event = on_event
        self.events: list[RunnerEvent] = []

    def add(
        self,
        event: str,
        task: str,
        status: EventStatus,
        message: str,
        *,
        diffs: tuple[dict[str, Any], ...] = (),
        raw: dict[str, Any] | None = None,
    ) -> None:
        item = RunnerEvent(
            seq=len(self.events) + 1,
            event=event,
            host=self.target,
            task=task,
            action=ACTION,
            status=status,
            message=message[:2000],
            diffs=diffs,
            raw=raw if raw is not None else {"event": event, "task": task, "message": message},
        )
        self.events.append(item)
        if self.on_event is not None:
            self.on_event(item)

    def resource(self, resource: dict[str, Any]) -> None:
        kind, name = resource.get("kind", "?"), resource.get("name", "?")
        namespace = resource.get("namespace") or ""
        message = str(resource.get("message", ""))
        if resource.get("status") not in ("Synced", "Pruned", "PruneSkipped"):
            status = EventStatus.FAILED
        elif "unchanged" in message:
            status = EventStatus.OK
        else:
            status = EventStatus.CHANGED
        task = f"{kind} {namespace + '/' if namespace else ''}{name}"
        # What Argo CD said of the resource, as the run's diff text ("... configured").
        prepared = ({"prepared": f"Argo CD: {message}"},) if status is EventStatus.CHANGED else ()
        self.add("argocd_resource", task, status, message, diffs=prepared, raw=dict(resource))

    def result(self, status: RunStatus, started: float, finished: float) -> RunResult:
        counts = {s: sum(1 for e in self.events if e.status is s) for s in EventStatus}
        stats = HostStats(
            ok=counts[EventStatus.OK],
            changed=counts[EventStatus.CHANGED],
            failures=counts[EventStatus.FAILED],
            unreachable=counts[EventStatus.UNREACHABLE],
            skipped=counts[EventStatus.SKIPPED],
        )
        return RunResult(
            status=status,
            rc=0 if status is RunStatus.SUCCESSFUL else 1,
            stats={self.target: stats},
            events=tuple(self.events),
            artifact_dir=None,
            ansible_seconds=finished - started,
        )
