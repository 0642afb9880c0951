"""The few calls of AWX's REST API (``/api/v2``) the AWX applier makes, and the shapes it
reads, typed once here at the boundary.

What AWX answers, read from its source (awx/api/views, awx/main/models), not guessed:

- ``POST /job_templates/{id}/launch/`` answers 201 with ``job`` (the new job's id) and
  ``ignored_fields``: a field the template does not prompt for on launch is *not* refused
  but silently dropped and listed there (``_accept_or_ignore_job_kwargs`` with
  ``_exclude_errors=['prompts']``). A limit or a check ``job_type`` dropped that way would
  run the template's own, so Terry reads the launch endpoint first (``GET``: the
  ``ask_*_on_launch`` flags) and refuses to launch a template that would drop one.
  400 carries field errors (``{"scm_branch": ["Project does not allow override of
  branch."]}``, ``variables_needed_to_start``, ``passwords_needed_to_start``); 403 and 404
  carry ``{"detail": ...}``.
- ``POST /projects/{id}/update/`` answers 202 with ``project_update``; 405 when the project
  cannot be updated (a manual project). ``POST /jobs/{id}/cancel/`` answers 202, or 405
  once the job can no longer be canceled (``can_cancel`` false: it finished).
- Lists are pages: ``{"count", "next", "previous", "results"}`` with ``next`` a path with
  its query (or null).
- A job's ``status`` moves new → pending → waiting → running → successful | failed | error |
  canceled; its events are saved by a separate dispatcher, so they may arrive after the job
  finished: ``event_processing_finished`` says when all are in.

Errors: 5xx and connection failures are retried with backoff (never a launch, which may have
been carried out); a 4xx is an ``AWXError`` with AWX's own words. The token is sent as a
Bearer header only and never appears in an error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from terry.appliers.rest import request_with_retries
from terry.errors import RunnerError

__all__ = [
    "FINISHED",
    "AWXClient",
    "AWXError",
    "JobState",
    "LaunchPrompts",
    "Template",
]

# AWX's finished job states (UnifiedJob.FINISHED_STATUSES... minus "new" and the active ones).
FINISHED = ("successful", "failed", "error", "canceled")


class AWXError(RunnerError):
    """AWX refused or could not be reached; ``status`` is the HTTP status (0: none)."""

    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Template:
    """A job template: its id, and the project and playbook it runs."""

    id: int
    name: str
    project: int | None
    playbook: str


@dataclass(frozen=True)
class LaunchPrompts:
    """``GET /job_templates/{id}/launch/``: what the template lets a launch set."""

    asks: frozenset[str]  # "limit", "job_type", "diff_mode", "variables", "scm_branch", "tags"
    variables_needed: tuple[str, ...]
    passwords_needed: tuple[str, ...]

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> LaunchPrompts:
        asks = frozenset(
            key[len("ask_") : -len("_on_launch")]
            for key, value in body.items()
            if key.startswith("ask_") and key.endswith("_on_launch") and value is True
        )
        return cls(
            asks=asks,
            variables_needed=tuple(str(v) for v in body.get("variables_needed_to_start") or ()),
            passwords_needed=tuple(str(v) for v in body.get("passwords_needed_to_start") or ()),
        )


@dataclass(frozen=True)
class JobState:
    """A job (or project update) as AWX reports it."""

    id: int
    status: str
    failed: bool
    can_cancel: bool
    events_done: bool  # event_processing_finished
    explanation: str  # job_explanation, result_traceback's last line
    scm_revision: str

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> JobState:
        traceback = str(body.get("result_traceback") or "").strip().splitlines()
        explanation = str(body.get("job_explanation") or "").strip()
        if traceback:
            explanation = f"{explanation} {traceback[-1]}".strip()
        return cls(
            id=int(body["id"]),
            status=str(body.get("status") or "new"),
            failed=bool(body.get("failed")),
            can_cancel=bool(body.get("can_cancel")),
            events_done=bool(body.get("event_processing_finished", True)),
            explanation=explanation[:1000],
            scm_revision=str(body.get("scm_revision") or ""),
        )


def _message(response: httpx.Response) -> str:
    """AWX's error body: ``{"detail": ...}`` or field errors ``{"field": [messages]}``."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "no message"
    if isinstance(body, dict):
        if "detail" in body:
            return str(body["detail"])[:500]
        parts = []
        for key, value in body.items():
            said = "; ".join(map(str, value)) if isinstance(value, list) else str(value)
            parts.append(f"{key}: {said}")
        return ", ".join(parts)[:500] or "no message"
    return str(body)[:500]


class AWXClient:
    """AWX's REST API at ``url`` (``/api/v2`` below it), with a Bearer token."""

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
        self.url = url.rstrip("/")
        self._prefix = urlsplit(self.url).path  # a gateway's /api/controller, say
        self._http = httpx.Client(
            base_url=self.url, headers=headers, verify=verify_tls, timeout=timeout
        )
        self.retries = retries
        self._sleep = sleep

    def close(self) -> None:
        self._http.close()

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, retry: bool = True
    ) -> Any:
        response = request_with_retries(
            self._http,
            method,
            path,
            body,
            attempts=self.retries + 1 if retry else 1,
            sleep=self._sleep,
            unreachable=lambda exc: f"AWX at {self.url} could not be reached: {type(exc).__name__}",
            refused=lambda r: f"AWX answered {r.status_code} to {method} {path}: {_message(r)}",
            error=lambda problem, status: AWXError(problem, status=status),
        )
        return response.json() if response.content else {}

    def _path(self, link: str) -> str:
        """A ``next`` link (a path below the server's root) as a path below ``url``."""
        if self._prefix and link.startswith(self._prefix + "/"):
            return link[len(self._prefix) :]
        return link

    def pages(self, path: str) -> Iterator[dict[str, Any]]:
        """Every item of a list, following ``next``."""
        link: str | None = path
        while link:
            page = self._request("GET", self._path(link))
            yield from (r for r in page.get("results") or () if isinstance(r, dict))
            link = page.get("next")

    # -- job templates ---------------------------------------------------------------------
    def template(self, name: str) -> Template:
        # the filter is AWX's; the exact name is checked here too, so a server (or a proxy)
        # that ignores the query can never hand over another template
        found = [
            t
            for t in self.pages(f"/api/v2/job_templates/?name={quote(name)}")
            if t.get("name") == name
        ]
        if not found:
            raise AWXError(f"AWX has no job template named {name!r} (or the token may not see it)")
        body = found[0]
        project = body.get("project")
        return Template(
            id=int(body["id"]),
            name=name,
            project=int(project) if isinstance(project, int) else None,
            playbook=str(body.get("playbook") or ""),
        )

    def prompts(self, template: int) -> LaunchPrompts:
        return LaunchPrompts.from_api(
            self._request("GET", f"/api/v2/job_templates/{template}/launch/")
        )

    def launch(self, template: int, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """(the job's id, the fields AWX ignored). Never repeated: a launch that failed in
        transit may have started a job."""
        answer = self._request(
            "POST", f"/api/v2/job_templates/{template}/launch/", body, retry=False
        )
        ignored = answer.get("ignored_fields") or {}
        return int(answer.get("job") or answer["id"]), dict(ignored)

    # -- projects --------------------------------------------------------------------------
    def update_project(self, project: int) -> int:
        answer = self._request("POST", f"/api/v2/projects/{project}/update/", {}, retry=False)
        return int(answer.get("project_update") or answer["id"])

    def project_update(self, update: int) -> JobState:
        return JobState.from_api(self._request("GET", f"/api/v2/project_updates/{update}/"))

    # -- jobs ------------------------------------------------------------------------------
    def job(self, job: int) -> JobState:
        return JobState.from_api(self._request("GET", f"/api/v2/jobs/{job}/"))

    def events(self, job: int, *, after: int) -> Iterator[dict[str, Any]]:
        """The job's events with ``counter`` above ``after``, in order, every page."""
        return self.pages(
            f"/api/v2/jobs/{job}/job_events/?order_by=counter&counter__gt={after}&page_size=200"
        )

    def host_summaries(self, job: int) -> list[dict[str, Any]]:
        return list(self.pages(f"/api/v2/jobs/{job}/job_host_summaries/?page_size=200"))

    def cancel(self, job: int) -> bool:
        """Ask AWX to cancel; ``False`` when it can no longer be canceled (405: finished)."""
        try:
            self._request("POST", f"/api/v2/jobs/{job}/cancel/", {}, retry=False)
        except AWXError as exc:
            if exc.status == 405:
                return False
            raise
        return True

    def setting(self, category: str, name: str) -> Any:
        """A setting (``GET /settings/{category}/``); ``None`` when the token may not read it."""
        try:
            return self._request("GET", f"/api/v2/settings/{category}/").get(name)
        except AWXError as exc:
            if exc.status in (403, 404):
                return None
            raise
