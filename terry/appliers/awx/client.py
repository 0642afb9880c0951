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
  branch."]}``, ``variables_needed_to_start``, ``passwords_needed_to_start``; the others
  under ``__all__``, AWX's NON_FIELD_ERRORS_KEY); 401, 403 and 404 carry ``{"detail": ...}``,
  409 ``{"error": ..., "active_jobs": [...]}`` (ActiveJobConflict).
- ``POST /projects/{id}/update/`` answers 202 with ``project_update``; 405 when the project
  cannot be updated (a manual project). ``POST /jobs/{id}/cancel/`` answers 202, or 405
  once the job can no longer be canceled (it finished).
- Lists are pages: ``{"count", "next", "previous", "results"}``, at most ``MAX_PAGE_SIZE``
  (200) each. ``next`` is the request's own full path with ``page`` replaced
  (awx/api/pagination.py, ``get_full_path``): the path AWX saw, so behind a proxy it may lack
  the proxy's prefix, or carry AAP 2.5's ``/api/controller``; other servers send an absolute
  URL. Terry takes only the part below ``/api[/prefix]/v2`` and asks its own URL for it,
  so the token never goes to another host.
- The API is at ``/api/v2`` below the URL, or at ``/api/{prefix}/v2`` when the URL ends in
  ``/api/{prefix}`` (``OPTIONAL_API_URLPATTERN_PREFIX``: AAP 2.5's gateway,
  ``https://aap.example.org/api/controller``).
- A job's ``status`` moves new → pending → waiting → running → successful | failed | error |
  canceled; its events are saved by a separate dispatcher, so they may arrive after the job
  finished, and out of ``counter`` order while it runs: ``event_processing_finished`` says
  when all are in (then the counters have no gap).
- A job template with job slicing launches a *workflow* job: the answer has
  ``workflow_job``, not ``job``, and its ``id`` is no job's; Terry cancels it and refuses.

- ``GET /job_templates/{id}/jobs/`` lists a template's jobs (``order_by=-id``: newest first),
  each with its ``extra_vars`` (JobListSerializer drops only the job's environment, args,
  cwd, traceback and event flag). ``extra_vars`` cannot be filtered on (``prevent_search``:
  a 403), so a launch whose answer was lost is found by reading them.

Errors: 5xx, an answer that is not JSON and connection failures are retried with backoff
(never a launch or a project update, which may have been carried out, unless the connection
was never made); 429 (a gateway's rate limit: nothing was done) is retried for every call.
A ``Retry-After`` is honoured (at most a minute). A 3xx (a login page, http → https) or
another 4xx is an ``AWXError`` with AWX's own words at once; 401 means the token was
refused, 403 that it may not do this. The token is sent as a Bearer header only and never
appears in an error.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx
import yaml

from terry.appliers.rest import request_with_retries
from terry.config import is_http_url
from terry.errors import RunnerError

__all__ = [
    "FINISHED",
    "AWXClient",
    "AWXError",
    "JobState",
    "LaunchLost",
    "LaunchPrompts",
    "Template",
]

# AWX's finished job states (UnifiedJob.FINISHED_STATUSES... minus "new" and the active ones).
FINISHED = ("successful", "failed", "error", "canceled")
# Where the API is below a URL's path: /api/v2, or /api/{OPTIONAL_API_URLPATTERN_PREFIX}/v2.
_API = re.compile(r"/api(?:/[^/]+)?/v2(?=/|$)")


class AWXError(RunnerError):
    """AWX refused or could not be reached; ``status`` is the HTTP status (0: none)."""

    def __init__(
        self, message: str, *, status: int = 0, sent: bool = True, setting: str | None = None
    ) -> None:
        super().__init__(message, setting=setting)
        self.status = status
        self.sent = sent  # False: the request never left (its connection was never made)


class LaunchLost(AWXError):
    """A launch sent whose answer never came (no answer, cut off, or a gateway's 5xx): AWX
    may have started the job all the same. A connection never made is a plain ``AWXError``."""


@dataclass(frozen=True)
class Template:
    """A job template: its id, the project and playbook it runs, and the settings of its own
    AWX applies to every job without a prompt (``skip_tags``, ``start_at_task`` become the
    job's ``--skip-tags`` and ``--start-at-task``; ``job_slice_count`` over 1 launches a
    workflow of slices instead of one job)."""

    id: int
    name: str
    project: int | None
    playbook: str
    skip_tags: str = ""
    start_at_task: str = ""
    job_slice_count: int = 1


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
            id=_int(body.get("id"), "id"),
            status=str(body.get("status") or "new"),
            failed=bool(body.get("failed")),
            events_done=bool(body.get("event_processing_finished", True)),
            explanation=explanation[:1000],
            scm_revision=str(body.get("scm_revision") or ""),
        )


def _int(value: Any, what: str) -> int:
    """An id from AWX's answer, or ``AWXError`` naming what was missing."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise AWXError(f"AWX's answer has no {what}")
    try:
        return int(value)
    except ValueError:
        raise AWXError(f"AWX's answer has no {what} (got {str(value)[:40]!r})") from None


def _vars(given: Any) -> dict[str, Any]:
    """A job's ``extra_vars`` as AWX gives them: JSON text (or YAML, as it accepts), or an
    object; ``{}`` for anything else."""
    if isinstance(given, str):
        try:
            given = json.loads(given or "{}")
        except ValueError:
            try:
                given = yaml.safe_load(given)
            except yaml.YAMLError:
                return {}
    return given if isinstance(given, dict) else {}


def _said(value: Any) -> str:
    if isinstance(value, list):
        return "; ".join(_said(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_said(v)}" for k, v in value.items())
    return str(value)


def _message(response: httpx.Response) -> str:
    """AWX's error body: ``{"detail": ...}``, ``{"error": ...}`` (a 409's), field errors
    ``{"field": [messages]}`` with ``__all__`` for the non-field ones, or a bare list."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "no message"
    if isinstance(body, dict):
        for key in ("detail", "error"):
            if key in body:
                return _said(body[key])[:500]
        parts = [
            _said(value) if key in ("__all__", "non_field_errors") else f"{key}: {_said(value)}"
            for key, value in body.items()
        ]
        return ", ".join(parts)[:500] or "no message"
    return _said(body)[:500] or "no message"


class AWXClient:
    """AWX's REST API at ``url`` (``/api/v2`` below it, or ``/v2`` below an ``/api/{prefix}``
    URL), with a Bearer token."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        verify_tls: bool = True,
        timeout: float = 15.0,
        retries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        token_env: str = "TERRY_AWX_TOKEN",
    ) -> None:
        headers = {"Accept": "application/json", "User-Agent": "terry"}
        self._token_env = token_env  # named when a 401 came to a request that had no token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._token = token or ""
        parts = urlsplit(url.strip().rstrip("/"))
        if not is_http_url(url):
            raise AWXError(
                f"awx.url must be an http(s) URL, not {parts.path[:100]!r}", setting="awx.url"
            )
        host = parts.hostname
        netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
        self._origin = f"{parts.scheme}://{netloc}"  # without any user:password@
        path = parts.path.rstrip("/")
        if re.search(r"/api(?:/[^/]+)?/v2$", path):
            self._root = path  # .../api/v2 or .../api/controller/v2 given whole
        elif re.search(r"/api(?:/[^/]+)?$", path):
            self._root = f"{path}/v2"  # AAP 2.5: https://aap.example.org/api/controller
        else:
            self._root = f"{path}/api/v2"  # https://awx.example.org, or below a proxy's /awx
        self.url = self._origin + path
        self._http = httpx.Client(headers=headers, verify=verify_tls, timeout=timeout)
        self.retries = retries
        self._sleep = sleep

    def job_link(self, job: int) -> str:
        """Where a person reads the job: AWX's UI below its URL; behind AAP's gateway (an
        ``/api/{prefix}`` URL, whose UI paths differ by release) the job's API page, which
        the gateway serves browsable to a signed-in person."""
        if re.search(r"/api/[^/]+/v2$", self._root):
            return f"{self._origin}{self._root}/jobs/{job}/"
        return f"{self.url}/#/jobs/playbook/{job}"

    def close(self) -> None:
        self._http.close()

    def _url(self, path: str) -> str:
        """The URL of ``path`` below the API (``/jobs/7/``) or of a ``next`` link AWX gave:
        a path AWX saw (perhaps without a proxy's prefix) or an absolute URL, of which only
        the part below ``/api[/prefix]/v2`` is kept, asked of Terry's own URL."""
        link = urlsplit(path)
        if link.scheme or link.netloc or link.path.startswith("/api") or "/api/" in link.path:
            below = link.path
            if below == self._root or below.startswith(self._root + "/"):
                below = below[len(self._root) :]
            elif found := _API.search(below):
                below = below[found.end() :]
            else:
                raise AWXError(f"AWX gave a link outside its API: {link.path[:200]!r}")
        else:
            below = link.path
        return f"{self._origin}{self._root}/{below.lstrip('/')}" + (
            f"?{link.query}" if link.query else ""
        )

    def _problem(self, text: str) -> str:
        return text.replace(self._token, "[token]") if self._token else text

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, retry: bool = True
    ) -> dict[str, Any]:
        """AWX's JSON answer (``{}`` when empty), tried again as the module docstring says:
        ``retry`` False for a call that may have been carried out (a launch)."""
        url = self._url(path)
        shown = f"{method} {urlsplit(url).path}"

        def refused(response: httpx.Response) -> str:
            said = f"AWX answered {response.status_code} to {shown}: {_message(response)}"
            if response.status_code == 401:
                said += (
                    f" (no token was sent: {self._token_env} is not set)"
                    if not self._token
                    else " (the token is wrong or expired)"
                )
            return self._problem(said)

        def not_json(response: httpx.Response) -> str | None:
            if response.status_code >= 300 or not response.content:
                return None
            try:
                response.json()
            except ValueError:
                kind = response.headers.get("content-type", "no content type")
                return f"AWX answered {shown} with something that is not JSON ({kind})"
            return None

        response = request_with_retries(
            self._http,
            method,
            url,
            body,
            attempts=self.retries + 1,
            repeatable=retry,
            sleep=self._sleep,
            unreachable=lambda exc: f"AWX at {self.url} could not be reached: {type(exc).__name__}",
            refused=refused,
            error=lambda problem, status, sent: AWXError(problem, status=status, sent=sent),
            check=not_json,
        )
        status = response.status_code
        if status >= 300:  # httpx follows no redirect: a login page, http -> https
            where = urlsplit(response.headers.get("location", "")).path or "elsewhere"
            raise AWXError(
                f"AWX answered {status} to {shown}, sending Terry to {where[:200]}: set "
                "awx.url to where the API answers (https, the right path)",
                status=status,
            )
        if not response.content:
            return {}
        answer = response.json()
        if not isinstance(answer, dict):
            raise AWXError(f"AWX answered {shown} with JSON that is no object", status=status)
        return answer

    def pages(self, path: str) -> Iterator[dict[str, Any]]:
        """Every item of a list, following ``next`` (once each: a server that links back to
        a page already read ends the list)."""
        link: str | None = path
        seen: set[str] = set()
        while link and self._url(link) not in seen:
            seen.add(self._url(link))
            page = self._request("GET", link)
            yield from (r for r in page.get("results") or () if isinstance(r, dict))
            after = page.get("next")
            link = urljoin(self._url(link), after) if isinstance(after, str) and after else None

    # -- job templates ---------------------------------------------------------------------
    def template(self, name: str) -> Template:
        # the filter is AWX's; the exact name is checked here too, so a server (or a proxy)
        # that ignores the query can never hand over another template. Names are unique per
        # organization only (SOFT_UNIQUE_TOGETHER): two of one name is refused, not guessed.
        found = [
            t for t in self.pages(f"/job_templates/?name={quote(name)}") if t.get("name") == name
        ]
        if not found:
            raise AWXError(f"AWX has no job template named {name!r} (or the token may not see it)")
        ids = sorted({_int(t.get("id"), "job template id") for t in found})
        if len(ids) > 1:
            raise AWXError(
                f"AWX has {len(ids)} job templates named {name!r} (ids "
                f"{', '.join(map(str, ids))}, in different organizations): name one in "
                "awx.job_templates that is unique, or rename one"
            )
        body = found[0]
        project, slices = body.get("project"), body.get("job_slice_count")
        return Template(
            id=ids[0],
            name=name,
            project=int(project) if isinstance(project, int) else None,
            playbook=str(body.get("playbook") or ""),
            skip_tags=str(body.get("skip_tags") or ""),
            start_at_task=str(body.get("start_at_task") or ""),
            job_slice_count=slices if isinstance(slices, int) and slices > 1 else 1,
        )

    def prompts(self, template: int) -> LaunchPrompts:
        return LaunchPrompts.from_api(self._request("GET", f"/job_templates/{template}/launch/"))

    def launch(self, template: int, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """(the job's id, the fields AWX ignored). Never repeated: a launch that failed in
        transit may have started a job."""
        try:
            answer = self._request("POST", f"/job_templates/{template}/launch/", body, retry=False)
        except AWXError as exc:
            if exc.sent and (exc.status == 0 or exc.status >= 500):
                raise LaunchLost(str(exc), status=exc.status) from exc
            raise
        if "job" not in answer and answer.get("workflow_job") is not None:
            workflow = _int(answer["workflow_job"], "workflow job id")
            try:
                self._request("POST", f"/workflow_jobs/{workflow}/cancel/", {})
                canceled = "Terry canceled it"
            except AWXError as exc:
                canceled = f"canceling it failed: {exc}"
            raise AWXError(
                f"job template {template} slices its jobs: AWX started workflow job "
                f"{workflow} instead of one job ({canceled}); set its job slicing to 1"
            )
        job = answer.get("job")
        if job is None and answer.get("type", "job") == "job":
            job = answer.get("id")
        ignored = answer.get("ignored_fields") or {}
        if isinstance(ignored, list):
            ignored = {str(name): None for name in ignored}
        elif not isinstance(ignored, dict):
            ignored = {"ignored_fields": ignored}
        return _int(job, "job id"), dict(ignored)

    def launched_with(
        self, template: int, name: str, value: str, *, newest: int = 200, most: int = 2000
    ) -> int | None:
        """The id of the template's job, among its ``newest``, whose extra var ``name`` is
        ``value`` (``None``: none is).

        AWX lists them newest first when asked (``order_by=-id``). A list that is not in
        that order (a proxy that drops the query, a server that ignores it) is read whole,
        so the newest are never missed; one longer than ``most`` cannot be told:
        ``AWXError``, never a guess that no job started."""
        jobs = self.pages(f"/job_templates/{template}/jobs/?order_by=-id&page_size={newest}")
        last, ordered = None, True
        for seen, item in enumerate(jobs, start=1):
            job = _int(item.get("id"), "job id")
            ordered = ordered and (last is None or job < last)
            last = job
            given = item.get("extra_vars")
            if given is None:  # a list that leaves them out: the job's own page has them
                given = self._request("GET", f"/jobs/{job}/").get("extra_vars")
            if _vars(given).get(name) == value:
                return job
            if ordered and seen >= newest:
                return None
            if seen >= most:
                raise AWXError(
                    f"AWX does not list job template {template}'s jobs newest first "
                    f"(order_by=-id) and has more than {most}: Terry cannot tell whether "
                    f"one carries {name} {value}"
                )
        return None

    # -- projects --------------------------------------------------------------------------
    def update_project(self, project: int) -> int:
        answer = self._request("POST", f"/projects/{project}/update/", {}, retry=False)
        return _int(answer.get("project_update", answer.get("id")), "project update id")

    def project_update(self, update: int) -> JobState:
        return JobState.from_api(self._request("GET", f"/project_updates/{update}/"))

    # -- jobs ------------------------------------------------------------------------------
    def job(self, job: int) -> JobState:
        return JobState.from_api(self._request("GET", f"/jobs/{job}/"))

    def events(self, job: int, *, after: int) -> Iterator[dict[str, Any]]:
        """The job's events with ``counter`` above ``after``, in order, every page."""
        return self.pages(
            f"/jobs/{job}/job_events/?order_by=counter&counter__gt={after}&page_size=200"
        )

    def host_summaries(self, job: int) -> list[dict[str, Any]]:
        return list(self.pages(f"/jobs/{job}/job_host_summaries/?page_size=200"))

    def cancel(self, job: int) -> bool:
        """Ask AWX to cancel; ``False`` when it can no longer be canceled (405: finished).
        Asked again on a 5xx: canceling twice is canceling."""
        try:
            self._request("POST", f"/jobs/{job}/cancel/", {})
        except AWXError as exc:
            if exc.status == 405:
                return False
            raise
        return True

    def setting(self, category: str, name: str) -> Any:
        """A setting (``GET /settings/{category}/``); ``None`` when the token may not read it."""
        try:
            return self._request("GET", f"/settings/{category}/").get(name)
        except AWXError as exc:
            if exc.status in (403, 404):
                return None
            raise
