"""The canary's watch: what must hold while the first wave of a rollout is watched.

After the canary wave verified, Terry waits ``canary.watch`` seconds, then asks again:

- the remedy's own verification on the canary hosts (its verify tasks, its PromQL check)
  must still pass — a fix that undoes itself or breaks something a minute later stops here;
- each of ``canary.queries`` (PromQL with ``{host}``, higher is worse: error rates,
  latency, restarts) must not have got worse by more than ``canary.tolerance`` on any host
  of the proposal, inside the wave *or outside it* (a change on the canary can hurt its
  neighbours), comparing the value read before the wave with the one after the watch.

Unknown is not healthy: a query that answered before the wave and does not after (no data,
NaN, an error) counts as worse; one that never answered is not compared, said on the canary
hosts; when none answered at all (Prometheus down, every query mistyped) the watch could not
judge what it was set to judge, and the canary is unknown (rolled back, the rest held).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from terry.context import Context
from terry.proposals.hosts import HostState
from terry.verify.judge import fill_query

__all__ = ["Readings", "Watch"]

Readings = dict[tuple[str, str], float | None]  # (query, host) -> value


@dataclass(frozen=True)
class Watch:
    ctx: Context

    @property
    def queries(self) -> tuple[str, ...]:
        prom = self.ctx.config.prometheus
        return tuple(self.ctx.config.canary.queries) if prom.url else ()

    def read(self, hosts: Sequence[str]) -> Readings:
        """Each configured query's value on each host (the highest sample), or None."""
        found: Readings = {}
        if not self.queries:
            return found
        from terry.prometheus import connect

        client = connect(self.ctx.config.prometheus)
        for template in self.queries:
            for host in hosts:
                query = fill_query(template, {"host": host})
                try:
                    answer = client.custom_query(query)
                    samples = [float(item["value"][1]) for item in answer]
                except Exception:  # a failed query is no reading: unknown, judged below
                    samples = []
                good = [v for v in samples if not (math.isnan(v) or math.isinf(v))]
                found[(template, host)] = max(good) if good else None
        return found

    def wait(self) -> None:
        time.sleep(self.ctx.config.canary.watch)

    def worse(self, before: Readings, after: Readings) -> list[str]:
        """What got worse from ``before`` to ``after``, in words; empty: nothing did."""
        tolerance = self.ctx.config.canary.tolerance
        said: list[str] = []
        for (template, host), old in before.items():
            new = after.get((template, host))
            query = fill_query(template, {"host": host})
            if old is None:  # never answered: nothing to compare with (said by ``unread``)
                continue
            if new is None:
                said.append(f"{query} answered {old:g} before the canary and nothing after")
            elif new > old + abs(old) * tolerance and new - old > 1e-9:
                said.append(f"{query} rose from {old:g} to {new:g} during the canary's watch")
        return said

    def judge(
        self,
        found: dict[str, tuple[HostState, str]],
        again: dict[str, tuple[HostState, str]],
        before: Readings,
        after: Readings,
        *,
        proposal_id: int | None = None,
    ) -> dict[str, tuple[HostState, str]]:
        """The canary hosts after the watch, from what they were (``found``), their
        verification again (``again``) and the queries' readings: failed or unknown where
        the verification no longer passes, failed where a query got worse, unknown where
        no query could be read at all; a query not compared is said on each host, and to
        the proposal's reporter."""
        worse, unread = self.worse(before, after), self.unread(before)
        if unread:  # a mistyped query, a host without the metric, Prometheus down
            self.ctx.reporter.step(
                proposal_id, f"canary queries with no reading before the canary: {unread}"
            )
        blind = bool(before) and len(unread) == len(before)
        watched = dict(found)
        for host, (state, evidence) in again.items():
            if state is not HostState.VERIFIED:
                watched[host] = (state, f"after the watch: {evidence}")
            elif worse:
                watched[host] = (HostState.FAILED, "during the watch: " + "; ".join(worse)[:1500])
            elif blind:
                watched[host] = (
                    HostState.UNKNOWN,
                    "during the watch: none of canary.queries gave a reading before the "
                    f"canary ({'; '.join(unread)[:1000]}): the watch could not judge it",
                )
            elif unread:
                kept, detail = watched.get(host, (state, evidence))
                watched[host] = (
                    kept,
                    f"{detail}; not compared (no reading before the canary): "
                    + "; ".join(unread)[:1000],
                )
        return watched

    @staticmethod
    def unread(before: Readings) -> list[str]:
        """The queries (filled for their host) that gave no reading before the canary: not
        compared."""
        return [fill_query(t, {"host": h}) for (t, h), value in before.items() if value is None]
