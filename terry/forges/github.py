"""GitHub as the forge, through PyGithub: pull requests for proposals, labels, reviewers,
a commit status with the dry run, comments, and merges; and the issues schedules keep their
reports in.

Every call goes through ``_call``, which turns PyGithub's and the HTTP stack's errors into
``ForgeError`` with the status and GitHub's message, never the credentials: the message is
redacted of the token, the App's key, the installation tokens handed to git and this
process's secrets (``terry.redact``) before it is copied into Terry's error. Idempotent
requests are retried with backoff (PyGithub's ``GithubRetry``: 5xx, rate limits); a failed
write leaves the proposal waiting and the next sync publishes it again, finding the pull
request it may already have opened by its head branch.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import quote

import requests
from github import Auth, Github, GithubException, GithubIntegration, GithubRetry
from github.PullRequest import PullRequest

from terry.config import GitHubConfig
from terry.errors import ConfigError, ForgeError
from terry.redact import Redactor, process_redactor

__all__ = [
    "Comment",
    "GitHubForge",
    "IssueRef",
    "PullState",
    "Review",
    "credentials_from_env",
]

log = logging.getLogger("terry.forges.github")
T = TypeVar("T")


@dataclass(frozen=True)
class Credentials:
    """A token (personal or an App installation's). Never printed: the repr hides it."""

    token: str = ""
    app_id: str = ""
    private_key: str = ""
    installation_id: str = ""

    def __repr__(self) -> str:
        kind = "app" if self.app_id else ("token" if self.token else "none")
        return f"Credentials(<{kind}>)"

    __str__ = __repr__


def credentials_from_env(
    config: GitHubConfig, environ: dict[str, str] | None = None
) -> Credentials:
    env = os.environ if environ is None else environ
    creds = Credentials(
        token=env.get(config.token_env, ""),
        app_id=env.get(config.app_id_env, ""),
        private_key=env.get(config.private_key_env, ""),
        installation_id=env.get(config.installation_id_env, ""),
    )
    if not creds.token and not (creds.app_id and creds.private_key and creds.installation_id):
        raise ConfigError(
            f"forge github: set {config.token_env}, or {config.app_id_env}, "
            f"{config.private_key_env} and {config.installation_id_env}, in the environment"
        )
    return creds


@dataclass(frozen=True)
class Review:
    id: int
    user: str
    state: str  # APPROVED | CHANGES_REQUESTED | COMMENTED | DISMISSED
    commit: str | None


@dataclass(frozen=True)
class Comment:
    id: int
    user: str
    body: str


@dataclass(frozen=True)
class PullState:
    number: int
    url: str
    state: str  # open | closed
    merged: bool
    head_sha: str
    head_ref: str
    merge_sha: str | None
    merged_by: str | None


@dataclass(frozen=True)
class IssueRef:
    number: int
    url: str


class GitHubForge:
    """One GitHub repository. ``bot`` is the login Terry acts as (its own comments are
    never read as commands)."""

    def __init__(self, config: GitHubConfig, credentials: Credentials) -> None:
        if not config.repository:
            raise ConfigError("forge github: repository (owner/name) is not set in terry.yml")
        self.config = config
        self._credentials = credentials
        self._redact = process_redactor() | Redactor([credentials.token, credentials.private_key])
        if credentials.token:
            auth: Auth.Auth = Auth.Token(credentials.token)
        else:
            auth = Auth.AppAuth(
                int(credentials.app_id), credentials.private_key
            ).get_installation_auth(int(credentials.installation_id))
        self._auth = auth
        self._gh = Github(
            base_url=config.api_url.rstrip("/"),
            auth=auth,
            timeout=int(max(1, config.timeout)),
            retry=GithubRetry(
                total=config.retries,
                backoff_factor=0.5,
                status_forcelist=[500, 502, 503, 504],
                secondary_rate_wait=5,
                max_rate_limit_wait=60,
            ),
            per_page=100,
            seconds_between_requests=None,
            seconds_between_writes=config.seconds_between_writes or None,
        )
        self._repo = None
        self._bot: str | None = None

    # -- plumbing -------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except GithubException as exc:
            message = ""
            if isinstance(exc.data, dict):
                message = str(exc.data.get("message", ""))
                errors = exc.data.get("errors")
                if isinstance(errors, list) and errors:
                    first = errors[0]
                    detail = first.get("message") if isinstance(first, dict) else str(first)
                    message = f"{message}: {detail}" if detail else message
            message = self._redact(message)
            raise ForgeError(f"github: {what}: HTTP {exc.status} {message}".strip()) from None
        except (requests.RequestException, OSError) as exc:
            # e.g. "Max retries exceeded ... (Caused by ResponseError('too many 502 error
            # responses'))": the URL carries no credentials (they travel in a header).
            cause = re.search(r"Caused by (\w+\(.*?\))\)?$", str(exc))
            detail = self._redact(cause.group(1) if cause else str(exc))
            raise ForgeError(f"github: {what}: {type(exc).__name__}: {detail[:300]}") from None

    @property
    def repo(self):  # type: ignore[no-untyped-def]
        if self._repo is None:
            self._repo = self._call(
                f"read repository {self.config.repository}",
                lambda: self._gh.get_repo(self.config.repository),
            )
        return self._repo

    @property
    def bot(self) -> str:
        if self._bot is None:
            if self._credentials.token:
                self._bot = self._call("read the token's user", lambda: self._gh.get_user().login)
            else:  # an App acts as "<its slug>[bot]"; GET /app (with the App's JWT) says
                integration = GithubIntegration(
                    base_url=self.config.api_url.rstrip("/"),
                    auth=Auth.AppAuth(int(self._credentials.app_id), self._credentials.private_key),
                    timeout=int(max(1, self.config.timeout)),
                )
                slug = self._call("read the GitHub App", lambda: integration.get_app().slug)
                self._bot = f"{slug}[bot]"
        return self._bot

    def git_env(self) -> dict[str, str]:
        """Environment for ``git push/fetch`` over HTTPS with the same credentials, passed
        as a config header in environment variables (never in arguments or URLs)."""
        token = self._credentials.token or getattr(self._auth, "token", "")
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        self._redact = self._redact | Redactor([token, basic])
        return {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
        }

    # -- pull requests --------------------------------------------------------------------
    def _pull(self, number: int) -> PullRequest:
        return self._call(f"read pull request #{number}", lambda: self.repo.get_pull(number))

    def find_pull(self, branch: str) -> int | None:
        owner = self.config.repository.split("/")[0]
        pulls = self._call(
            f"list pull requests for {branch}",
            lambda: list(self.repo.get_pulls(state="all", head=f"{owner}:{branch}")),
        )
        return max((p.number for p in pulls), default=None)

    def open_pull(self, *, branch: str, base: str, title: str, body: str) -> PullState:
        """Open a pull request for ``branch``, or update the one already open for it."""
        existing = self.find_pull(branch)
        if existing is not None:
            pull = self._pull(existing)
            if pull.state == "open" and (pull.title != title or pull.body != body):
                self._call(f"update #{existing}", lambda: pull.edit(title=title, body=body))
            return self.pull(existing)
        created = self._call(
            f"open a pull request for {branch}",
            lambda: self.repo.create_pull(base=base, head=branch, title=title, body=body),
        )
        return self._state(created)

    def update_body(self, number: int, body: str) -> None:
        pull = self._pull(number)
        self._call(f"update #{number}", lambda: pull.edit(body=body))

    def pull(self, number: int) -> PullState:
        return self._state(self._pull(number))

    @staticmethod
    def _state(pull: PullRequest) -> PullState:
        return PullState(
            number=pull.number,
            url=pull.html_url,
            state=pull.state,
            merged=bool(pull.merged),
            head_sha=pull.head.sha,
            head_ref=pull.head.ref,
            merge_sha=pull.merge_commit_sha if pull.merged else None,
            merged_by=pull.merged_by.login if pull.merged and pull.merged_by else None,
        )

    def label(self, number: int, labels: list[str]) -> None:
        issue = self._call(f"read issue #{number}", lambda: self.repo.get_issue(number))
        self._call(f"label #{number}", lambda: issue.add_to_labels(*labels))

    def request_reviewers(self, number: int, users: list[str], teams: list[str]) -> None:
        if not users and not teams:
            return
        pull = self._pull(number)
        self._call(
            f"request reviewers on #{number}",
            lambda: pull.create_review_request(reviewers=users, team_reviewers=teams),
        )

    def set_status(self, sha: str, *, ok: bool, description: str, url: str | None) -> None:
        commit = self._call(f"read commit {sha[:10]}", lambda: self.repo.get_commit(sha))
        kwargs = {"target_url": url} if url else {}
        self._call(
            f"set status on {sha[:10]}",
            lambda: commit.create_status(
                state="success" if ok else "failure",
                description=description[:140],
                context="terry/dry-run",
                **kwargs,
            ),
        )

    def reviews(self, number: int) -> list[Review]:
        pull = self._pull(number)
        return self._call(
            f"read reviews of #{number}",
            lambda: [
                Review(r.id, r.user.login if r.user else "", r.state, r.commit_id)
                for r in pull.get_reviews()
            ],
        )

    def comments(self, number: int, *, after: int | None = None) -> list[Comment]:
        pull = self._pull(number)
        found = self._call(
            f"read comments of #{number}",
            lambda: [
                Comment(c.id, c.user.login if c.user else "", c.body or "")
                for c in pull.get_issue_comments()
            ],
        )
        return sorted((c for c in found if after is None or c.id > after), key=lambda c: c.id)

    def comment(self, number: int, body: str) -> int:
        pull = self._pull(number)
        created = self._call(f"comment on #{number}", lambda: pull.create_issue_comment(body))
        return int(created.id)

    def merge(self, number: int, *, sha: str, title: str, message: str) -> str:
        """Merge #number only if its head is still ``sha`` (GitHub answers 409 otherwise)."""
        pull = self._pull(number)
        result = self._call(
            f"merge #{number}",
            lambda: pull.merge(
                commit_title=title,
                commit_message=message,
                merge_method=self.config.merge_method,
                sha=sha,
            ),
        )
        if not result.merged:
            raise ForgeError(f"github: merge #{number}: {self._redact(result.message)}")
        return str(result.sha)

    def close(self, number: int) -> None:
        pull = self._pull(number)
        self._call(f"close #{number}", lambda: pull.edit(state="closed"))

    # -- people -----------------------------------------------------------------------------
    def in_team(self, team: str, login: str) -> bool:
        """Whether ``login`` is an active member of ``team`` (``org/team-slug``): GitHub's
        team membership, ``GET /orgs/{org}/teams/{team_slug}/memberships/{username}``. A
        pending invitation is not membership; 404 (not a member, or a team the token may
        not see) is no. Other failures are ForgeError: the caller fails closed."""
        org, _, slug = team.partition("/")
        if not org or not slug or not login:
            return False
        path = "/orgs/{}/teams/{}/memberships/{}".format(
            *(quote(p, safe="") for p in (org, slug, login))
        )

        def state() -> str | None:
            try:
                _headers, data = self._gh.requester.requestJsonAndCheck("GET", path)
            except GithubException as exc:
                if exc.status == 404:
                    return None
                raise
            return str(data.get("state")) if isinstance(data, dict) else None

        return self._call(f"read {login}'s membership of team {team}", state) == "active"

    # -- issues ---------------------------------------------------------------------------
    def find_issue(self, marker: str) -> IssueRef | None:
        """Terry's oldest open issue whose body's first line is ``marker``. Other people's
        issues are never Terry's, whatever they say, and the pull requests GitHub lists
        among issues are skipped."""
        bot = self.bot

        def first() -> IssueRef | None:
            for issue in self.repo.get_issues(state="open", sort="created", direction="asc"):
                ours = issue.user is not None and issue.user.login == bot
                body = (issue.body or "").partition("\n")[0].strip()
                # pull_request last: PyGithub reads the whole issue to say it has none.
                if ours and body == marker and issue.pull_request is None:
                    return IssueRef(issue.number, issue.html_url)
            return None

        return self._call("list open issues", first)

    def open_issue(self, *, title: str, body: str, labels: list[str]) -> IssueRef:
        created = self._call(
            "open an issue",
            lambda: self.repo.create_issue(title=title, body=body, labels=labels),
        )
        return IssueRef(created.number, created.html_url)

    def update_issue(self, number: int, *, title: str, body: str) -> IssueRef:
        issue = self._call(f"read issue #{number}", lambda: self.repo.get_issue(number))
        self._call(f"update issue #{number}", lambda: issue.edit(title=title, body=body))
        return IssueRef(issue.number, issue.html_url)
