"""A local AWX for tests: the REST calls of ``terry.appliers.awx.client`` with the shapes,
status codes and awkward parts of AWX's API (read from awx/api/views and awx/main/models):

- Bearer tokens checked (401 ``{"detail": ...}``); a template a test forbids answers its
  launch 403, an unknown id 404 ``{"detail": "Not found."}``.
- ``GET /job_templates/{id}/launch/`` gives the ``ask_*_on_launch`` flags; a launch that sets
  a field the template does not prompt for is *not* refused: the field is dropped and listed
  in ``ignored_fields`` (201), as AWX does. A launch is never refused for a busy template
  (AWX answers 409, ``ActiveJobConflict``, only to a DELETE): unless the template allows
  concurrent jobs (``allow_simultaneous``), the new job stays ``pending`` while another job
  of its template has not finished (``job_blocked_by`` in AWX's dependency graph);
  ``occupy`` starts such a job outside Terry.
  ``scm_branch`` on a project without ``allow_override`` is a 400 field error; extra vars
  AWX cannot parse as JSON or with ``yaml.safe_load`` (an ``!unsafe`` tag) are a 400.
- Jobs move pending → waiting → running one poll at a time, then run the job template's
  playbook for real with ansible-runner, from ``git archive`` of the requested
  ``scm_branch`` (``scm_revision`` is the commit it resolved to), with the project's
  inventory at that commit, ``--limit``, ``--check`` for ``job_type=check``, ``--diff``,
  ``--tags``, and the extra vars written as AWX writes them (every value ``!unsafe``).
- Events are saved late: while a job runs only those older than ``event_lag`` polls are
  listed, and after it finishes ``event_processing_finished`` stays false for one more poll
  with the last events still missing. With ``out_of_order`` one of them is saved after the
  next (AWX's dispatcher saves batches from several workers): while the job runs, the
  listed counters have a gap. Lists are pages of at most ``page_size`` (default 4) with
  ``next`` links: the request's full path, as AWX's ``get_full_path`` gives it, or with
  ``absolute_next`` an absolute URL on another host (an internal name behind a gateway).
- ``api_root``: where the API is, ``/api/v2`` or AAP 2.5's ``/api/controller/v2``.
- ``POST /jobs/{id}/cancel/`` answers 202 and takes effect ``cancel_polls`` polls later (1:
  the next; None: never, a dispatcher that does not act on it); 405 once the job finished.
  ``can_cancel`` is only in ``GET /jobs/{id}/cancel/`` (AWX's JobCancelSerializer), not in
  the job. A template marked ``hang`` runs nothing and never finishes by itself; with
  ``finish_on_cancel`` the job ends successful as the cancel comes (it finished first).
- ``outage``: the next so many requests answer 502 from the gateway in front of AWX (a
  restart), as they come; ``outage_when_running``: such an outage as a job starts running.
- ``lose_launch``: the next launch's answer is lost at the gateway (504): ``"after"`` AWX
  made the job all the same, ``"before"`` it did not; ``lost_outage`` requests after it
  answer 502. ``GET /job_templates/{id}/jobs/``
  lists a template's jobs, newest first with ``order_by=-id``, each with its
  ``extra_vars`` as JSON text (a filter on ``extra_vars`` is a 403: ``prevent_search``).
- A template's own ``skip_tags`` and ``start_at_task`` apply to its every job; with
  ``job_slice_count`` over 1 a launch starts a workflow job (``workflow_job`` in the 201),
  which ``POST /workflow_jobs/{id}/cancel/`` cancels. The launch page is read with read
  access; a ``forbidden`` template (no Execute role) refuses only the launch itself (403).
- ``POST /projects/{id}/update/`` answers 202 and the update succeeds a poll later (405 for
  a manual project).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.local_server import LocalServer

__all__ = ["FakeAWX", "FakeJob", "FakeTemplate"]

ASKS = ("limit", "job_type", "diff_mode", "variables", "scm_branch", "tags")
_FIELD_ASK = {
    "limit": "limit",
    "job_type": "job_type",
    "diff_mode": "diff_mode",
    "extra_vars": "variables",
    "scm_branch": "scm_branch",
    "job_tags": "tags",
}


class _UnsafeDumper(yaml.SafeDumper):
    """AWX's SafeStringDumper (awx/main/utils/safe_yaml.py): every string ``!unsafe``."""

    def represent_data(self, data: Any) -> Any:
        if isinstance(data, str):
            return self.represent_scalar("!unsafe", data)
        return super().represent_data(data)


@dataclass
class FakeTemplate:
    id: int
    name: str
    playbook: str = "playbooks/terry-awx.yml"
    project: int = 1
    asks: tuple[str, ...] = ASKS
    forbidden: bool = False
    hang: bool = False
    allow_simultaneous: bool = False  # AWX's "Concurrent Jobs"; off: one job at a time
    # Prompts the launch page says it asks but the launch drops into ``ignored_fields`` (the
    # template edited between Terry's look and its launch): the job runs without them.
    ignores: tuple[str, ...] = ()
    # Its own settings, applied to every job unprompted (``--skip-tags``, ``--start-at-task``;
    # slicing over 1 launches a workflow job instead of one job).
    skip_tags: str = ""
    start_at_task: str = ""
    job_slice_count: int = 1


@dataclass
class FakeJob:
    id: int
    template: FakeTemplate
    launch: dict[str, Any]
    status: str = "new"
    scm_revision: str = ""
    explanation: str = ""
    polls: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    summaries: dict[str, dict[str, int]] = field(default_factory=dict)
    cancel_asked: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    finished_polls: int = 0
    visible: int = 0
    result: str | None = None  # what the run ended as, shown at the next poll
    cancel_polls: int = 0  # polls since the cancel was asked
    outside: bool = False  # launched by someone else (``occupy``)


class FakeAWX(LocalServer):
    label = "fake AWX"

    def __init__(
        self,
        repo: Path,
        *,
        token: str,
        inventory: str = "inventories/example",
        api_root: str = "/api/v2",
    ) -> None:
        super().__init__()
        self.api_root = api_root
        self.absolute_next = False
        self.out_of_order = False
        self.repo = repo
        self.token = token
        self.inventory = inventory
        self.templates: dict[int, FakeTemplate] = {}
        self.jobs: dict[int, FakeJob] = {}
        self.allow_override = True
        self.manual_project = False
        self.allow_jinja = "template"
        self.settings_readable = True
        self.cancel_denied = False  # POST .../cancel/ answers 403 (a role that may not)
        self.cancel_polls: int | None = 1  # polls until a cancel shows (None: never)
        self.finish_on_cancel = False  # a job finishes successful just as the cancel comes
        self.outage = 0  # the next so many requests answer 502
        self.outage_when_running = 0  # an outage of so many requests as a job starts running
        self.lose_launch: str | None = None  # "after" / "before": the next launch's 504
        self.lost_outage = 0  # an outage of so many requests after a lost launch
        self.page_size = 4
        # AWX filters a list by any field it is given (?name=); a proxy or an older server
        # in front of it may not: False answers every template, whatever the query
        self.filters_names = True
        self.event_lag = 1
        self.requests: list[dict[str, Any]] = []
        self.project_updates: dict[int, int] = {}
        self.workflow_jobs: list[int] = []  # sliced launches' workflow jobs
        self.workflow_canceled: list[int] = []
        # AWX's inventory is its own: host variables it gives a host in the jobs whose launch
        # a predicate accepts (a host gone, or another machine at its address, after the
        # dry run), and jobs that end before any play (a failed project sync, a cancel)
        self.host_vars: list[tuple[str, dict[str, Any], Callable[[dict[str, Any]], bool]]] = []
        self.ends_early: list[tuple[str, str, Callable[[dict[str, Any]], bool]]] = []
        self._lock = threading.Lock()

    def add_template(self, name: str, **kwargs: Any) -> FakeTemplate:
        template = FakeTemplate(id=len(self.templates) + 1, name=name, **kwargs)
        self.templates[template.id] = template
        return template

    def awx_host_vars(
        self, host: str, variables: dict[str, Any], when: Callable[[dict[str, Any]], bool]
    ) -> None:
        """``host`` has ``variables`` in AWX's inventory for the jobs whose launch ``when``
        accepts (over what the repository's inventory gives it)."""
        self.host_vars.append((host, variables, when))

    def end_early(
        self, status: str, explanation: str, when: Callable[[dict[str, Any]], bool]
    ) -> None:
        """The next job whose launch ``when`` accepts ends ``status`` before any play runs,
        with AWX's ``job_explanation``."""
        self.ends_early.append((status, explanation, when))

    def launches(self) -> list[dict[str, Any]]:
        return [j.launch for j in self.jobs.values() if not j.outside]

    def occupy(self, template: FakeTemplate) -> FakeJob:
        """A job of ``template`` someone else launched, running until it is canceled."""
        with self._lock:
            job = FakeJob(id=len(self.jobs) + 1, template=template, launch={}, status="running")
            job.outside = True
            self.jobs[job.id] = job
        return job

    # -- HTTP --------------------------------------------------------------------------------
    def _app(self) -> Starlette:
        root = self.api_root
        return Starlette(
            routes=[
                Route(root + "/job_templates/", self._templates),
                Route(
                    root + "/job_templates/{id:int}/launch/", self._launch, methods=["GET", "POST"]
                ),
                Route(root + "/job_templates/{id:int}/jobs/", self._template_jobs),
                Route(root + "/projects/{id:int}/update/", self._update, methods=["POST"]),
                Route(root + "/project_updates/{id:int}/", self._project_update),
                Route(root + "/jobs/{id:int}/", self._job),
                Route(root + "/jobs/{id:int}/job_events/", self._events),
                Route(root + "/jobs/{id:int}/job_host_summaries/", self._summaries),
                Route(root + "/jobs/{id:int}/cancel/", self._cancel, methods=["GET", "POST"]),
                Route(root + "/settings/{category}/", self._settings),
                Route(
                    root + "/workflow_jobs/{id:int}/cancel/",
                    self._cancel_workflow,
                    methods=["POST"],
                ),
            ]
        )

    def _denied(self, request: Request) -> Response | None:
        auth = request.headers.get("authorization", "")
        self.requests.append(
            {"method": request.method, "path": request.url.path, "authorization": auth}
        )
        with self._lock:
            if self.outage > 0:
                self.outage -= 1
                return Response("<html><body>502 Bad Gateway</body></html>", 502)
        if auth != f"Bearer {self.token}":
            return JSONResponse({"detail": "Authentication credentials were not provided."}, 401)
        return None

    def _template_of(self, request: Request) -> FakeTemplate | Response:
        """The job template a request's path names, or AWX's answer refusing it (401, 404)."""
        if denied := self._denied(request):
            return denied
        template = self.templates.get(request.path_params["id"])
        return self._not_found() if template is None else template

    @staticmethod
    def _not_found() -> Response:
        return JSONResponse({"detail": "Not found."}, 404)

    def _page(self, request: Request, items: list[dict[str, Any]]) -> Response:
        page = int(request.query_params.get("page", "1"))
        size = min(int(request.query_params.get("page_size", "25")), self.page_size)
        chunk = items[(page - 1) * size : page * size]
        more = page * size < len(items)
        query = {**request.query_params, "page": str(page + 1)}
        link = f"{request.url.path}?{urlencode(query)}" if more else None
        if link and self.absolute_next:
            link = f"http://awx-internal.invalid:8052{link}"
        return JSONResponse({"count": len(items), "next": link, "previous": None, "results": chunk})

    async def _templates(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        name = request.query_params.get("name")
        found = [
            {
                "id": t.id,
                "name": t.name,
                "project": t.project,
                "playbook": t.playbook,
                "skip_tags": t.skip_tags,
                "start_at_task": t.start_at_task,
                "job_slice_count": t.job_slice_count,
            }
            for t in self.templates.values()
            if name is None or t.name == name or not self.filters_names
        ]
        return self._page(request, found)

    async def _launch(self, request: Request) -> Response:
        template = self._template_of(request)
        if isinstance(template, Response):
            return template
        if request.method == "GET":  # reading the launch page needs only read access
            body = {f"ask_{a}_on_launch": a in template.asks for a in ASKS}
            body.update(variables_needed_to_start=[], passwords_needed_to_start=[])
            return JSONResponse(body)
        if template.forbidden:  # no Execute role on the template
            return JSONResponse(
                {"detail": "You do not have permission to perform this action."}, 403
            )
        asked = await request.json()
        accepted: dict[str, Any] = {}
        ignored: dict[str, Any] = {}
        for key, value in asked.items():
            ask = _FIELD_ASK.get(key)
            if ask is None:
                continue
            taken = ask in template.asks and ask not in template.ignores
            (accepted if taken else ignored)[key] = value
        if "scm_branch" in accepted and not self.allow_override:
            return JSONResponse({"scm_branch": ["Project does not allow override of branch."]}, 400)
        raw_vars = accepted.get("extra_vars") or "{}"
        try:
            extra = json.loads(raw_vars) if isinstance(raw_vars, str) else raw_vars
        except ValueError:
            try:
                extra = yaml.safe_load(raw_vars)
            except yaml.YAMLError as exc:
                return JSONResponse(
                    {"extra_vars": [f"Cannot parse as JSON or YAML (error: {exc})."]}, 400
                )
        if template.job_slice_count > 1:  # AWX launches a workflow of slices instead
            with self._lock:
                self.workflow_jobs.append(len(self.workflow_jobs) + 1)
                workflow = self.workflow_jobs[-1]
            return JSONResponse(
                {"workflow_job": workflow, "ignored_fields": ignored, "id": workflow}, 201
            )
        gateway = Response("<html><body>504 Gateway Time-out</body></html>", 504)
        with self._lock:
            lost, self.lose_launch = self.lose_launch, None
            if lost is not None:
                self.outage = self.lost_outage
            if lost == "before":
                return gateway
            job = FakeJob(id=len(self.jobs) + 1, template=template, launch=asked)
            job.launch = {**accepted, "extra_vars": extra}
            self.jobs[job.id] = job
        if lost == "after":
            return gateway
        return JSONResponse({"job": job.id, "ignored_fields": ignored, **self._job_body(job)}, 201)

    async def _template_jobs(self, request: Request) -> Response:
        template = self._template_of(request)
        if isinstance(template, Response):
            return template
        if any(key.startswith("extra_vars") for key in request.query_params):
            return JSONResponse({"detail": "Filtering on extra_vars is not allowed."}, 403)
        jobs = [j for j in self.jobs.values() if j.template is template]
        if request.query_params.get("order_by") == "-id":
            jobs.reverse()
        items = [
            {**self._job_body(j), "extra_vars": json.dumps(j.launch.get("extra_vars") or {})}
            for j in jobs
        ]
        return self._page(request, items)

    async def _update(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        if self.manual_project:
            return JSONResponse({"detail": 'Method "POST" not allowed.'}, 405)
        number = len(self.project_updates) + 1
        self.project_updates[number] = 0
        return JSONResponse({"project_update": number, "id": number, "status": "pending"}, 202)

    async def _project_update(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        number = request.path_params["id"]
        if number not in self.project_updates:
            return self._not_found()
        self.project_updates[number] += 1
        status = "successful" if self.project_updates[number] > 1 else "running"
        return JSONResponse({"id": number, "status": status, "failed": False})

    def _job_body(self, job: FakeJob) -> dict[str, Any]:
        finished = job.status in ("successful", "failed", "error", "canceled")
        return {
            "id": job.id,
            "type": "job",
            "status": job.status,
            "failed": job.status in ("failed", "error"),
            "job_explanation": job.explanation,
            "result_traceback": "",
            "scm_revision": job.scm_revision,
            "event_processing_finished": finished and job.finished_polls > 1,
            "job_type": job.launch.get("job_type", "run"),
            "limit": job.launch.get("limit", ""),
        }

    async def _job(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        job = self.jobs.get(request.path_params["id"])
        if job is None:
            return self._not_found()
        self._advance(job)
        return JSONResponse(self._job_body(job))

    def _advance(self, job: FakeJob) -> None:
        """One poll of the job: its status lags a step at a time; a cancel shows now."""
        with self._lock:
            job.polls += 1
            if job.status in ("successful", "failed", "error", "canceled"):
                job.finished_polls += 1
                if job.finished_polls > 1:
                    job.visible = len(job.events)
                return
            job.visible = max(job.visible, len(job.events) - self.event_lag * 3)
            if job.cancel_asked:
                job.cancel_polls += 1
                if self.cancel_polls is not None and job.cancel_polls >= self.cancel_polls:
                    job.status, job.explanation = "canceled", "Job was canceled"
                    job.done.set()
                return
            if job.status == "pending" and self._blocked(job):
                return
            order = ["new", "pending", "waiting", "running"]
            if job.status != "running":
                job.status = order[order.index(job.status) + 1]
                if job.status == "running" and not job.template.hang:
                    threading.Thread(target=self._run, args=(job,), daemon=True).start()
                if job.status == "running" and self.outage_when_running:
                    self.outage, self.outage_when_running = self.outage_when_running, 0
                return
            if job.done.is_set() and job.result is not None:
                job.status = job.result

    def _blocked(self, job: FakeJob) -> bool:
        """Whether an earlier job of the template, not finished, keeps this one pending."""
        if job.template.allow_simultaneous:
            return False
        return any(
            other.template is job.template
            and other.id < job.id
            and other.status not in ("successful", "failed", "error", "canceled")
            for other in self.jobs.values()
        )

    async def _events(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        job = self.jobs.get(request.path_params["id"])
        if job is None:
            return self._not_found()
        after = int(request.query_params.get("counter__gt", "0"))
        listed = job.events[: job.visible]
        if self.out_of_order and job.status not in ("successful", "failed", "error", "canceled"):
            listed = listed[:-2] + listed[-1:]  # the last but one is not saved yet
        items = [e for e in listed if e["counter"] > after]
        return self._page(request, items)

    async def _summaries(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        job = self.jobs.get(request.path_params["id"])
        if job is None:
            return self._not_found()
        rows = [{"host_name": h, **s} for h, s in sorted(job.summaries.items())]
        return self._page(request, rows)

    async def _cancel(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        job = self.jobs.get(request.path_params["id"])
        if job is None:
            return self._not_found()
        finished = job.status in ("successful", "failed", "error", "canceled")
        if request.method == "GET":
            return JSONResponse({"can_cancel": not finished})
        if finished:
            return JSONResponse({"detail": 'Method "POST" not allowed.'}, 405)
        if self.cancel_denied:
            return JSONResponse(
                {"detail": "You do not have permission to perform this action."}, 403
            )
        if self.finish_on_cancel:  # it finished first: the cancel finds nothing to stop
            revision = self._revision(job)
            with self._lock:
                job.status, job.result, job.scm_revision = "successful", "successful", revision
                job.done.set()
            return JSONResponse({"detail": 'Method "POST" not allowed.'}, 405)
        job.cancel_asked = True
        return Response(status_code=202)

    async def _cancel_workflow(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        workflow = request.path_params["id"]
        if workflow not in self.workflow_jobs:
            return self._not_found()
        self.workflow_canceled.append(workflow)
        return Response(status_code=202)

    async def _settings(self, request: Request) -> Response:
        if denied := self._denied(request):
            return denied
        if not self.settings_readable:
            return JSONResponse(
                {"detail": "You do not have permission to perform this action."}, 403
            )
        return JSONResponse({"ALLOW_JINJA_IN_EXTRA_VARS": self.allow_jinja})

    # -- running a job -----------------------------------------------------------------------
    def _revision(self, job: FakeJob) -> str:
        """The commit the job's ``scm_branch`` names (AWX's ``scm_revision``)."""
        branch = str(job.launch.get("scm_branch") or "main")
        return subprocess.run(
            ["git", "-C", str(self.repo), "rev-parse", "--verify", f"{branch}^{{commit}}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    def _run(self, job: FakeJob) -> None:
        import ansible_runner

        result = "failed"
        early = next((e for e in self.ends_early if e[2](job.launch)), None)
        if early is not None:
            self.ends_early.remove(early)
            job.explanation = early[1]
            job.result = early[0]
            job.done.set()
            return
        try:
            with tempfile.TemporaryDirectory(prefix="fake-awx-") as scratch:
                tree, data = Path(scratch) / "project", Path(scratch) / "data"
                tree.mkdir()
                data.mkdir()
                job.scm_revision = self._revision(job)
                archive = subprocess.run(
                    ["git", "-C", str(self.repo), "archive", job.scm_revision],
                    capture_output=True,
                    check=True,
                ).stdout
                subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
                for host, variables, when in self.host_vars:
                    if when(job.launch):
                        found = tree / self.inventory / "host_vars" / f"{host}.yml"
                        found.parent.mkdir(parents=True, exist_ok=True)
                        had = yaml.safe_load(found.read_text()) if found.exists() else {}
                        found.write_text(yaml.safe_dump({**(had or {}), **variables}))
                extra = data / "extravars.yml"
                extra.write_text(
                    yaml.dump(job.launch.get("extra_vars") or {}, Dumper=_UnsafeDumper)
                )
                args = ["-i", str(tree / self.inventory), "-e", f"@{extra}"]
                if job.launch.get("job_type") == "check":
                    args.append("--check")
                if job.launch.get("diff_mode"):
                    args.append("--diff")
                if job.launch.get("job_tags"):
                    args += ["--tags", str(job.launch["job_tags"])]
                if job.template.skip_tags:
                    args += ["--skip-tags", job.template.skip_tags]
                if job.template.start_at_task:
                    args += ["--start-at-task", job.template.start_at_task]

                def keep(raw: dict[str, Any]) -> bool:
                    data_ = raw.get("event_data") or {}
                    job.events.append(
                        {
                            "id": len(job.events) + 1000,
                            "type": "job_event",
                            "job": job.id,
                            "event": raw.get("event"),
                            "counter": raw.get("counter"),
                            "uuid": raw.get("uuid"),
                            "created": raw.get("created"),
                            "stdout": raw.get("stdout", ""),
                            "host_name": data_.get("host", ""),
                            "event_data": data_,
                        }
                    )
                    return False

                runner = ansible_runner.run(
                    private_data_dir=str(data),
                    project_dir=str(tree),
                    playbook=job.template.playbook,
                    cmdline=" ".join(args),
                    limit=str(job.launch.get("limit") or "") or None,
                    # as AWX runs a job: from the project's checkout, with nothing of Terry's
                    # environment (the roles are found by the repository's ansible.cfg)
                    envvars={
                        "ANSIBLE_NOCOLOR": "1",
                        "PATH": os.pathsep.join(
                            [str(Path(sys.executable).parent), os.environ.get("PATH", "")]
                        ),
                    },
                    event_handler=keep,
                    cancel_callback=lambda: job.cancel_asked,
                    quiet=True,
                )
                stats = runner.stats or {}
                for key, name in (
                    ("ok", "ok"),
                    ("changed", "changed"),
                    ("failures", "failures"),
                    ("dark", "dark"),
                    ("skipped", "skipped"),
                ):
                    for host, count in (stats.get(key) or {}).items():
                        job.summaries.setdefault(
                            host, {"ok": 0, "changed": 0, "failures": 0, "dark": 0, "skipped": 0}
                        )[name] = count
                result = {"successful": "successful", "canceled": "canceled"}.get(
                    runner.status, "failed"
                )
        except subprocess.CalledProcessError as exc:
            job.explanation = f"Project sync failed: {exc}"
            result = "error"
        finally:
            job.result = result
            job.done.set()
