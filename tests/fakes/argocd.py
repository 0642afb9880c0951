"""A local Argo CD for tests: the REST calls Terry's client makes (application get and sync),
with the payload shapes, status codes and gRPC-gateway error bodies of Argo CD's API
(``{"error", "code", "message"}``: 401 code 16, 404 code 5, 400 code 9 for "another
operation is already in progress"), backed by a real git repository and a small pretend
cluster.

Each application points at a directory of manifests in the repository and tracks
``targetRevision`` (main). A sync reads the manifests at the requested revision with git,
takes ``sync_seconds`` as a Running operation, reports per-resource results (``configured``,
``unchanged``, ``created``; `` (dry run)`` when dry), and, unless it is a dry run, makes
them the live state. Health follows the live state the way Argo CD's health checks read a
Deployment: ``Progressing`` for ``progress_seconds`` after a change, then ``Healthy``, or
``Degraded`` when it asks for more replicas than the cluster has room for (``capacity``)
or an image that cannot be pulled (a tag ending in ``:broken``). ``status.sync`` compares
the live state with the manifests at main's head, as Argo CD compares with the target.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.local_server import LocalServer

__all__ = ["FakeArgoCD"]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _key(doc: dict[str, Any]) -> tuple[str, str, str]:
    meta = doc.get("metadata") or {}
    return (str(doc.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name")))


@dataclass
class _App:
    name: str
    path: str
    namespace: str
    live: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    changed_at: float = 0.0
    operation: dict[str, Any] | None = None  # the Application's pending "operation"
    op_state: dict[str, Any] | None = None  # status.operationState
    op_started: float = 0.0


class FakeArgoCD(LocalServer):
    label = "fake Argo CD"

    def __init__(self, repo: Path, *, token: str = "argocd-test-token") -> None:
        super().__init__()
        self.repo = repo
        self.token = token
        self.capacity = 10
        self.sync_seconds = 0.2
        self.progress_seconds = 0.3
        self.apps: dict[str, _App] = {}
        self.requests: list[dict[str, Any]] = []
        self._failures: list[int] = []
        self._lock = threading.RLock()

    # -- test controls ----------------------------------------------------------------------
    def add_app(self, name: str, path: str, *, namespace: str = "shop") -> None:
        """An application already synced to main's head and settled."""
        with self._lock:
            app = _App(name, path, namespace)
            head = self._git("rev-parse", "main")
            app.live = {_key(d): d for d in self._manifests(head, path)}
            app.changed_at = time.monotonic() - self.progress_seconds
            self.apps[name] = app

    def fail_next(self, count: int, *, status: int = 503) -> None:
        with self._lock:
            self._failures = [status] * count

    def live(self, app: str, kind: str, name: str) -> dict[str, Any]:
        with self._lock:
            a = self.apps[app]
            return next(d for k, d in a.live.items() if k[0] == kind and k[2] == name)

    def syncs(self, app: str) -> list[dict[str, Any]]:
        """The sync requests received for ``app``, oldest first."""
        return [r["body"] for r in self.requests if r["path"].endswith(f"/{app}/sync")]

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
    def _advance(self, app: _App) -> None:
        """Finish a Running operation once its time is up (what the controller does)."""
        state = app.op_state
        if state is None or state["phase"] != "Running":
            return
        if time.monotonic() - app.op_started < self.sync_seconds:
            return
        sync = state["operation"]["sync"]
        revision, dry = sync["revision"], sync.get("dryRun", False)
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
            app.operation = None
            return
        except yaml.YAMLError as exc:
            state.update(
                phase="Failed",
                message=f"ComparisonError: failed to unmarshal manifests: {exc}",
                finishedAt=_now(),
            )
            app.operation = None
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
            app.live = {_key(d): d for d in desired}
            app.changed_at = time.monotonic()
        state.update(
            phase="Succeeded",
            message="successfully synced (all tasks run)",
            finishedAt=_now(),
            syncResult={"revision": resolved, "resources": results},
        )
        app.operation = None

    def _health(self, app: _App) -> dict[str, str]:
        if not app.live:
            return {"status": "Missing", "message": ""}
        settling = time.monotonic() - app.changed_at < self.progress_seconds
        for (kind, _ns, name), doc in sorted(app.live.items()):
            if kind != "Deployment":
                continue
            spec = doc.get("spec") or {}
            containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
            if settling:
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
                return {
                    "status": "Degraded",
                    "message": f'Deployment "{name}": ImagePullBackOff',
                }
        return {"status": "Healthy", "message": ""}

    def _application(self, app: _App) -> dict[str, Any]:
        self._advance(app)
        head = self._git("rev-parse", "main")
        target = {_key(d): d for d in self._manifests(head, app.path)}
        status: dict[str, Any] = {
            "sync": {
                "status": "Synced" if target == app.live else "OutOfSync",
                "revision": head,
                "comparedTo": {
                    "source": {
                        "repoURL": str(self.repo),
                        "path": app.path,
                        "targetRevision": "main",
                    },
                    "destination": {
                        "server": "https://kubernetes.default.svc",
                        "namespace": app.namespace,
                    },
                },
            },
            "health": self._health(app),
            "resources": [
                {
                    "kind": k,
                    "namespace": ns or app.namespace,
                    "name": n,
                    "status": "Synced" if target.get((k, ns, n)) == d else "OutOfSync",
                }
                for (k, ns, n), d in sorted(app.live.items())
            ],
            "reconciledAt": _now(),
        }
        if app.op_state is not None:
            status["operationState"] = app.op_state
        body: dict[str, Any] = {
            "metadata": {"name": app.name, "namespace": "argocd"},
            "spec": {
                "project": "default",
                "source": {"repoURL": str(self.repo), "path": app.path, "targetRevision": "main"},
                "destination": {
                    "server": "https://kubernetes.default.svc",
                    "namespace": app.namespace,
                },
            },
            "status": status,
        }
        if app.operation is not None:
            body["operation"] = app.operation
        return body

    # -- the API ----------------------------------------------------------------------------
    @staticmethod
    def _error(status: int, code: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message, "code": code, "message": message}, status)

    def _gate(self, request: Request, body: Any) -> JSONResponse | None:
        self.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
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
            return JSONResponse(self._application(app))

    async def _sync(self, request: Request) -> JSONResponse:
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
            self._advance(app)
            if app.op_state is not None and app.op_state["phase"] == "Running":
                return self._error(400, 9, "another operation is already in progress")
            operation = {
                "sync": {
                    "revision": body.get("revision") or "main",
                    "dryRun": bool(body.get("dryRun", False)),
                    "prune": bool(body.get("prune", False)),
                    "syncStrategy": {"hook": {}},
                },
                "initiatedBy": {"username": "terry"},
            }
            app.operation = operation
            app.op_state = {
                "operation": operation,
                "phase": "Running",
                "message": "one or more tasks are running",
                "startedAt": _now(),
            }
            app.op_started = time.monotonic()
            return JSONResponse(self._application(app))

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/v1/applications/{name}", self._get, methods=["GET"]),
                Route("/api/v1/applications/{name}/sync", self._sync, methods=["POST"]),
            ]
        )
