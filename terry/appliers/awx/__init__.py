"""The AWX applier: a proposal's playbook run as an AWX / Ansible Automation Platform job.

For fleets one controller does not run comfortably, inventory hosts labelled
``terry_applier: awx`` get the same playbook remedies as Ansible's, carried by AWX
(docs/awx.md). Each run is one job of the remedy's job template (``awx.job_template``,
``terry-{remedy}`` by default, or ``awx.job_templates``), launched with what this run needs:

- ``scm_branch`` = the commit (the proposal commit for the dry run, its merge on main after):
  AWX syncs a job whose branch differs from its project's into the job's own checkout, so
  it runs exactly what was reviewed; the job's ``scm_revision`` must be that commit, or the
  run fails. The project update before it (``awx.update_project``) syncs the project's own
  branch: it keeps the project current and clears a failed last update, which makes AWX
  refuse every job of the project;
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
refused, naming the fields; should AWX still ignore one, the job is canceled at once. So
is a template whose own ``skip_tags``, ``start_at_task`` or job slicing AWX would apply
unprompted.

The job's status is polled (pending, waiting, running, then successful, failed, error or
canceled) and its events are read as they come (``counter`` above the last one with none
missing before it, every page: AWX may save 7 before 6) into ``RunnerEvent``s, the very
events ansible-runner makes; events saved late are waited for until
``event_processing_finished`` (or ``awx.events_grace``). Per-host stats come from
``job_host_summaries``. AWX not answering a look says nothing of the job: it is asked
again. A job still running at ``awx.timeout`` is canceled (``POST /jobs/{id}/cancel/``,
which takes effect a little later) and the run is a timeout; one that finished as the
cancel came is what it ended as. A launched job's id is recorded with its run
(``Job.on_remote``): should Terry die, the next look at what dead processes left cancels it
(``stop_remote``) before its hosts are freed; a canceled job not seen ended within
``awx.cancel_wait`` is handed to that same look (``RunGoesOn``), its hosts held till then.
A launch whose answer was lost is never sent again: its job is found by the launch's own
mark (the ``terry_launch`` extra var) among the template's newest, or said not to exist;
AWX not answering that search is handed to recovery the same way.
A job that cannot be launched raises ``AWXError``, like ansible-runner that cannot start.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import yaml

from terry.appliers.awx.client import AWXClient, AWXError, JobState, LaunchLost, Template
from terry.appliers.base import (
    EventStatus,
    HostStats,
    Job,
    OnEvent,
    RunnerEvent,
    RunResult,
    RunStatus,
    Share,
    host_pattern,
    identity_refused,
)
from terry.config import AWXConfig
from terry.errors import RunGoesOn
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
# The first play of the templates' entry playbook (playbooks/terry-awx.yml), and what a host
# in it stops the whole job with (its any_errors_fatal).
PROBE_PLAY = "Terry identity probe"
_PROBE_TROUBLE = (EventStatus.FAILED, EventStatus.UNREACHABLE)
_PLAYBOOK_NAME = re.compile(r"^\d+-(?P<remedy>[A-Za-z0-9][A-Za-z0-9_.-]*)\.ya?ml$")
# How long recovery waits for a dead run's cancel to show before it looks again later.
_STOP_WAIT = 30.0
# The extra var every launch carries, unique to it: a launch whose answer was lost is found
# by it among its template's jobs (AWX lets no one filter on extra vars).
MARK = "terry_launch"
_LOST_LAUNCH = re.compile(r"launch-(?P<template>\d+)-(?P<mark>[0-9a-f]{32})")


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
    mark: str  # this launch's own ``terry_launch`` extra var: how a lost answer's job is found


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
        if not job.hosts:  # an empty limit is no limit: AWX would run on its whole inventory
            raise AWXError(f"proposal {job.proposal_id} names no host to run on")
        template = self.client.template(self.template_name(remedy_of(job.playbook)))
        _refuse_own_settings(template)
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
        if job.recheck:  # the ansible applier's TERRY_RECHECK: AWX sets no env per launch
            variables["terry_recheck"] = True
        mark = uuid.uuid4().hex
        variables[MARK] = mark
        self._guard_jinja(variables, template)
        body = {
            "limit": host_pattern(job.hosts),
            "job_type": "check" if check else "run",
            "diff_mode": True,
            "scm_branch": job.commit,
            "job_tags": ",".join(tags),
            "extra_vars": _json(variables, job),
        }
        return _Launch(template, body, mark)

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
                "AWX's ALLOW_JINJA_IN_EXTRA_VARS to know they stay data (AWX shows "
                "/api/v2/settings/jobs/ to superusers and system auditors only: make the "
                "token's user a System Auditor)"
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
        lost: str | None = None
        try:
            job_id, ignored = self.client.launch(launch.template.id, launch.body)
        except LaunchLost as exc:
            job_id, ignored, lost = self._find_launched(job, launch, exc), {}, str(exc)
        if job.on_remote is not None:
            job.on_remote(f"{self.name}:{job_id}")
        stream = _Stream(self.client, job_id, on_event)
        if lost is not None:
            stream.note(
                "awx_job",
                None,
                f"AWX's answer to the launch was lost ({lost}); Terry found the job it started, "
                f"{job_id}, by this launch's {MARK} {launch.mark}",
            )
        if ignored:
            self._ignored(job_id, launch, sorted(ignored), stream, deadline)
        if self._say is not None:
            self._say(job.proposal_id, f"AWX job {job_id} ({launch.template.name}) launched")
        stream.note(
            "awx_job",
            EventStatus.OK,
            f"AWX job {job_id} of {launch.template.name!r} at {self.client.job_link(job_id)} "
            f"(scm_branch {job.commit[:12]}, limit {launch.body['limit']})",
        )
        try:
            state, timed_out = self._wait(job_id, stream, deadline)
        except RunGoesOn:
            raise  # canceled already; its hosts stay held for recovery
        except BaseException:  # Ctrl-C, the process told to exit: the job must not go on
            with contextlib.suppress(Exception):
                self.client.cancel(job_id)
            raise
        grace = self._clock() + self.config.events_grace
        while not state.events_done and self._clock() < grace:
            self._sleep(self.config.poll_interval)
            state = self._look(job_id, stream) or state
        stream.read_if_answered()
        status = RunStatus.TIMEOUT if timed_out else _STATUS.get(state.status, RunStatus.ERROR)
        if timed_out:
            stream.note(
                "awx_job",
                EventStatus.FAILED,
                f"the job did not finish within {self.config.timeout:.0f} s; Terry canceled "
                f"it (AWX says {state.status})" + _never_started(stream.before_cancel),
            )
        elif stream.before_cancel is not None:
            stream.note(
                "awx_job",
                EventStatus.FAILED if status is not RunStatus.SUCCESSFUL else None,
                f"the job ended {state.status} as Terry canceled it at the timeout "
                f"({self.config.timeout:.0f} s): the cancel came too late",
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
        if not timed_out and stream.before_cancel is None:
            _refuse_if_nothing_ran(job_id, state, stream.events)
        try:
            summaries = _summaries(self.client.host_summaries(job_id))
        except AWXError:  # AWX not answering now: the events say as much
            summaries = {}
        stats = summaries or _counted(stream.events)
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

    def _find_launched(self, job: Job, launch: _Launch, lost: LaunchLost) -> int:
        """The job a launch whose answer was lost started, found among its template's newest
        jobs by the launch's mark. Looked for until ``awx.cancel_wait`` has passed (AWX may
        still be working on a launch its gateway gave up on): none by then means none
        started (``AWXError``). AWX not answering the search all that time leaves it
        unknown: ``RunGoesOn``, the hosts held until recovery can look."""
        ref = f"{self.name}:launch-{launch.template.id}-{launch.mark}"
        if job.on_remote is not None:
            job.on_remote(ref)
        if self._say is not None:
            self._say(job.proposal_id, f"AWX's answer to the launch was lost ({lost}): looking")
        give_up = self._clock() + self.config.cancel_wait
        answered = False
        while True:
            try:
                found = self.client.launched_with(launch.template.id, MARK, launch.mark)
            except AWXError as exc:
                found, said = None, str(exc)
            else:
                answered, said = True, ""
            if found is not None:
                return found
            if self._clock() >= give_up:
                break
            self._sleep(self.config.poll_interval)
        if not answered:
            raise RunGoesOn(
                f"AWX's answer to the launch of {launch.template.name!r} was lost ({lost}) and "
                f"AWX did not answer Terry's search for the job within "
                f"{self.config.cancel_wait:.0f} s ({said}): a job with {MARK} {launch.mark} "
                "may run, so its hosts stay held until Terry can look ('terry serve' looks "
                "again, as does any wait for them)",
                remote=ref,
            )
        raise AWXError(
            f"AWX's answer to the launch of {launch.template.name!r} was lost ({lost}), and "
            f"none of its newest jobs carries this launch's {MARK} {launch.mark} after "
            f"{self.config.cancel_wait:.0f} s: no job started"
        )

    def stop_remote(self, ref: str) -> bool:
        """A job whose Terry died (``runs.remote``, ``awx:<job id>``): canceled, and whether it
        has ended (canceled now, had finished, or is gone: AWX deletes finished jobs only).
        A cancel that does not show within a little while: False; AWX's refusal (403) or an
        outage raises: either way the hosts stay held and the next look asks again.
        ``awx:launch-<template>-<mark>``, a launch whose answer was lost, is its job if one
        carries the mark, and has ended when none does."""
        if found := _LOST_LAUNCH.fullmatch(ref):
            job = self.client.launched_with(int(found["template"]), MARK, found["mark"])
            if job is None:
                return True
            ref = str(job)
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
            give_up = self._clock() + min(self.config.cancel_wait, _STOP_WAIT)
            while not state.finished and self._clock() < give_up:
                self._sleep(self.config.poll_interval)
                state = self.client.job(job_id)
        if self._say is not None:
            self._say(None, f"AWX job {job_id} of a run whose Terry died: {state.status}")
        return state.finished

    def _wait(self, job_id: int, stream: _Stream, deadline: float) -> tuple[JobState, bool]:
        """Poll until the job finishes, reading its events as they come; (last state,
        canceled by Terry).

        AWX not answering (a restart, an outage, a token refused) says nothing of the job:
        it is asked again until the deadline. At the deadline the job is canceled and
        waited for ``awx.cancel_wait``. A job then seen ended is what AWX says it is (a
        cancel that came too late leaves it successful or failed); one not seen ended may
        still change its hosts: ``RunGoesOn``, and its hosts stay held for recovery."""
        state = self._look(job_id, stream)
        while state is None or not state.finished:
            if self._clock() >= deadline:
                break
            self._sleep(self.config.poll_interval)
            state = self._look(job_id, stream) or state  # the last status AWX told
        else:
            return state, False
        stream.before_cancel = state.status if state is not None else "not answering"
        if self._say is not None:
            self._say(
                None, f"AWX job {job_id} still {stream.before_cancel} at the timeout: canceling"
            )
        asked = self._cancel(job_id)
        give_up = self._clock() + self.config.cancel_wait
        while (state is None or not state.finished) and self._clock() < give_up:
            self._sleep(self.config.poll_interval)
            if asked is None:
                asked = self._cancel(job_id)
            state = self._look(job_id, stream) or state
        if state is None or not state.finished:
            seen = state.status if state is not None else "AWX not answering"
            raise RunGoesOn(
                f"AWX job {job_id} did not show an end within {self.config.cancel_wait:.0f} s "
                f"of Terry's cancel at the timeout (last seen: {seen}"
                f"{'' if asked else '; the cancel was not accepted'}): it may still change "
                "its hosts, so they stay held until Terry sees it ended ('terry serve' looks "
                "again, as does any wait for them)",
                remote=f"{self.name}:{job_id}",
                events=tuple(stream.events),
            )
        return state, state.status == "canceled"

    def _look(self, job_id: int, stream: _Stream) -> JobState | None:
        """The job now, with its new events read; None when AWX did not answer (said once).
        A job AWX no longer has (404) has ended: AWX deletes finished jobs only."""
        try:
            state = self.client.job(job_id)
        except AWXError as exc:
            if exc.status == 404:
                raise AWXError(f"AWX job {job_id} is gone (404): its outcome is unknown") from exc
            stream.unanswered(exc)
            return None
        stream.read_if_answered()
        return state

    def _cancel(self, job_id: int) -> bool | None:
        """Ask AWX to cancel: True asked, False it had finished (405), None not answered."""
        try:
            return self.client.cancel(job_id)
        except AWXError as exc:
            if self._say is not None:
                self._say(None, f"AWX job {job_id}: the cancel was not accepted ({exc})")
            return None


def _refuse_own_settings(template: Template) -> None:
    """``AWXError`` for a template whose own settings AWX applies to every job, unprompted,
    and that change what a proposal's playbook does: ``skip_tags`` (``always`` skips the
    identity check; ``apply`` or ``verify`` a run that reports success having done nothing),
    ``start_at_task`` (the tasks before it, the identity check first, never run), and job
    slicing (a workflow of slices, not the one job Terry follows)."""
    own = []
    if template.skip_tags:
        own.append(f"skip tags {template.skip_tags!r}")
    if template.start_at_task:
        own.append(f"start at task {template.start_at_task!r}")
    if template.job_slice_count > 1:
        own.append(f"job slicing {template.job_slice_count}")
    if own:
        raise AWXError(
            f"job template {template.name!r} has {' and '.join(own)} of its own, which AWX "
            "applies to every job: the proposal's playbook would not run as reviewed "
            "(clear them; docs/awx.md)"
        )


def _json(variables: dict[str, Any], job: Job) -> str:
    """The launch's extra vars as the JSON AWX parses; ``AWXError`` for a value JSON cannot
    carry (a YAML date in a vars file, keys of mixed types), which AWX could not take."""
    try:
        return json.dumps(variables, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise AWXError(
            f"proposal {job.proposal_id}'s vars file {job.vars_path} holds a value AWX's JSON "
            f"extra vars cannot carry ({exc}): quote it as a string"
        ) from None


def _never_started(status: str | None) -> str:
    """Why a job canceled while it was still waiting to run never ran."""
    if status not in ("new", "pending", "waiting"):
        return ""
    return (
        f"; AWX had not started it (still {status}): a job template runs one job at a "
        "time unless it allows concurrent jobs, and a job waits for its project's or "
        "inventory's update"
    )


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
        self.before_cancel: str | None = None  # the job's status when Terry canceled it
        self._redact = process_redactor()
        self._unanswered = False

    def unanswered(self, exc: AWXError) -> None:
        """AWX did not answer a look: said once in the run (it is asked again)."""
        if not self._unanswered:
            self._unanswered = True
            self.note("awx_job", None, f"AWX did not answer ({exc}); asking again")

    def read_if_answered(self) -> None:
        """``read``, unless AWX does not answer now (the next look reads them)."""
        try:
            self.read()
        except AWXError as exc:
            self.unanswered(exc)

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
        """Terry's own line in the run (the job's link, a timeout): after AWX's events read
        so far, or before them all (0) when none was (AWX's counters start at 1)."""
        seq = max((e.seq for e in self.events), default=-1) + 1
        raw = {"event": event, "counter": seq, "message": message}
        item = RunnerEvent(seq, event, None, "AWX job", "awx.job", status, message, (), raw)
        self._add(item)

    def _add(self, event: RunnerEvent) -> None:
        self.events.append(event)
        self.on_event(event)


def _refuse_if_nothing_ran(job_id: int, state: JobState, events: list[RunnerEvent]) -> None:
    """``AWXError`` (the run could not start: nothing changed, nothing to roll back) when the
    job ended before the proposal's playbook ran on any host:
    - a host failed the entry playbook's identity probe, or could not be reached for it
      (playbooks/terry-awx.yml: its ``any_errors_fatal`` ends the job there for every host),
      as the ansible applier refuses a run; the job's stats would otherwise call each other
      host's apply a fix that ran and its verify passed, on a play that never began;
    - the job ended ``error``, ``failed`` or ``canceled`` before any play began (a project
      sync that failed, someone's cancel while it waited), with AWX's explanation.
    A job that went past the probe is judged by its events, as before."""
    if any(e.play and e.play != PROBE_PLAY for e in events if e.host is not None):
        return  # the proposal's playbook ran on a host
    refused: dict[str, str] = {}
    for e in events:
        if e.host and e.play == PROBE_PLAY and e.status in _PROBE_TROUBLE:
            refused.setdefault(e.host, e.message or str(e.status))
    if refused:
        said = [f"{host}: {why[:200]}" for host, why in sorted(refused.items())]
        raise AWXError(
            identity_refused([f"AWX job {job_id} stopped at Terry's identity probe", *said])
        )
    began = any(e.event == "playbook_on_play_start" or e.host is not None for e in events)
    if state.status in ("error", "failed", "canceled") and not began:
        raise AWXError(
            f"AWX job {job_id} ended {state.status} before any play began, nothing was "
            "changed" + (f": {state.explanation}" if state.explanation else "")
        )


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
        raise AWXError("awx.url is not configured (terry.yml or TERRY_AWX_URL)", setting="awx.url")
    client = AWXClient(
        config.url,
        os.environ.get(config.token_env) or None,
        verify_tls=config.verify_tls,
        timeout=config.request_timeout,
        retries=config.retries,
        token_env=config.token_env,
    )
    return AWXApplier(client, config, repo=ctx.repo, share=share, say=ctx.reporter.step)
