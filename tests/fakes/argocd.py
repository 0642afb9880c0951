"""A local Argo CD for tests: the REST calls Terry's client makes (application get and sync),
with the payload shapes, status codes and gRPC-gateway error bodies of Argo CD's API
(``{"error", "code", "message"}``: 401 code 16, 404 code 5, 400 code 9 FailedPrecondition
for "another operation is already in progress" and for a pinned sync of an auto-synced
app), backed by a real git repository and a small pretend cluster.

Each application points at a directory of manifests in the repository and tracks
``targetRevision`` (main). What it models is what Argo CD's own source does:

- A sync request does what ``SetAppOperation`` does (util/argo): it sets the Application's
  ``operation`` and clears ``status.operationState``, and is refused while an ``operation``
  is set. The controller picks the operation up (``operationState`` Running, ``startedAt``),
  runs it for ``sync_seconds`` (per-resource results: ``configured``, ``unchanged``,
  ``created``; `` (dry run)`` when dry), then writes ``finishedAt`` and the result and
  clears ``operation``; unless it was a dry run the manifests become the live state.
- The status lags the operation. ``status.sync``, ``status.health`` and ``status.resources``
  are what the controller last wrote; it freezes them while an operation is requested or
  running, and after a (non-dry) operation it asks for a refresh that runs ``refresh_lag``
  seconds after ``finishedAt``. Until then the status describes the world before the
  operation and ``reconciledAt`` is earlier than ``finishedAt``. ``GET ?refresh=normal``
  reconciles at once (the API server answers only once the refresh it asked for is done).
  Otherwise the status follows the cluster (health moves on from Progressing), compared
  with the revision the last reconcile resolved ``targetRevision`` to.
- ``DELETE .../operation`` does what ``TerminateOperation`` does: 400 (code 3) "Unable to
  terminate operation. No operation is in progress" without one, else the phase becomes
  ``Terminating`` and the controller ends it ``Failed``, "Operation terminated", with
  nothing applied.
- Timestamps are ``metav1.Time``: RFC 3339 in whole seconds.
- Auto-sync (``spec.syncPolicy.automated``): a non-dry sync to a revision other than
  ``targetRevision`` is refused (400, code 9, "Cannot sync to <rev>: auto-sync currently
  set to <target>"); dry runs are allowed. A reconcile that finds the app OutOfSync starts a
  sync of the resolved revision itself (``initiatedBy.automated``), once per revision.
- Health per resource, aggregated as Argo CD does (the worst of Healthy, Suspended,
  Progressing, Missing, Degraded, Unknown): a Deployment is Suspended when ``spec.paused``,
  Progressing for ``progress_seconds`` after a change, Degraded when it asks for more
  replicas than the cluster has room for (``capacity``), for an image that cannot be pulled
  (a tag ending in ``:broken``) or while it crash-loops (``crash``); a resource the
  manifests name that the cluster lacks is Missing.

Faults a test can arrange: ``fail_next`` (5xx answers), ``gateway_timeout_on_sync`` (a
proxy's 504 for a sync the server did accept), ``hang`` (the next operation runs until it
is terminated: a hook or a sync wave that never ends), ``crash``, ``evict`` (something deletes a
resource after the next sync), ``restart`` (a rollout restart), ``pin`` (someone pinned the
app to an older revision and synced it), and ``on_refresh`` (called when a refresh is
asked for, before it runs).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from tests.fakes.local_server import LocalServer

__all__ = ["FakeArgoCD"]

# Argo CD's order of health, most healthy first (gitops-engine pkg/health).
_HEALTH_ORDER = ("Healthy", "Suspended", "Progressing", "Missing", "Degraded", "Unknown")
_PROXY_504 = (
    "<html><head><title>504 Gateway Time-out</title></head><body><center>"
    "<h1>504 Gateway Time-out</h1></center><hr><center>nginx</center></body></html>\n"
)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(doc: dict[str, Any]) -> tuple[str, str, str]:
    meta = doc.get("metadata") or {}
    return (str(doc.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name")))


@dataclass
class _App:
    name: str
    path: str
    namespace: str
    target_revision: str = "main"
    automated: bool = False
    live: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    changed_at: float = 0.0
    operation: dict[str, Any] | None = None  # the Application's requested "operation"
    op_state: dict[str, Any] | None = None  # status.operationState
    op_started: float = 0.0  # when the operation was set
    hanging: bool = False  # the operation runs until it is terminated
    resolved: str = ""  # the revision the last reconcile compared with
    reconciled_at: str = ""
    shown: dict[str, Any] = field(default_factory=dict)  # status as the controller wrote it
    refresh_at: float | None = None  # when the refresh asked for after an operation runs
    crashing: dict[str, str] = field(default_factory=dict)  # Deployment name -> why
    evicting: set[tuple[str, str]] = field(default_factory=set)  # (kind, name)


class FakeArgoCD(LocalServer):
    label = "fake Argo CD"

    def __init__(self, repo: Path, *, token: str = "argocd-test-token") -> None:
        super().__init__()
        self.repo = repo
        self.token = token
        self.capacity = 10
        self.sync_seconds = 0.2
        self.progress_seconds = 0.3
        self.refresh_lag = 0.3
        self.apps: dict[str, _App] = {}
        self.requests: list[dict[str, Any]] = []
        self.started: list[dict[str, Any]] = []  # every operation set, by a request or auto-sync
        self.on_refresh: Callable[[str], None] | None = None
        self._failures: list[int] = []
        self._sync_timeouts = 0
        self._hangs = 0
        self._lock = threading.RLock()

    # -- test controls ----------------------------------------------------------------------
    def add_app(
        self,
        name: str,
        path: str,
        *,
        namespace: str = "shop",
        automated: bool = False,
        target_revision: str = "main",
    ) -> None:
        """An application already synced to its target's head and settled."""
        with self._lock:
            app = _App(name, path, namespace, target_revision, automated)
            head = self._git("rev-parse", f"{target_revision}^{{commit}}")
            app.live = {_key(d): d for d in self._manifests(head, path)}
            app.changed_at = time.monotonic() - self.progress_seconds
            self.apps[name] = app
            self._reconcile(app)

    def fail_next(self, count: int, *, status: int = 503) -> None:
        with self._lock:
            self._failures = [status] * count

    def gateway_timeout_on_sync(self, count: int = 1) -> None:
        """The next ``count`` sync requests are carried out, but the proxy in front of Argo
        CD gives up waiting and answers 504 with its own page."""
        with self._lock:
            self._sync_timeouts = count

    def hang(self, count: int = 1) -> None:
        """The next ``count`` operations run until they are terminated."""
        with self._lock:
            self._hangs = count

    def crash(self, app: str, deployment: str, message: str | None = None) -> None:
        """The Deployment crash-loops (Degraded) until a sync changes it."""
        with self._lock:
            why = message or f'Deployment "{deployment}" exceeded its progress deadline'
            self.apps[app].crashing[deployment] = why

    def evict(self, app: str, kind: str, name: str) -> None:
        """Something outside Argo CD deletes the resource right after the next sync."""
        with self._lock:
            self.apps[app].evicting.add((kind, name))

    def restart(self, app: str, seconds: float | None = None) -> None:
        """A rollout restart: the Deployments are Progressing again for a while."""
        with self._lock:
            wait = self.progress_seconds if seconds is None else seconds
            self.apps[app].changed_at = time.monotonic() - self.progress_seconds + wait

    def pin(self, app: str, revision: str) -> None:
        """Someone ran ``argocd app set --revision <revision>`` and synced it."""
        with self._lock:
            a = self.apps[app]
            a.target_revision = revision
            a.live = {_key(d): d for d in self._manifests(revision, a.path)}
            a.changed_at = time.monotonic() - self.progress_seconds
            self._reconcile(a)

    def live(self, app: str, kind: str, name: str) -> dict[str, Any]:
        with self._lock:
            a = self.apps[app]
            return next(d for k, d in a.live.items() if k[0] == kind and k[2] == name)

    def health(self, app: str) -> str:
        """The health the cluster has now (what the next reconcile will report)."""
        with self._lock:
            a = self.apps[app]
            return self._compare(a)["health"]["status"]

    def syncs(self, app: str) -> list[dict[str, Any]]:
        """The sync requests received for ``app``, oldest first."""
        return [r["body"] for r in self.requests if r["path"].endswith(f"/{app}/sync")]

    def operations(self, app: str) -> list[dict[str, Any]]:
        """The operations set on ``app`` (by a sync request or by auto-sync), oldest first."""
        return [o for o in self.started if o["app"] == app]

    # -- git --------------------------------------------------------------------------------
    def _git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(self.repo), *args], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    def _manifests(self, revision: str, path: str) -> list[dict[str, Any]]:
        names = self._git("ls-tree", "-r", "--name-only", revision, "--", path).splitlines()
        docs: list[dict[str, Any]] = []
        for name in sorted(n for n in names if n.endswith((".yaml", ".yml"))):
            text = subprocess.run(
                ["git", "-C", str(self.repo), "show", f"{revision}:{name}"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            docs.extend(d for d in yaml.safe_load_all(text) if isinstance(d, dict))
        return docs

    # -- the controller ---------------------------------------------------------------------
    def _tick(self, app: _App) -> None:
        """What the controller has done by now: pick up a requested operation, finish a
        running one, run a refresh that was asked for."""
        now = time.monotonic()
        if app.operation is not None and app.op_state is None:
            app.op_state = {
                "operation": app.operation,
                "phase": "Running",
                "message": "one or more tasks are running",
                "startedAt": _now(),
            }
        if app.op_state is not None and app.op_state["phase"] == "Terminating":
            app.op_state.update(phase="Failed", message="Operation terminated", finishedAt=_now())
            app.operation, app.hanging = None, False
        elif (
            app.operation is not None
            and not app.hanging
            and now - app.op_started >= self.sync_seconds
        ):
            self._finish(app)
        if app.refresh_at is not None and time.monotonic() >= app.refresh_at:
            self._reconcile(app)

    def _finish(self, app: _App) -> None:
        state = app.op_state
        assert state is not None
        sync = state["operation"]["sync"]
        revision, dry = sync["revision"], sync.get("dryRun", False)
        if not dry:  # the controller refreshes the app once the operation is done
            app.refresh_at = time.monotonic() + self.refresh_lag
        app.operation = None
        try:
            resolved = self._git("rev-parse", "--verify", f"{revision}^{{commit}}")
            desired = self._manifests(resolved, app.path)
        except subprocess.CalledProcessError:
            state.update(
                phase="Error",
                message=f"rpc error: code = Unknown desc = unable to resolve '{revision}' "
                "to a commit SHA",
                finishedAt=_now(),
            )
            return
        except yaml.YAMLError as exc:
            state.update(
                phase="Failed",
                message=f"ComparisonError: failed to unmarshal manifests: {exc}",
                finishedAt=_now(),
            )
            return
        results = []
        for doc in desired:
            key = _key(doc)
            word = (
                "created"
                if key not in app.live
                else ("unchanged" if app.live[key] == doc else "configured")
            )
            group = (doc.get("apiVersion") or "").rpartition("/")[0]
            kind = str(doc.get("kind"))
            results.append(
                {
                    "group": group,
                    "version": str(doc.get("apiVersion", "")).rpartition("/")[2],
                    "kind": kind,
                    "namespace": key[1] or app.namespace,
                    "name": key[2],
                    "status": "Synced",
                    "message": f"{kind.lower()}{'.' + group if group else ''}/{key[2]} {word}"
                    + (" (dry run)" if dry else ""),
                    "hookPhase": "Running" if not dry else "",
                    "syncPhase": "Sync",
                }
            )
        if not dry:
            live = {_key(d): d for d in desired}
            for (kind, _ns, name), doc in live.items():
                if kind == "Deployment" and app.live.get(_key(doc)) != doc:
                    app.crashing.pop(name, None)
            for kind, name in app.evicting:
                live = {k: d for k, d in live.items() if (k[0], k[2]) != (kind, name)}
            app.evicting.clear()
            app.live = live
            app.changed_at = time.monotonic()
        state.update(
            phase="Succeeded",
            message="successfully synced (all tasks run)",
            finishedAt=_now(),
            syncResult={
                "revision": resolved,
                "resources": results,
                "source": self._source(app),
            },
        )

    def _reconcile(self, app: _App) -> None:
        """A full reconcile (CompareWithLatest): resolve targetRevision, compare, write the
        status and ``reconciledAt``, and auto-sync when the app asks for it."""
        # A revision that does not resolve: it keeps comparing with what it resolved last.
        with contextlib.suppress(subprocess.CalledProcessError):
            app.resolved = self._git("rev-parse", "--verify", f"{app.target_revision}^{{commit}}")
        app.reconciled_at = _now()
        app.refresh_at = None
        app.shown = self._compare(app)
        if app.automated and app.operation is None and app.shown["sync"] == "OutOfSync":
            last = ((app.op_state or {}).get("syncResult") or {}).get("revision")
            if last != app.resolved:  # one attempt per revision
                self._set_operation(app, app.resolved, dry_run=False, automated=True)

    def _compare(self, app: _App) -> dict[str, Any]:
        try:
            target = {_key(d): d for d in self._manifests(app.resolved, app.path)}
        except (subprocess.CalledProcessError, yaml.YAMLError):
            return {
                "sync": "Unknown",
                "health": {"status": "Unknown", "message": "ComparisonError"},
                "resources": [],
            }
        healths = {k: self._resource_health(app, k, d) for k, d in app.live.items()}
        for key in target:
            if key not in app.live:
                healths[key] = {"status": "Missing", "message": ""}
        worst = {"status": "Healthy", "message": ""}
        for key in sorted(healths):
            found = healths[key]
            if _HEALTH_ORDER.index(found["status"]) > _HEALTH_ORDER.index(worst["status"]):
                worst = found
        resources = [
            {
                "kind": k,
                "namespace": ns or app.namespace,
                "name": n,
                "status": "Synced"
                if target.get((k, ns, n)) == app.live.get((k, ns, n))
                else "OutOfSync",
                "health": {"status": healths[(k, ns, n)]["status"]},
            }
            for (k, ns, n) in sorted(set(target) | set(app.live))
        ]
        return {
            "sync": "Synced" if target == app.live else "OutOfSync",
            "health": worst if app.live or target else {"status": "Missing", "message": ""},
            "resources": resources,
        }

    def _resource_health(
        self, app: _App, key: tuple[str, str, str], doc: dict[str, Any]
    ) -> dict[str, str]:
        kind, _ns, name = key
        if kind != "Deployment":
            return {"status": "Healthy", "message": ""}
        spec = doc.get("spec") or {}
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
        if spec.get("paused"):
            return {"status": "Suspended", "message": "Deployment is paused"}
        if time.monotonic() - app.changed_at < self.progress_seconds:
            return {
                "status": "Progressing",
                "message": f'Waiting for rollout to finish: deployment "{name}" is updating',
            }
        if int(spec.get("replicas", 1)) > self.capacity:
            return {
                "status": "Degraded",
                "message": f'Deployment "{name}" exceeded its progress deadline',
            }
        if any(str(c.get("image", "")).endswith(":broken") for c in containers):
            return {"status": "Degraded", "message": f'Deployment "{name}": ImagePullBackOff'}
        if name in app.crashing:
            return {"status": "Degraded", "message": app.crashing[name]}
        return {"status": "Healthy", "message": ""}

    def _set_operation(
        self, app: _App, revision: str, *, dry_run: bool, prune: bool = False, automated: bool
    ) -> None:
        """What SetAppOperation does: the operation is set, the last operation's state is
        cleared."""
        initiator: dict[str, Any] = {"automated": True} if automated else {"username": "terry"}
        app.operation = {
            "sync": {
                "revision": revision,
                "dryRun": dry_run,
                "prune": prune,
                "syncStrategy": {"hook": {}},
                "source": self._source(app),
            },
            "initiatedBy": initiator,
        }
        app.op_state = None
        app.op_started = time.monotonic()
        app.hanging, self._hangs = self._hangs > 0, max(self._hangs - 1, 0)
        self.started.append(
            {"app": app.name, "revision": revision, "dryRun": dry_run, "automated": automated}
        )

    def _source(self, app: _App) -> dict[str, Any]:
        return {"repoURL": str(self.repo), "path": app.path, "targetRevision": app.target_revision}

    def _application(self, app: _App) -> dict[str, Any]:
        """The Application as the API returns it (no controller work happens here)."""
        if app.operation is None and app.refresh_at is None:
            # Nothing pending: the controller keeps up with the cluster (resource events),
            # still comparing with the revision it resolved last; reconciledAt stays.
            app.shown = self._compare(app)
        shown = app.shown
        status: dict[str, Any] = {
            "sync": {
                "status": shown["sync"],
                "revision": app.resolved,
                "comparedTo": {
                    "source": self._source(app),
                    "destination": {
                        "server": "https://kubernetes.default.svc",
                        "namespace": app.namespace,
                    },
                },
            },
            "health": shown["health"],
            "resources": shown["resources"],
            "reconciledAt": app.reconciled_at,
            "sourceType": "Directory",
        }
        if app.op_state is not None:
            status["operationState"] = app.op_state
        spec: dict[str, Any] = {
            "project": "default",
            "source": self._source(app),
            "destination": {"server": "https://kubernetes.default.svc", "namespace": app.namespace},
        }
        if app.automated:
            spec["syncPolicy"] = {"automated": {"prune": False, "selfHeal": False}}
        body: dict[str, Any] = {
            "metadata": {"name": app.name, "namespace": "argocd"},
            "spec": spec,
            "status": status,
        }
        if app.operation is not None:
            body["operation"] = app.operation
        return json.loads(json.dumps(body))  # a copy: the answer does not change later

    # -- the API ----------------------------------------------------------------------------
    @staticmethod
    def _error(status: int, code: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message, "code": code, "message": message}, status)

    def _gate(self, request: Request, body: Any) -> JSONResponse | None:
        self.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "body": body,
                "authorization": request.headers.get("authorization"),
            }
        )
        if self._failures:
            status = self._failures.pop(0)
            return self._error(status, 14, "upstream connect error or disconnect/reset")
        auth = request.headers.get("authorization")
        if not auth:
            return self._error(401, 16, "no session information")
        if auth != f"Bearer {self.token}":
            return self._error(401, 16, "invalid session: token signature is invalid")
        return None

    def _find(self, name: str) -> _App | JSONResponse:
        app = self.apps.get(name)
        if app is None:
            message = f'applications.argoproj.io "{name}" not found'
            return self._error(404, 5, message)
        return app

    async def _get(self, request: Request) -> JSONResponse:
        with self._lock:
            if (refused := self._gate(request, None)) is not None:
                return refused
            app = self._find(request.path_params["name"])
            if isinstance(app, JSONResponse):
                return app
            self._tick(app)
            if request.query_params.get("refresh") in ("normal", "hard"):
                if self.on_refresh is not None:
                    self.on_refresh(app.name)
                self._reconcile(app)
            return JSONResponse(self._application(app))

    async def _sync(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return self._error(400, 3, "invalid character in request body")
        with self._lock:
            if (refused := self._gate(request, body)) is not None:
                return refused
            app = self._find(request.path_params["name"])
            if isinstance(app, JSONResponse):
                return app
            self._tick(app)
            revision = str(body.get("revision") or "")
            dry_run = bool(body.get("dryRun", False))
            target = app.target_revision or "HEAD"
            if revision and revision != target and app.automated and not dry_run:
                return self._error(
                    400,
                    9,
                    f"Cannot sync to {revision}: auto-sync currently set to {app.target_revision}",
                )
            if app.operation is not None:
                return self._error(
                    400,
                    9,
                    "error setting app operation: rpc error: code = FailedPrecondition desc = "
                    "another operation is already in progress",
                )
            self._set_operation(
                app,
                revision or app.resolved,
                dry_run=dry_run,
                prune=bool(body.get("prune", False)),
                automated=False,
            )
            if self._sync_timeouts:
                self._sync_timeouts -= 1
                return HTMLResponse(_PROXY_504, 504)
            return JSONResponse(self._application(app))

    async def _terminate(self, request: Request) -> JSONResponse:
        with self._lock:
            if (refused := self._gate(request, None)) is not None:
                return refused
            app = self._find(request.path_params["name"])
            if isinstance(app, JSONResponse):
                return app
            self._tick(app)
            if app.operation is None or app.op_state is None:
                return self._error(
                    400, 3, "Unable to terminate operation. No operation is in progress"
                )
            app.op_state["phase"] = "Terminating"
            return JSONResponse({})

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/v1/applications/{name}", self._get, methods=["GET"]),
                Route("/api/v1/applications/{name}/sync", self._sync, methods=["POST"]),
                Route("/api/v1/applications/{name}/operation", self._terminate, methods=["DELETE"]),
            ]
        )
