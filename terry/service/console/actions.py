"""Approve and reject from the console: the pipeline's own verbs, as the CLI calls them.

Approving is two of the pipeline's verbs, as ``terry proposals approve`` is: ``approve``
(the state check and the merge) answers at once, in the request, so a refusal ("cannot
approve proposal 7: it is verified") is shown on the page; ``apply`` (the runs, verify,
rollback) goes on in a thread of its own while the page shows its progress. What a thread
is doing, and how it ended, is kept here for the proposal's page (the store keeps the rest).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from terry.errors import StateError, TerryError
from terry.pipeline import Pipeline

__all__ = ["Actions", "Job"]

log = logging.getLogger("terry.service.console")


@dataclass(frozen=True)
class Job:
    """An apply the console started: who, since when, and (once done) how it ended."""

    actor: str
    started: float
    done: bool = False
    error: str | None = None


class Actions:
    def __init__(self, pipeline_factory: Callable[[], Pipeline], *, threads: int = 2) -> None:
        self._factory = pipeline_factory
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="terry-console")
        self._jobs: dict[int, Job] = {}
        self._lock = threading.Lock()

    def job(self, proposal_id: int) -> Job | None:
        with self._lock:
            return self._jobs.get(proposal_id)

    def approve(self, proposal_id: int, *, actor: str) -> None:
        """Approve now (TerryError when the proposal's state does not allow it), then apply
        in the background."""
        with self._lock:
            running = self._jobs.get(proposal_id)
            if running is not None and not running.done:
                raise StateError(
                    f"proposal {proposal_id} is already being applied by {running.actor}"
                )
        pipeline = self._factory()
        pipeline.approve(proposal_id, actor=actor, apply=False)
        with self._lock:
            self._jobs[proposal_id] = Job(actor, time.time())
        self._pool.submit(self._apply, pipeline, proposal_id, actor)

    def _apply(self, pipeline: Pipeline, proposal_id: int, actor: str) -> None:
        error: str | None = None
        try:
            pipeline.apply(proposal_id, actor=actor)
        except TerryError as exc:
            error = str(exc)
        except Exception:  # a crash is logged in full, shown in a line
            log.exception("proposal %s: apply from the console crashed", proposal_id)
            error = "the apply crashed; the server's log has the details"
        with self._lock:
            started = self._jobs[proposal_id].started
            self._jobs[proposal_id] = Job(actor, started, done=True, error=error)
        log.info("proposal %s: applied for %s%s", proposal_id, actor, f": {error}" if error else "")

    def reject(self, proposal_id: int, *, actor: str, reason: str) -> None:
        self._factory().reject(proposal_id, actor=actor, reason=reason)

    def close(self) -> None:
        """Let applies in hand finish; start no more."""
        self._pool.shutdown(wait=True, cancel_futures=True)
