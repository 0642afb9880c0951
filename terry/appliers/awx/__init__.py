"""The AWX applier: a proposal's playbook run as an AWX / Ansible Automation Platform job.

For fleets one controller does not run comfortably, inventory hosts labelled
``terry_applier: awx`` get the same playbook remedies as Ansible's, carried by AWX
(docs/awx.md). Each run is one job of the remedy's job template (``awx.job_template``,
``terry-{remedy}`` by default, or ``awx.job_templates``), launched with what this run needs:

- ``scm_branch`` = the commit (the proposal commit for the dry run, its merge on main after),
  after a project update, so AWX runs exactly what was reviewed; the job's ``scm_revision``
  must be that commit, or the run fails;
- ``limit`` = the proposal's hosts, ``job_type`` = ``check`` for the dry run (``run``
  otherwise), ``diff_mode`` on, ``job_tags`` as the ansible applier's ``--tags``;
- ``extra_vars`` = the proposal's vars file read from the commit, plus ``terry_playbook``:
  the template runs ``playbooks/terry-awx.yml``, which checks each host's identity and
  imports the proposal's playbook named by it.

Extra vars are sent as JSON: AWX parses them with ``yaml.safe_load`` (an ``!unsafe`` tag is
refused with 400) and marks every launch-time value ``!unsafe`` itself when it writes them
for ansible, unless its ``ALLOW_JINJA_IN_EXTRA_VARS`` setting is ``always``. So Terry reads
that setting first: ``always`` refuses the run; a setting the token may not read refuses only
values that hold Jinja markers.

A template that does not prompt on launch for a field Terry sets would silently ignore it
(AWX lists it in ``ignored_fields`` and runs the template's own: a dry run would change
hosts), so the launch endpoint's ``ask_*_on_launch`` are read first and such a template is
refused, naming the fields; should AWX still ignore one, the job is canceled at once.

The job's status is polled (pending, waiting, running, then successful, failed, error or
canceled) and its events are read as they come (``counter`` above the last one with none
missing before it, every page: AWX may save 7 before 6) into ``RunnerEvent``s, the very
events ansible-runner makes; events saved late are waited for until
``event_processing_finished`` (or ``awx.events_grace``). Per-host stats come from
``job_host_summaries``. A job still running at ``awx.timeout`` is canceled
(``POST /jobs/{id}/cancel/``, which takes effect a little later) and the run is a timeout.
A launched job's id is recorded with its run (``Job.on_remote``): should Terry die, the
next look at what dead processes left cancels it (``stop_remote``) before its hosts are freed.
A job that cannot be launched raises ``AWXError``, like ansible-runner that cannot start.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import yaml

from terry.appliers.awx.client import AWXClient, AWXError, JobState, Template
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
from terry.config import AWXConfig
from terry.jsonable import strings_in
from terry.redact import process_redactor

if TYPE_CHECKING:
    from terry.context import Context
    from terry.gitops.repo import Repo

__all__ = ["AWXApplier", "AWXClient", "AWXError", "build", "extra_vars"]

_STATUS = {
    "successful": RunStatus.SUCCESSFUL,
    "failed": RunStatus.FAILED,
    "error": RunStatus.ERROR,
    "canceled": RunStatus.CANCELED,
}
_JINJA = re.compile(r"\{\{|\{%|\{#")
_PLAYBOOK_NAME = re.compile(r"^\d+-(?P<remedy>[A-Za-z0-9][A-Za-z0-9_.-]*)\.ya?ml$")
# How long a cancel may take to show before Terry stops waiting for it.
_CANCEL_WAIT = 30.0


class _VarsLoader(yaml.SafeLoader):
    """Reads Terry's vars file: ``!unsafe`` strings as plain strings (AWX re-marks them)."""


_VarsLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def extra_vars(text: str) -> dict[str, Any]:
    """A proposal's vars file as the mapping sent to AWX."""
    data = yaml.load(text, Loader=_VarsLoader) or {}  # a SafeLoader: only !unsafe added
    if not isinstance(data, dict):
        raise AWXError("the proposal's vars file is not a mapping")
    return data


def remedy_of(playbook: str) -> str:
    """The remedy a rendered playbook is of (``playbooks/remediations/00007-<remedy>.yml``)."""
    found = _PLAYBOOK_NAME.match(posixpath.basename(playbook))
    if found is None:
        raise AWXError(f"{playbook!r} is not a playbook Terry rendered")
    return found.group("remedy")


@dataclass(frozen=True)
class _Launch:
    template: Template
    body: dict[str, Any]


class AWXApplier:
    """One AWX job per run, waited on and read into a ``RunResult``."""

    name = "awx"
    check_words = "an AWX check job (job_type=check, diff)"

    def __init__(
        self,
        client: AWXClient,
        config: AWXConfig,
        *,
        repo: Repo,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        share: Share | None = None,
        say: Callable[[int | None, str], None] | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.repo = repo
        self._share = share
        self._clock = clock
        self._sleep = sleep
        self._say = say

    # -- the applier protocol ----------------------------------------------------------------
    def check(self, job: Job, on_event: OnEvent) -> RunResult:
        if self._share is not None and job.branch is not None:
            self._share.share_branch(job.branch)  # AWX fetches it from where it is shared
        return self._run(job, on_event, check=True, tags=("apply",))

    def apply(self, job: Job, on_event: OnEvent) -> RunResult:
        return self._run(job, on_event, tags=("apply",))

    def verify(self, job: Job, on_event: OnEvent) -> RunResult:
        return self._run(job, on_event, tags=("verify",))

    def rollback(self, job: Job, on_event: OnEvent) -> RunResult:
        return self._run(job, on_event, tags=("rollback",))

    # -- one job -----------------------------------------------------------------------------
    def template_name(self, remedy: str) -> str:
        return self.config.job_templates.get(remedy) or self.config.job_template.replace(
            "{remedy}", remedy
        )

    def _prepare(self, job: Job, *, check: bool, tags: tuple[str, ...]) -> _Launch:
        """The template and the launch body, or ``AWXError`` saying why AWX must not run it."""
        if job.playbook is None:
            raise AWXError(f"proposal {job.proposal_id} has no playbook to run")
        template = self.client.template(self.template_name(remedy_of(job.playbook)))
        prompts = self.client.prompts(template.id)
        wanted = {"limit", "job_type", "diff_mode", "variables", "scm_branch", "tags"}
        if missing := sorted(wanted - prompts.asks):
            raise AWXError(
                f"job template {template.name!r} does not prompt on launch for "
                f"{', '.join(missing)}: AWX would ignore what Terry sets and run the "
                "template's own (tick 'Prompt on launch' for them; docs/awx.md)"
            )
        if prompts.passwords_needed:
            raise AWXError(
                f"job template {template.name!r} asks for passwords at launch "
                f"({', '.join(prompts.passwords_needed)}), which Terry cannot give"
            )
        if prompts.variables_needed:
            raise AWXError(
                f"job template {template.name!r} has a survey that requires "
                f"{', '.join(prompts.variables_needed)}: Terry's jobs take no survey"
            )
        variables: dict[str, Any] = {}
        if job.vars_path:
            variables = extra_vars(self.repo.read_text(job.commit, job.vars_path) or "{}")
        entry_dir = posixpath.dirname(template.playbook) or "."
        variables["terry_playbook"] = posixpath.relpath(job.playbook, entry_dir)
        self._guard_jinja(variables, template)
        body = {
            "limit": ":".join(job.hosts),
            "job_type": "check" if check else "run",
            "diff_mode": True,
            "scm_branch": job.commit,
            "job_tags": ",".join(tags),
            "extra_vars": json.dumps(variables, sort_keys=True),
        }
        return _Launch(template, body)

    def _guard_jinja(self, variables: dict[str, Any], template: Template) -> None:
        """AWX marks launch-time extra vars ``!unsafe`` unless ALLOW_JINJA_IN_EXTRA_VARS is
        ``always``; when Terry may not read the setting, values with Jinja markers wait."""
        allowed = self.client.setting("jobs", "ALLOW_JINJA_IN_EXTRA_VARS")
        if allowed == "always":
            raise AWXError(
                "AWX's ALLOW_JINJA_IN_EXTRA_VARS is 'always': launch-time extra vars would "
                "be templated by Ansible, so Terry runs nothing through it (set it to "
                "'template' or 'never')"
            )
        if allowed is None and any(_JINJA.search(s) for s in strings_in(variables)):
            raise AWXError(
                f"a parameter for {template.name!r} holds Jinja markers and Terry cannot read "
                "AWX's ALLOW_JINJA_IN_EXTRA_VARS to know they stay data (give the token "
                "read access to /api/v2/settings/jobs/)"
            )

    def _sync_project(self, job: Job, template: Template, deadline: float) -> None:
        if not self.config.update_project or template.project is None:
            return
        update = self.client.update_project(template.project)
        while True:
            state = self.client.project_update(update)
            if state.finished:
                break
            if self._clock() >= deadline:
                raise AWXError(f"AWX's project update {update} did not finish in time")
            self._sleep(self.config.poll_interval)
        if state.status != "successful":
            raise AWXError(
                f"AWX's project update {update} ended {state.status}"
                + (f": {state.explanation}" if state.explanation else "")
            )
        if self._say is not None:
            self._say(job.proposal_id, f"AWX project {template.project} updated")

    def _run(
        self, job: Job, on_event: OnEvent, *, check: bool = False, tags: tuple[str, ...] = ()
    ) -> RunResult:
        started = self._clock()
        deadline = started + self.config.timeout
        launch = self._prepare(job, check=check, tags=tags)
        self._sync_project(job, launch.template, deadline)
        job_id, ignored = self.client.launch(launch.template.id, launch.body)
        if job.on_remote is not None:
            job.on_remote(f"{self.name}:{job_id}")
        stream = _Stream(self.client, job_id, on_event)
        if ignored:
            self._ignored(job_id, launch, sorted(ignored), stream, deadline)
        if self._say is not None:
            self._say(job.proposal_id, f"AWX job {job_id} ({launch.template.name}) launched")
        stream.note(
            "awx_job",
            EventStatus.OK,
            f"AWX job {job_id} of {launch.template.name!r} at {self.client.url}/#/jobs/"
            f"playbook/{job_id} (scm_branch {job.commit[:12]}, limit {launch.body['limit']})",
        )
        try:
            state, timed_out = self._wait(job_id, stream, deadline)
        except BaseException:  # Ctrl-C, the process told to exit: the job must not go on
            with contextlib.suppress(Exception):
                self.client.cancel(job_id)
            raise
        grace = self._clock() + self.config.events_grace
        while state.finished and not state.events_done and self._clock() < grace:
            self._sleep(self.config.poll_interval)
            stream.read()
            state = self.client.job(job_id)
        stream.read()
        status = RunStatus.TIMEOUT if timed_out else _STATUS.get(state.status, RunStatus.ERROR)
        if timed_out:
            stream.note(
                "awx_job",
                EventStatus.FAILED,
                f"the job did not finish within {self.config.timeout:.0f} s; Terry canceled "
                f"it (AWX says {state.status})",
            )
        elif state.status != "successful" and state.explanation:
            stream.note("awx_job", EventStatus.FAILED, f"job {state.status}: {state.explanation}")
        if state.finished and not state.events_done:
            stream.note(
                "awx_job",
                None,
                f"AWX had not saved all of the job's events {self.config.events_grace:.0f} s "
                "after it finished; these are the ones it had",
            )
        if status is RunStatus.SUCCESSFUL and state.scm_revision != job.commit:
            stream.note(
                "awx_job",
                EventStatus.FAILED,
                f"AWX ran revision {state.scm_revision[:12] or '(none)'}, not "
                f"{job.commit[:12]}: its project cannot fetch that commit",
            )
            status = RunStatus.FAILED
        stats = _summaries(self.client.host_summaries(job_id)) or _counted(stream.events)
        return RunResult(
            status=status,
            rc=0 if status is RunStatus.SUCCESSFUL else 1,
            stats=stats,
            events=tuple(stream.events),
            artifact_dir=None,
            ansible_seconds=self._clock() - started,
        )

    def _ignored(
        self, job_id: int, launch: _Launch, ignored: list[str], stream: _Stream, deadline: float
    ) -> NoReturn:
        """AWX launched the job without some of what Terry set (``ignored_fields``: a limit
        it dropped runs the playbook on the whole inventory). Cancel it, wait for it to end
        with its events in the run (what it did, on which hosts), and say which it was:
        canceled in time, or ran as AWX launched it."""
        said = (
            f"AWX ignored {', '.join(ignored)} for job {job_id} of {launch.template.name!r} "
            f"(Terry asked limit {launch.body['limit']})"
        )
        stream.note("awx_job", EventStatus.FAILED, said)
        refused = ""
        try:
            canceled = self.client.cancel(job_id)
        except AWXError as exc:
            canceled, refused = False, f" (AWX refused the cancel: {exc})"
        state, _timed_out = self._wait(job_id, stream, deadline)
        stream.read()
        ran = sorted({e.host for e in stream.events if e.host})
        where = f"; it reached {', '.join(ran)}" if ran else ""
        if canceled and state.status == "canceled":
            told = f"{said}; Terry canceled the job{where}"
        else:
            told = (
                f"{said}; the job could not be canceled{refused} and ended {state.status}"
                f"{where or ''}: it ran as AWX launched it, without what it ignored (see "
                f"the run's events and AWX job {job_id})"
            )
        stream.note("awx_job", EventStatus.FAILED, told)
        raise AWXError(told)

    def stop_remote(self, ref: str) -> bool:
        """A job whose Terry died (``runs.remote``, ``awx:<job id>``): canceled, and whether it
        has ended (canceled now, had finished, or is gone: AWX deletes finished jobs only).
        A cancel that does not show within a little while: False; AWX's refusal (403) or an
        outage raises: either way the hosts stay held and the next look asks again."""
        if not ref.isdigit():
            return False
        job_id = int(ref)
        try:
            state = self.client.job(job_id)
        except AWXError as exc:
            if exc.status == 404:  # AWX deletes only jobs that have finished
                return True
            raise
        if not state.finished:
            self.client.cancel(job_id)
            give_up = self._clock() + _CANCEL_WAIT
            while not state.finished and self._clock() < give_up:
                self._sleep(self.config.poll_interval)
                state = self.client.job(job_id)
        if self._say is not None:
            self._say(None, f"AWX job {job_id} of a run whose Terry died: {state.status}")
        return state.finished

    def _wait(self, job_id: int, stream: _Stream, deadline: float) -> tuple[JobState, bool]:
        """Poll until the job finishes, reading events as they come; at the deadline cancel
        it and wait (a little) for the cancel to show. (last state, timed out)."""
        while True:
            state = self.client.job(job_id)
            stream.read()
            if state.finished:
                return state, False
            if self._clock() >= deadline:
                break
            self._sleep(self.config.poll_interval)
        if self._say is not None:
            self._say(None, f"AWX job {job_id} still {state.status} at the timeout: canceling")
        self.client.cancel(job_id)
        give_up = self._clock() + _CANCEL_WAIT
        while not state.finished and self._clock() < give_up:
            self._sleep(self.config.poll_interval)
            state = self.client.job(job_id)
            stream.read()
        return state, True


class _Stream:
    """A job's events as ``RunnerEvent``s, read page by page after the last counter below
    which none is missing: AWX's dispatcher saves events in batches from several workers, so
    while a job runs counter 7 may be listed before 6 is (the counters have no gap only once
    ``event_processing_finished``); each counter is taken once."""

    def __init__(self, client: AWXClient, job_id: int, on_event: OnEvent) -> None:
        self.client = client
        self.job_id = job_id
        self.on_event = on_event
        self.events: list[RunnerEvent] = []
        self.seen: set[int] = set()
        self.floor = 0  # every counter up to this one has been read
        self._redact = process_redactor()

    def read(self) -> None:
        new: dict[int, dict[str, Any]] = {}
        for raw in self.client.events(self.job_id, after=self.floor):
            try:
                counter = int(raw.get("counter") or 0)
            except (TypeError, ValueError):
                continue
            if counter > self.floor and counter not in self.seen:
                new[counter] = raw  # else read before: a page that shifted, a gap's neighbour
        for counter, raw in sorted(new.items()):
            self.seen.add(counter)
            data = dict(raw.get("event_data") or {})
            data.setdefault("host", raw.get("host_name") or None)
            kept = {
                k: raw.get(k)
                for k in ("event", "counter", "uuid", "created", "stdout", "host_name")
                if k in raw
            }
            kept["event_data"] = data
            self._add(RunnerEvent.from_runner(self._redact.scrub(kept) if self._redact else kept))
        while self.floor + 1 in self.seen:
            self.floor += 1
            self.seen.discard(self.floor)

    def note(self, event: str, status: EventStatus | None, message: str) -> None:
        """Terry's own line in the run (the job's link, a timeout), after AWX's events."""
        seq = max((e.seq for e in self.events), default=0) + 1
        raw = {"event": event, "counter": seq, "message": message}
        item = RunnerEvent(seq, event, None, "AWX job", "awx.job", status, message, (), raw)
        self._add(item)

    def _add(self, event: RunnerEvent) -> None:
        self.events.append(event)
        self.on_event(event)


def _summaries(rows: list[dict[str, Any]]) -> dict[str, HostStats]:
    return {
        str(r.get("host_name")): HostStats(
            ok=int(r.get("ok") or 0),
            changed=int(r.get("changed") or 0),
            failures=int(r.get("failures") or 0),
            unreachable=int(r.get("dark") or 0),
            skipped=int(r.get("skipped") or 0),
        )
        for r in rows
        if r.get("host_name")
    }


def _counted(events: list[RunnerEvent]) -> dict[str, HostStats]:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    names = {
        EventStatus.OK: "ok",
        EventStatus.IGNORED: "ok",
        EventStatus.CHANGED: "changed",
        EventStatus.FAILED: "failures",
        EventStatus.UNREACHABLE: "unreachable",
        EventStatus.SKIPPED: "skipped",
    }
    for event in events:
        if event.host is not None and event.status is not None:
            counts[event.host][names[event.status]] += 1
    return {host: HostStats(**fields) for host, fields in counts.items()}


def build(ctx: Context, share: Share) -> AWXApplier:
    config = ctx.config.awx
    if not config.url:
        raise AWXError("awx.url is not configured (terry.yml or TERRY_AWX_URL)")
    client = AWXClient(
        config.url,
        os.environ.get(config.token_env) or None,
        verify_tls=config.verify_tls,
        timeout=config.request_timeout,
        retries=config.retries,
    )
    return AWXApplier(client, config, repo=ctx.repo, share=share, say=ctx.reporter.step)
