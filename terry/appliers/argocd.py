"""The Argo CD applier: sync an application to a commit through Argo CD's REST API.

For inventory targets labelled ``terry_applier: argocd`` a proposal is a manifest change in
the GitOps repository; Argo CD, not Ansible, puts it on the cluster. Terry asks for a sync
of the exact commit (``POST /api/v1/applications/{name}/sync`` with ``revision``; a dry run
is the same request with ``dryRun``), waits for the operation it started to finish, then
for the application to be ``Synced`` at that commit and ``Healthy``. The outcome is a
``RunResult`` like ansible's, so the store, the gate and verification read both the same way.

Errors: 5xx and connection failures are retried with backoff; a 4xx is an ``ArgoCDError``
carrying Argo CD's own message (never the token). Before the sync is accepted, an error
means the run could not start; after, it means Terry cannot tell (``unreachable``).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

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
    "SyncRequest",
    "build",
]

ACTION = "argocd.sync"
_APP_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_FINISHED = ("Succeeded", "Failed", "Error")


class ArgoCDError(RunnerError):
    """Argo CD refused or could not be reached; ``status`` is the HTTP status (0: none)."""

    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Operation:
    """``status.operationState``: the last sync Argo CD ran for the application."""

    phase: str
    message: str
    revision: str | None
    dry_run: bool
    started_at: str | None
    resources: tuple[dict[str, Any], ...]

    @property
    def finished(self) -> bool:
        return self.phase in _FINISHED


@dataclass(frozen=True)
class AppStatus:
    name: str
    sync_status: str  # Synced | OutOfSync | Unknown
    sync_revision: str | None
    health: str  # Healthy | Progressing | Degraded | Suspended | Missing | Unknown
    health_message: str
    operation: Operation | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    def settled(self, at: Callable[[str | None], bool]) -> bool:
        """Synced at a revision ``at`` accepts, and Healthy."""
        return self.sync_status == "Synced" and at(self.sync_revision) and self.health == "Healthy"

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> AppStatus:
        status = body.get("status") or {}
        sync = status.get("sync") or {}
        health = status.get("health") or {}
        state = status.get("operationState")
        operation = None
        if isinstance(state, dict):
            sync_op = (state.get("operation") or {}).get("sync") or {}
            result = state.get("syncResult") or {}
            operation = Operation(
                phase=str(state.get("phase", "")),
                message=str(state.get("message", "")),
                revision=sync_op.get("revision") or result.get("revision"),
                dry_run=bool(sync_op.get("dryRun", False)),
                started_at=state.get("startedAt"),
                resources=tuple(r for r in result.get("resources") or () if isinstance(r, dict)),
            )
        return cls(
            name=str((body.get("metadata") or {}).get("name", "")),
            sync_status=str(sync.get("status", "Unknown")),
            sync_revision=sync.get("revision"),
            health=str(health.get("status", "Unknown")),
            health_message=str(health.get("message", "")),
            operation=operation,
            raw=body,
        )


def _at(revision: str, contains: Callable[[str, str], bool] | None) -> Callable[[str | None], bool]:
    """Whether a revision Argo CD reports is ours or (per ``contains``) includes ours."""

    def accepts(reported: str | None) -> bool:
        if reported is None:
            return False
        return reported == revision or (contains is not None and contains(revision, reported))

    return accepts


def check_app_name(name: str) -> str:
    if not _APP_NAME.fullmatch(name):
        raise ArgoCDError(f"{name[:80]!r} is not an Argo CD application name")
    return name


class ArgoCDClient:
    """The few REST calls Terry needs: application get and sync."""

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
            raise ArgoCDError("argocd.url is not configured (terry.yml or TERRY_ARGOCD_URL)")
        return cls(
            config.url,
            environ.get(config.token_env) or None,
            verify_tls=config.verify_tls,
            timeout=config.request_timeout,
            retries=config.retries,
        )

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        delay = 0.5
        for attempt in range(self.retries + 1):
            try:
                response = self._http.request(method, path, json=body)
            except httpx.HTTPError as exc:
                problem = f"Argo CD at {self.url} could not be reached: {type(exc).__name__}"
                status = 0
            else:
                if response.status_code < 400:
                    return response.json()
                status = response.status_code
                problem = f"Argo CD answered {status}: {_message(response)}"
                if status < 500:
                    raise ArgoCDError(problem, status=status)
            if attempt == self.retries:
                raise ArgoCDError(problem, status=status)
            self._sleep(delay)
            delay = min(delay * 2, 8.0)
        raise AssertionError("unreachable")

    def get(self, app: str, *, refresh: bool = False) -> AppStatus:
        path = f"/api/v1/applications/{quote(check_app_name(app))}"
        if refresh:
            path += "?refresh=normal"
        return AppStatus.from_api(self._request("GET", path))

    def sync(self, app: str, *, revision: str, dry_run: bool) -> AppStatus:
        body = {"name": app, "revision": revision, "dryRun": dry_run, "prune": False}
        path = f"/api/v1/applications/{quote(check_app_name(app))}/sync"
        return AppStatus.from_api(self._request("POST", path, body))


def _message(response: httpx.Response) -> str:
    """Argo CD's error body is gRPC-gateway JSON: {"error", "code", "message"}."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "no message"
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or "no message")[:500]
    return "no message"


@dataclass(frozen=True)
class SyncRequest:
    app: str
    target: str  # the inventory name, for stats and events
    revision: str
    dry_run: bool
    # (path, before, after) of the manifest the proposal changed: the dry run's diff.
    manifest: tuple[str, str, str] | None = None


class ArgoCDApplier:
    """Sync, wait, judge; one ``RunResult`` per sync or status read."""

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
        return self.sync(request, on_event=on_event, contains=self.repo.is_ancestor)

    def apply(self, job: Job, on_event: OnEvent) -> RunResult:
        """Sync the merge and wait for Synced at it (or after it) and Healthy."""
        request = SyncRequest(_app(job), job.hosts[0], job.commit, dry_run=False)
        return self.sync(request, on_event=on_event, contains=self.repo.is_ancestor)

    def verify(self, job: Job, on_event: OnEvent) -> RunResult:
        return self.status(
            _app(job), job.hosts[0], job.commit, contains=self.repo.is_ancestor, on_event=on_event
        )

    def rollback(self, job: Job, on_event: OnEvent) -> RunResult:
        """Revert the merge on main (shared where Argo CD reads), then sync the revert."""
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
        result = self.sync(request, on_event=on_event, contains=self.repo.is_ancestor)
        return replace(result, revision=sha)

    def sync(
        self,
        request: SyncRequest,
        on_event: Callable[[RunnerEvent], None] | None = None,
        *,
        contains: Callable[[str, str], bool] | None = None,
    ) -> RunResult:
        """Sync and wait. ``contains(ours, compared)``: whether the revision Argo CD compares
        with (main's head) includes ours, so main moving on meanwhile is still "Synced"."""
        started = self._clock()
        at = _at(request.revision, contains)
        events = _Events(request.target, on_event)
        if request.manifest is not None:
            path, before, after = request.manifest
            events.add(
                "argocd_manifest",
                f"manifest {path}",
                EventStatus.CHANGED if before != after else EventStatus.OK,
                f"{path} at {request.revision[:10]}",
                diffs=(
                    {"before": before, "after": after, "before_header": path, "after_header": path},
                ),
            )
        before_op = self.client.get(request.app, refresh=True).operation
        self._start(request)
        deadline = started + self.timeout
        try:
            operation = self._operation(request, before_op, deadline)
            if operation is None:
                events.add(
                    "argocd_operation",
                    "sync",
                    EventStatus.FAILED,
                    f"the sync did not finish within {self.timeout:.0f} s",
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
            status = self._settle(request.app, at, deadline)
        except ArgoCDError as exc:
            events.add("argocd_operation", "sync", EventStatus.UNREACHABLE, str(exc))
            return events.result(RunStatus.FAILED, started, self._clock())
        return self._judge(status, at, events, started, self._timed_out(deadline))

    def status(
        self,
        app: str,
        target: str,
        revision: str,
        *,
        contains: Callable[[str, str], bool],
        on_event: Callable[[RunnerEvent], None] | None = None,
    ) -> RunResult:
        """The application now: ``Synced`` at ``revision`` (or a commit containing it) and
        ``Healthy`` is verified; ``Degraded`` failed; anything else cannot tell."""
        started = self._clock()
        events = _Events(target, on_event)
        try:
            status = self.client.get(app, refresh=True)
        except ArgoCDError as exc:
            events.add("argocd_health", "status", EventStatus.UNREACHABLE, str(exc))
            return events.result(RunStatus.FAILED, started, self._clock())
        synced_here = status.sync_revision is not None and (
            status.sync_revision == revision or contains(revision, status.sync_revision)
        )
        if status.sync_status == "Synced" and synced_here and status.health == "Healthy":
            events.add(
                "argocd_health",
                "status",
                EventStatus.OK,
                f"Synced at {str(status.sync_revision)[:10]} and Healthy",
            )
            return events.result(RunStatus.SUCCESSFUL, started, self._clock())
        return self._judge(status, revision, events, started, timed_out=True)

    # -- the steps of a sync ---------------------------------------------------------------
    def _start(self, request: SyncRequest) -> None:
        """Ask for the sync; while another operation runs (Argo CD answers 400
        FailedPrecondition) wait and ask again, until the timeout."""
        deadline = self._clock() + self.timeout
        while True:
            try:
                self.client.sync(request.app, revision=request.revision, dry_run=request.dry_run)
                return
            except ArgoCDError as exc:
                if exc.status != 400 or "in progress" not in str(exc) or self._timed_out(deadline):
                    raise
            self._sleep(self.poll_interval)

    def _operation(
        self, request: SyncRequest, before: Operation | None, deadline: float
    ) -> Operation | None:
        """The operation this request started, once finished (None at the timeout)."""
        while True:
            operation = self.client.get(request.app).operation
            if (
                operation is not None
                and operation.finished
                and operation.dry_run == request.dry_run
                and operation.revision == request.revision
                and (before is None or operation.started_at != before.started_at)
            ):
                return operation
            if self._timed_out(deadline):
                return None
            self._sleep(self.poll_interval)

    def _settle(self, app: str, at: Callable[[str | None], bool], deadline: float) -> AppStatus:
        """Wait for Synced at the revision and Healthy, or Degraded, or the timeout."""
        while True:
            status = self.client.get(app)
            if status.settled(at) or (at(status.sync_revision) and status.health == "Degraded"):
                return status
            if self._timed_out(deadline):
                return status
            self._sleep(self.poll_interval)

    def _judge(
        self,
        status: AppStatus,
        at: Callable[[str | None], bool],
        events: _Events,
        started: float,
        timed_out: bool,
    ) -> RunResult:
        where = f"sync {status.sync_status} at {str(status.sync_revision)[:10]}"
        detail = f"{where}, health {status.health}" + (
            f": {status.health_message}" if status.health_message else ""
        )
        if status.health == "Degraded":
            events.add("argocd_health", "status", EventStatus.FAILED, detail)
            return events.result(RunStatus.FAILED, started, self._clock())
        if status.settled(at):
            events.add("argocd_health", "status", EventStatus.OK, detail)
            return events.result(RunStatus.SUCCESSFUL, started, self._clock())
        events.add("argocd_health", "status", EventStatus.SKIPPED, f"not settled: {detail}")
        return events.result(
            RunStatus.TIMEOUT if timed_out else RunStatus.FAILED, started, self._clock()
        )

    def _timed_out(self, deadline: float) -> bool:
        return self._clock() >= deadline


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
