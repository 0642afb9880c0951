"""A local GitHub for tests: the REST endpoints Terry's PyGithub client uses, with the
status codes, payload shapes, ``Link`` pagination, rate-limit headers and error bodies that
GitHub's REST documentation describes, backed by a real bare git repository (branch heads
are read from it; merges are real merge commits in it).

Issues live next to pull requests and share their numbers; the issue endpoints list and
show both (a pull request as an issue with a ``pull_request`` key), as GitHub does.

Test controls play the people (``review``, ``comment``, ``close_by``, ``push_commit``,
``open_issue_by``, ``close_issue_by``, ``team_member``: an organization team's active or
pending member, as ``GET /orgs/{org}/teams/{slug}/memberships/{user}`` tells) and the
outages (``fail_next``, ``team_error``: a team the token may not read); ``webhook``
builds a delivery signed the way GitHub signs.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.local_server import LocalServer

__all__ = ["FakeGitHub"]

DOCS = "https://docs.github.com/rest"
# GitHub's limits on an issue's (or a pull request's) title and body, in characters.
TITLE_LIMIT = 256
BODY_LIMIT = 65_536


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _user(login: str) -> dict[str, Any]:
    digest = int(hashlib.sha1(login.encode()).hexdigest()[:6], 16)
    kind = "Bot" if login.endswith("[bot]") else "User"
    return {"login": login, "id": digest, "type": kind, "site_admin": False}


class FakeGitHub(LocalServer):
    label = "fake GitHub"

    def __init__(
        self,
        bare: Path,
        *,
        owner: str = "acme",
        name: str = "gitops",
        token: str = "ghp_test",
        bot: str = "terry-bot",
    ) -> None:
        super().__init__()
        self.bare = bare
        self.owner, self.name, self.token, self.bot = owner, name, token, bot
        self.pulls: dict[int, dict[str, Any]] = {}
        self.issues: dict[int, dict[str, Any]] = {}  # issues that are not pull requests
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.reviews: dict[int, list[dict[str, Any]]] = {}
        self.statuses: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[dict[str, Any]] = []
        self._ids = 1000
        self._failures: list[int] = []
        self._rate_limited = 0
        self._reset_in = 1
        self._stalls: list[float] = []
        self._merge_refusals: list[tuple[int, str]] = []
        self._lock = threading.RLock()
        # A GitHub App (``enable_app``): JWTs it signs get installation tokens.
        self.app: dict[str, Any] | None = None
        self.installation_tokens: list[str] = []
        # Teams (``org/slug``) and their members' membership state (active or pending).
        self.teams: dict[str, dict[str, str]] = {}
        # Teams whose membership endpoint answers an error instead (``team_error``).
        self.team_errors: dict[str, tuple[int, str]] = {}

    # -- test controls ----------------------------------------------------------------------
    def enable_app(self, app_id: int, public_key_pem: str, installation_id: int, slug: str) -> None:
        """Accept a GitHub App: RS256 JWTs it signs (``iss`` = its id) may read ``GET /app``
        and create installation tokens, which then work like a token; it acts as
        ``<slug>[bot]``."""
        with self._lock:
            self.app = {
                "id": app_id,
                "key": public_key_pem,
                "installation": installation_id,
                "slug": slug,
            }
            self.bot = f"{slug}[bot]"

    def fail_next(self, count: int, *, status: int = 502) -> None:
        """The next ``count`` API requests answer ``status`` (0: stop failing)."""
        with self._lock:
            self._failures = [status] * count

    def refuse_merges(
        self,
        count: int,
        *,
        status: int = 405,
        message: str = "Base branch was modified. Review and try the merge again.",
    ) -> None:
        """The next ``count`` merge requests are refused as GitHub refuses a merge it cannot
        make now (405 with its message: the base moved under it, a branch protection), every
        other request answered as usual."""
        with self._lock:
            self._merge_refusals = [(status, message)] * count

    def rate_limit_next(self, count: int, *, reset_in: int = 1) -> None:
        """The next ``count`` requests hit the primary rate limit: 403, remaining 0, and a
        reset ``reset_in`` seconds ahead (GitHub's documented shape)."""
        with self._lock:
            self._rate_limited = count
            self._reset_in = reset_in

    def stall_next(self, count: int, seconds: float) -> None:
        """The next ``count`` requests answer only after ``seconds`` (client timeouts)."""
        with self._lock:
            self._stalls = [seconds] * count

    def team_member(self, team: str, user: str, state: str = "active") -> None:
        """``user`` joins ``team`` (``org/slug``); ``pending``: invited, not yet accepted."""
        with self._lock:
            self.teams.setdefault(team, {})[user] = state

    def team_error(
        self, team: str, status: int = 403, message: str = "Resource not accessible by integration"
    ) -> None:
        """Asking about ``team``'s members answers ``status`` (GitHub's 403 for a token
        without the organization's members permission); ``status`` 0: answer again."""
        with self._lock:
            if status:
                self.team_errors[team] = (status, message)
            else:
                self.team_errors.pop(team, None)

    def merge_by(self, number: int, user: str) -> str:
        """A person presses the merge button: a real merge commit on the base branch."""
        with self._lock:
            pull = self.pulls[number]
            merged = self._do_merge(pull, {}, user)
            if isinstance(merged, Response):
                raise RuntimeError(f"merge_by #{number} failed: {merged.body!r}")
            return merged

    def review(self, number: int, user: str, state: str, *, commit_id: str, body: str = "") -> None:
        with self._lock:
            self.reviews.setdefault(number, []).append(
                {
                    "id": self._next_id(),
                    "user": _user(user),
                    "body": body,
                    "state": state,
                    "commit_id": commit_id,
                    "submitted_at": _now(),
                }
            )

    def comment(self, number: int, user: str, body: str) -> dict[str, Any]:
        with self._lock:
            return self._add_comment(number, user, body)

    def close_by(self, number: int, user: str) -> None:
        with self._lock:
            pull = self.pulls[number]
            pull.update(state="closed", closed_at=_now(), updated_at=_now())

    def open_issue_by(
        self, user: str, title: str, body: str, labels: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """Someone opens an issue on the web."""
        with self._lock:
            return self._new_issue(user, title, body, list(labels))

    def close_issue_by(self, number: int, user: str) -> None:
        with self._lock:
            issue = self.issues[number]
            issue.update(
                state="closed",
                state_reason="completed",
                closed_at=_now(),
                closed_by=_user(user),
                updated_at=_now(),
            )

    def push_commit(self, branch: str, files: dict[str, str], message: str) -> str:
        """Someone pushes a commit to ``branch`` of the bare repository."""
        parent = self._git("rev-parse", f"refs/heads/{branch}")
        tree = self._tree_with(parent, files)
        commit = self._git("commit-tree", tree, "-p", parent, "-m", message, env=_ident("mallory"))
        self._git("update-ref", f"refs/heads/{branch}", commit, parent)
        return commit

    def webhook(
        self, event: str, payload: dict[str, Any], secret: str
    ) -> tuple[dict[str, str], bytes]:
        body = json.dumps(payload).encode()
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-GitHub-Hook-ID": "1",
            "X-Hub-Signature-256": f"sha256={digest}",
            "User-Agent": "GitHub-Hookshot/terry-test",
            "Content-Type": "application/json",
        }
        return headers, body

    # -- git --------------------------------------------------------------------------------
    def _git(self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            ["git", "--git-dir", str(self.bare), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
        )
        if done.returncode != 0:
            raise RuntimeError(f"git {args[0]}: {done.stderr.strip()}")
        return done.stdout.strip()

    def _tree_with(self, parent: str, files: dict[str, str]) -> str:
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:
            env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
            self._git("read-tree", parent, env=env)
            for path, content in files.items():
                blob = self._git("hash-object", "-w", "--stdin", stdin=content)
                self._git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
            return self._git("write-tree", env=env)

    def _head(self, branch: str) -> str | None:
        try:
            return self._git("rev-parse", "--verify", f"refs/heads/{branch}")
        except RuntimeError:
            return None

    # -- the API ----------------------------------------------------------------------------
    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    @property
    def _repo_url(self) -> str:
        return f"{self.base_url}/repos/{self.owner}/{self.name}"

    def _repo_json(self) -> dict[str, Any]:
        return {
            "id": 4242,
            "name": self.name,
            "full_name": f"{self.owner}/{self.name}",
            "owner": _user(self.owner),
            "private": True,
            "url": self._repo_url,
            "html_url": f"https://github.example/{self.owner}/{self.name}",
            "default_branch": "main",
        }

    def _next_number(self) -> int:
        return max([*self.pulls, *self.issues, *self.comments, 0]) + 1

    def _label(self, name: str) -> dict[str, Any]:
        return {"id": self._next_id(), "name": name, "color": "ededed", "default": False}

    def _new_issue(
        self, user: str, title: str, body: str | None, labels: list[str]
    ) -> dict[str, Any]:
        number, issue_id = self._next_number(), self._next_id()
        url = f"{self._repo_url}/issues/{number}"
        self.issues[number] = {
            "id": issue_id,
            "node_id": f"I_{issue_id}",
            "url": url,
            "repository_url": self._repo_url,
            "labels_url": f"{url}/labels{{/name}}",
            "comments_url": f"{url}/comments",
            "events_url": f"{url}/events",
            "html_url": f"https://github.example/{self.owner}/{self.name}/issues/{number}",
            "number": number,
            "state": "open",
            "state_reason": None,
            "title": title,
            "body": body,
            "user": _user(user),
            "labels": [self._label(name) for name in dict.fromkeys(labels)],
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "locked": False,
            "active_lock_reason": None,
            "comments": 0,
            "created_at": _now(),
            "updated_at": _now(),
            "closed_at": None,
            "closed_by": None,
            "author_association": "MEMBER",
        }
        return self.issues[number]

    def _add_comment(self, number: int, user: str, body: str) -> dict[str, Any]:
        comment_id = self._next_id()
        comment = {
            "id": comment_id,
            "body": body,
            "user": _user(user),
            "created_at": _now(),
            "updated_at": _now(),
            "url": f"{self._repo_url}/issues/comments/{comment_id}",
            "html_url": f"https://github.example/{self.owner}/{self.name}/pull/{number}#c{comment_id}",
            "issue_url": f"{self._repo_url}/issues/{number}",
        }
        self.comments.setdefault(number, []).append(comment)
        return comment

    def _refresh(self, pull: dict[str, Any]) -> dict[str, Any]:
        if pull["state"] == "open":
            head = self._head(pull["head"]["ref"])
            if head:
                pull["head"]["sha"] = head
        return pull

    def _issue_json(self, pull: dict[str, Any]) -> dict[str, Any]:
        n = pull["number"]
        return {
            "id": pull["id"] + 1,
            "number": n,
            "title": pull["title"],
            "body": pull["body"],
            "state": pull["state"],
            "user": pull["user"],
            "labels": pull["labels"],
            "url": f"{self._repo_url}/issues/{n}",
            "html_url": pull["html_url"],
            "comments_url": f"{self._repo_url}/issues/{n}/comments",
            "comments": len(self.comments.get(n, [])),
            "created_at": pull["created_at"],
            "updated_at": pull["updated_at"],
            "closed_at": pull["closed_at"],
            "pull_request": {"url": pull["url"], "html_url": pull["html_url"]},
        }

    @staticmethod
    def _error(status: int, message: str, **extra: Any) -> JSONResponse:
        return JSONResponse(
            {"message": message, "documentation_url": DOCS, "status": str(status), **extra},
            status_code=status,
        )

    def _page(self, request: Request, items: list[dict[str, Any]]) -> Response:
        per_page = max(1, min(100, int(request.query_params.get("per_page", "30"))))
        page = max(1, int(request.query_params.get("page", "1")))
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        links = []
        base = str(request.url.remove_query_params("page"))

        def link(p: int, rel: str) -> str:
            sep = "&" if "?" in base else "?"
            return f'<{base}{sep}page={p}>; rel="{rel}"'

        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        headers = {"Link": ", ".join(links)} if links else {}
        return JSONResponse(chunk, headers=headers)

    def _app(self) -> Starlette:
        fake = self

        async def guard(request: Request, handler: Any) -> Response:
            body = (await request.body()).decode(errors="replace")
            fake.requests.append(
                {
                    "method": request.method,
                    "path": request.url.path,
                    "query": str(request.url.query),
                    "body": body,
                }
            )
            with fake._lock:
                stall = fake._stalls.pop(0) if fake._stalls else 0.0
            if stall:
                await asyncio.sleep(stall)
            with fake._lock:
                if fake._failures:
                    status = fake._failures.pop(0)
                    return fake._error(status, "Server Error" if status >= 500 else "Failure")
                if fake._rate_limited:
                    fake._rate_limited -= 1
                    reset = int(time.time()) + fake._reset_in
                    limited = fake._error(
                        403,
                        "API rate limit exceeded for user ID 1. If you reach out to GitHub "
                        "Support for help, please include the request ID.",
                    )
                    limited.headers.update(
                        {
                            "X-RateLimit-Limit": "5000",
                            "X-RateLimit-Remaining": "0",
                            "X-RateLimit-Used": "5000",
                            "X-RateLimit-Reset": str(reset),
                            "X-RateLimit-Resource": "core",
                        }
                    )
                    return limited
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if request.url.path.startswith("/app"):
                if scheme.lower() != "bearer" or not fake._jwt_ok(given):
                    return fake._error(401, "A JSON web token could not be decoded")
            elif scheme.lower() not in ("token", "bearer") or (
                given != fake.token and given not in fake.installation_tokens
            ):
                return fake._error(401, "Bad credentials")
            data = json.loads(body) if body else {}
            with fake._lock:
                response: Response = handler(request, data)
            response.headers["X-RateLimit-Limit"] = "5000"
            response.headers["X-RateLimit-Remaining"] = "4999"
            response.headers["X-RateLimit-Reset"] = str(int(time.time()) + 3600)
            response.headers["X-RateLimit-Resource"] = "core"
            response.headers["X-GitHub-Request-Id"] = uuid.uuid4().hex[:16].upper()
            return response

        def route(path: str, methods: list[str], handler: Any) -> Route:
            async def endpoint(request: Request) -> Response:
                return await guard(request, handler)

            return Route(path, endpoint, methods=methods)

        repo = "/repos/{owner}/{name}"
        return Starlette(
            routes=[
                route("/user", ["GET"], lambda r, d: JSONResponse(_user(fake.bot))),
                route("/app", ["GET"], fake._get_app),
                route("/app/installations/{iid:int}/access_tokens", ["POST"], fake._access_token),
                route(repo, ["GET"], fake._get_repo),
                route(repo + "/pulls", ["GET", "POST"], fake._pulls),
                route(repo + "/pulls/{n:int}", ["GET", "PATCH"], fake._pull),
                route(repo + "/pulls/{n:int}/merge", ["PUT"], fake._merge),
                route(repo + "/pulls/{n:int}/reviews", ["GET"], fake._reviews),
                route(repo + "/pulls/{n:int}/requested_reviewers", ["POST"], fake._reviewers),
                route(repo + "/issues", ["GET", "POST"], fake._issues),
                route(repo + "/issues/{n:int}", ["GET", "PATCH"], fake._issue),
                route(repo + "/issues/{n:int}/labels", ["POST"], fake._labels),
                route(repo + "/issues/{n:int}/comments", ["GET", "POST"], fake._comments),
                route(repo + "/commits/{sha}", ["GET"], fake._commit),
                route(repo + "/statuses/{sha}", ["POST"], fake._status),
                route(
                    "/orgs/{org}/teams/{slug}/memberships/{user}", ["GET"], fake._team_membership
                ),
            ]
        )

    def _jwt_ok(self, token: str) -> bool:
        if self.app is None:
            return False
        try:
            claims = jwt.decode(
                token,
                self.app["key"],
                algorithms=["RS256"],
                options={"require": ["exp", "iat", "iss"]},
                leeway=60,
            )
        except jwt.PyJWTError:
            return False
        return str(claims["iss"]) == str(self.app["id"])

    def _get_app(self, _request: Request, _data: Any) -> Response:
        assert self.app is not None
        return JSONResponse(
            {
                "id": self.app["id"],
                "slug": self.app["slug"],
                "name": self.app["slug"].title(),
                "owner": _user(self.owner),
                "html_url": f"https://github.example/apps/{self.app['slug']}",
                "permissions": {"pull_requests": "write", "contents": "write"},
                "events": ["pull_request", "pull_request_review", "issue_comment"],
            }
        )

    def _access_token(self, request: Request, _data: Any) -> Response:
        assert self.app is not None
        if request.path_params["iid"] != self.app["installation"]:
            return self._error(404, "Not Found")
        token = f"ghs_{uuid.uuid4().hex}"
        self.installation_tokens.append(token)
        expires = datetime.fromtimestamp(time.time() + 3600, UTC)
        return JSONResponse(
            {
                "token": token,
                "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "permissions": {"pull_requests": "write", "contents": "write"},
                "repository_selection": "selected",
            },
            status_code=201,
        )

    def _ours(self, request: Request) -> bool:
        p = request.path_params
        return (p.get("owner"), p.get("name")) == (self.owner, self.name)

    def _get_repo(self, request: Request, _data: Any) -> Response:
        if not self._ours(request):
            return self._error(404, "Not Found")
        return JSONResponse(self._repo_json())

    def _pulls(self, request: Request, data: Any) -> Response:
        if request.method == "GET":
            state = request.query_params.get("state", "open")
            head = request.query_params.get("head")
            found = [
                self._refresh(p)
                for _n, p in sorted(self.pulls.items())
                if (state == "all" or p["state"] == state)
                and (head is None or head == f"{self.owner}:{p['head']['ref']}")
            ]
            return self._page(request, found)
        head, base = data.get("head", ""), data.get("base", "")
        if not isinstance(data.get("title"), str) or not head or not base:
            return self._error(
                422,
                "Validation Failed",
                errors=[{"resource": "PullRequest", "code": "missing_field"}],
            )
        head_sha, base_sha = self._head(head), self._head(base)
        if head_sha is None:
            return self._error(
                422,
                "Validation Failed",
                errors=[{"resource": "PullRequest", "field": "head", "code": "invalid"}],
            )
        for p in self.pulls.values():
            if p["head"]["ref"] == head and p["state"] == "open":
                return self._error(
                    422,
                    "Validation Failed",
                    errors=[
                        {
                            "resource": "PullRequest",
                            "code": "custom",
                            "message": f"A pull request already exists for {self.owner}:{head}.",
                        }
                    ],
                )
        number = self._next_number()
        pull_id = self._next_id()
        url = f"{self._repo_url}/pulls/{number}"
        self.pulls[number] = {
            "id": pull_id,
            "node_id": f"PR_{pull_id}",
            "number": number,
            "state": "open",
            "locked": False,
            "title": data["title"],
            "body": data.get("body") or "",
            "user": _user(self.bot),
            "labels": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "head": {
                "ref": head,
                "sha": head_sha,
                "label": f"{self.owner}:{head}",
                "repo": self._repo_json(),
            },
            "base": {
                "ref": base,
                "sha": base_sha,
                "label": f"{self.owner}:{base}",
                "repo": self._repo_json(),
            },
            "merged": False,
            "merged_at": None,
            "merged_by": None,
            "merge_commit_sha": None,
            "mergeable": True,
            "created_at": _now(),
            "updated_at": _now(),
            "closed_at": None,
            "url": url,
            "html_url": f"https://github.example/{self.owner}/{self.name}/pull/{number}",
            "issue_url": f"{self._repo_url}/issues/{number}",
            "comments_url": f"{self._repo_url}/issues/{number}/comments",
            "statuses_url": f"{self._repo_url}/statuses/{head_sha}",
            "commits_url": f"{url}/commits",
            "review_comments_url": f"{url}/comments",
        }
        return JSONResponse(self.pulls[number], status_code=201, headers={"Location": url})

    def _pull(self, request: Request, data: Any) -> Response:
        pull = self.pulls.get(request.path_params["n"])
        if pull is None:
            return self._error(404, "Not Found")
        if request.method == "PATCH":
            for key in ("title", "body"):
                if isinstance(data.get(key), str):
                    pull[key] = data[key]
            if data.get("state") in ("open", "closed") and not pull["merged"]:
                pull["state"] = data["state"]
                pull["closed_at"] = _now() if data["state"] == "closed" else None
            pull["updated_at"] = _now()
        return JSONResponse(self._refresh(pull))

    def _merge(self, request: Request, data: Any) -> Response:
        pull = self.pulls.get(request.path_params["n"])
        if pull is None:
            return self._error(404, "Not Found")
        with self._lock:
            refusal = self._merge_refusals.pop(0) if self._merge_refusals else None
        if refusal is not None:
            return self._error(*refusal)
        merged = self._do_merge(pull, data, self.bot)
        if isinstance(merged, Response):
            return merged
        return JSONResponse(
            {"sha": merged, "merged": True, "message": "Pull Request successfully merged"}
        )

    def _do_merge(self, pull: dict[str, Any], data: Any, user: str) -> str | Response:
        if pull["state"] != "open" or pull["merged"]:
            return self._error(405, "Pull Request is not mergeable")
        head = self._head(pull["head"]["ref"])
        if data.get("sha") and data["sha"] != head:
            return self._error(409, "Head branch was modified. Review and try the merge again.")
        base = self._head(pull["base"]["ref"])
        assert head is not None and base is not None
        try:
            tree = self._git("merge-tree", "--write-tree", base, head).splitlines()[0]
        except RuntimeError:
            return self._error(405, "Pull Request is not mergeable")
        title = data.get("commit_title") or f"Merge pull request #{pull['number']}"
        message = title + ("\n\n" + data["commit_message"] if data.get("commit_message") else "")
        merge = self._git(
            "commit-tree", tree, "-p", base, "-p", head, "-m", message, env=_ident("GitHub")
        )
        self._git("update-ref", f"refs/heads/{pull['base']['ref']}", merge, base)
        pull.update(
            state="closed",
            merged=True,
            merged_at=_now(),
            merged_by=_user(user),
            merge_commit_sha=merge,
            closed_at=_now(),
        )
        pull["head"]["sha"] = head
        return merge

    def _reviews(self, request: Request, _data: Any) -> Response:
        n = request.path_params["n"]
        if n not in self.pulls:
            return self._error(404, "Not Found")
        return self._page(request, list(self.reviews.get(n, [])))

    def _reviewers(self, request: Request, data: Any) -> Response:
        pull = self.pulls.get(request.path_params["n"])
        if pull is None:
            return self._error(404, "Not Found")
        users = data.get("reviewers") or []
        if any(u in ("mallory",) for u in users):
            return self._error(
                422,
                "Reviews may only be requested from collaborators. One or more of the users or "
                f"teams you specified is not a collaborator of the {self.owner}/{self.name} "
                "repository.",
            )
        pull["requested_reviewers"] = [_user(u) for u in users]
        return JSONResponse(pull, status_code=201)

    @staticmethod
    def _invalid(field: str, code: str, message: str | None = None) -> JSONResponse:
        error = {"resource": "Issue", "field": field, "code": code}
        return FakeGitHub._error(
            422, "Validation Failed", errors=[{**error, "message": message} if message else error]
        )

    def _check_text(self, data: dict[str, Any]) -> Response | None:
        """GitHub's 422s for a title or body it refuses (an issue's or a pull request's)."""
        title, body = data.get("title"), data.get("body")
        if "title" in data and not str(title or "").strip():
            return self._invalid("title", "missing_field")
        if isinstance(title, str) and len(title) > TITLE_LIMIT:
            return self._invalid(
                "title", "custom", f"title is too long (maximum is {TITLE_LIMIT} characters)"
            )
        if isinstance(body, str) and len(body) > BODY_LIMIT:
            return self._invalid(
                "body", "custom", f"body is too long (maximum is {BODY_LIMIT} characters)"
            )
        return None

    def _issues(self, request: Request, data: Any) -> Response:
        if not self._ours(request):
            return self._error(404, "Not Found")
        if request.method == "GET":
            return self._list_issues(request)
        if "title" not in data:
            return self._error(422, 'Invalid request.\n\n"title" wasn\'t supplied.')
        if refused := self._check_text(data):
            return refused
        names = [n if isinstance(n, str) else n.get("name", "") for n in data.get("labels") or []]
        issue = self._new_issue(self.bot, str(data["title"]), data.get("body"), names)
        return JSONResponse(issue, status_code=201, headers={"Location": issue["url"]})

    def _list_issues(self, request: Request) -> Response:
        query = request.query_params
        state = query.get("state", "open")
        sort, direction = query.get("sort", "created"), query.get("direction", "desc")
        if state not in ("open", "closed", "all") or direction not in ("asc", "desc"):
            return self._error(422, "Validation Failed")
        if sort not in ("created", "updated", "comments"):
            return self._error(422, "Validation Failed")
        wanted = {name for name in query.get("labels", "").split(",") if name}
        every = [*self.issues.values(), *(self._issue_json(p) for p in self.pulls.values())]
        found = [
            i
            for i in every
            if (state == "all" or i["state"] == state)
            and query.get("creator", i["user"]["login"]) == i["user"]["login"]
            and wanted <= {label["name"] for label in i["labels"]}
        ]
        key = {"created": "number", "updated": "updated_at", "comments": "comments"}[sort]
        found.sort(key=lambda i: (i[key], i["number"]), reverse=direction == "desc")
        return self._page(request, found)

    def _issue(self, request: Request, data: Any) -> Response:
        n = request.path_params["n"]
        if n in self.pulls:
            if request.method == "PATCH":
                if refused := self._check_text(data):
                    return refused
                self._pull(request, data)
            return JSONResponse(self._issue_json(self.pulls[n]))
        issue = self.issues.get(n)
        if issue is None:
            return self._error(404, "Not Found")
        if request.method == "PATCH":
            if refused := self._check_text(data):
                return refused
            self._edit_issue(issue, data)
        return JSONResponse(issue)

    def _edit_issue(self, issue: dict[str, Any], data: dict[str, Any]) -> None:
        if "title" in data:
            issue["title"] = str(data["title"])
        if "body" in data:
            issue["body"] = data["body"]
        if isinstance(data.get("labels"), list):
            names = [n if isinstance(n, str) else n.get("name", "") for n in data["labels"]]
            issue["labels"] = [self._label(name) for name in dict.fromkeys(names)]
        if data.get("state") == "closed" and issue["state"] == "open":
            reason = data.get("state_reason") or "completed"
            issue.update(state="closed", state_reason=reason, closed_at=_now())
            issue["closed_by"] = _user(self.bot)
        elif data.get("state") == "open" and issue["state"] == "closed":
            issue.update(state="open", state_reason="reopened", closed_at=None, closed_by=None)
        issue["updated_at"] = _now()

    def _labels(self, request: Request, data: Any) -> Response:
        pull = self.pulls.get(request.path_params["n"])
        if pull is None:
            return self._error(404, "Not Found")
        names = data.get("labels") if isinstance(data, dict) else data
        have = {label["name"] for label in pull["labels"]}
        for name in names or []:
            if name not in have:
                pull["labels"].append(self._label(name))
                have.add(name)
        return JSONResponse(pull["labels"])

    def _comments(self, request: Request, data: Any) -> Response:
        n = request.path_params["n"]
        if n not in self.pulls:
            return self._error(404, "Not Found")
        if request.method == "GET":
            return self._page(request, list(self.comments.get(n, [])))
        if not isinstance(data.get("body"), str) or not data["body"]:
            return self._error(
                422,
                "Validation Failed",
                errors=[{"resource": "IssueComment", "code": "missing_field", "field": "body"}],
            )
        return JSONResponse(self._add_comment(n, self.bot, data["body"]), status_code=201)

    def _team_membership(self, request: Request, _data: Any) -> Response:
        """Get team membership for a user: 200 with ``state`` active or pending; 404 when
        the user is not a member or the team does not exist (GitHub does not say which)."""
        p = request.path_params
        team = f"{p['org']}/{p['slug']}"
        if team in self.team_errors:
            status, message = self.team_errors[team]
            return self._error(status, message)
        state = self.teams.get(team, {}).get(p["user"])
        if state is None:
            return self._error(404, "Not Found")
        url = f"{self.base_url}/organizations/1/team/1/memberships/{p['user']}"
        return JSONResponse({"url": url, "role": "member", "state": state})

    def _commit(self, request: Request, _data: Any) -> Response:
        sha = request.path_params["sha"]
        try:
            full = self._git("rev-parse", "--verify", f"{sha}^{{commit}}")
        except RuntimeError:
            return self._error(422, f"No commit found for SHA: {sha}")
        return JSONResponse({"sha": full, "url": f"{self._repo_url}/commits/{full}", "commit": {}})

    def _status(self, request: Request, data: Any) -> Response:
        sha = request.path_params["sha"]
        if data.get("state") not in ("error", "failure", "pending", "success"):
            return self._error(
                422,
                "Validation Failed",
                errors=[{"resource": "Status", "field": "state", "code": "custom"}],
            )
        try:
            self._git("rev-parse", "--verify", f"{sha}^{{commit}}")
        except RuntimeError:
            return self._error(422, f"No commit found for SHA: {sha}")
        status = {
            "id": self._next_id(),
            "state": data["state"],
            "description": data.get("description"),
            "target_url": data.get("target_url"),
            "context": data.get("context", "default"),
            "created_at": _now(),
            "creator": _user(self.bot),
        }
        self.statuses.setdefault(sha, []).append(status)
        return JSONResponse(status, status_code=201)


def _ident(name: str) -> dict[str, str]:
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": f"{name}@example.org",
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": f"{name}@example.org",
    }
