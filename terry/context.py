"""What every step is given: one explicit ``Context`` (configuration, store, repository, the
view of main, where progress goes, who this process is).

Nothing here is global. The application is assembled in one place (``terry.app``), and
each step receives the context it works in; no step reaches into another for these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from terry.config import Config
from terry.gitops.repo import Repo
from terry.store import Store

if TYPE_CHECKING:
    from terry.appliers.base import RunnerEvent
    from terry.gate.engine import PolicySet
    from terry.inventory.hosts import Inventory
    from terry.remedies.catalogue import Catalogue

__all__ = ["Context", "MainView", "Reporter", "SilentReporter"]

K = TypeVar("K")
V = TypeVar("V")


class Reporter(Protocol):
    """Where progress goes; the CLI prints it, the server logs it, tests collect it."""

    def step(self, proposal_id: int | None, message: str) -> None: ...

    def event(self, proposal_id: int, kind: str, event: RunnerEvent) -> None: ...


class SilentReporter:
    def step(self, proposal_id: int | None, message: str) -> None:
        return None

    def event(self, proposal_id: int, kind: str, event: RunnerEvent) -> None:
        return None


def _remember(cache: dict[K, V], key: K, value: V, *, keep: int = 4) -> None:
    """Keep ``value`` under ``key``, dropping the oldest entry beyond ``keep``."""
    if len(cache) >= keep:
        cache.pop(next(iter(cache)))
    cache[key] = value


@dataclass
class MainView:
    """What main says: its catalogue, inventory and policies. Decisions are made from main,
    never from a branch. Each is reused while the files it comes from are unchanged (the
    same git object ids), so a merge that only adds a playbook does not make the next alert
    re-read them."""

    config: Config
    repo: Repo
    _views: dict[tuple[object, ...], tuple[Catalogue, Inventory]] = field(default_factory=dict)
    _policies: dict[str, PolicySet] = field(default_factory=dict)

    def tree(self) -> tuple[str, Path]:
        sha = self.repo.head()
        return sha, self.repo.tree(sha)

    def view(self, sha: str | None = None) -> tuple[str, Catalogue, Inventory]:
        """Main's commit (or ``sha``), with its catalogue and inventory."""
        from terry.inventory.hosts import load_inventory
        from terry.remedies.catalogue import load_catalogue

        sha = sha or self.repo.head()
        roles = self.config.roles_path
        roots = sorted({Path(p).parts[0] for p in self.config.inventory if Path(p).parts})
        ids = self.repo.object_ids(sha, [roles, *roots])
        key = (ids[roles], tuple(ids[r] for r in roots))
        cached = self._views.get(key)
        if cached is None:
            tree = self.repo.tree(sha)
            cached = (load_catalogue(tree / roles), load_inventory(tree, self.config.inventory))
            _remember(self._views, key, cached)
        return sha, *cached

    def policies(self, sha: str) -> PolicySet:
        """The policies at ``sha`` and the commit that last changed them, reused while the
        policy directory's git object is unchanged (the same content decides the same way)."""
        from terry.gate.engine import load_policy_set

        path = self.config.policy.path
        key = self.repo.object_ids(sha, [path])[path]
        cached = self._policies.get(key) if key is not None else None
        if cached is None:
            commit = self.repo.last_change(path, sha) or sha
            cached = load_policy_set(self.repo.tree(sha) / path, commit)
            if key is not None:  # no policy directory: nothing to reuse
                _remember(self._policies, key, cached)
        return cached


@dataclass(frozen=True)
class Context:
    """The one explicit context of the pipeline's steps."""

    config: Config
    store: Store
    repo: Repo
    main: MainView
    reporter: Reporter
    holder: str  # this process, for claims and locks

    @property
    def lease(self) -> timedelta:
        """How long a claim on an incident holds without its holder renewing it."""
        return timedelta(seconds=self.config.runner.timeout * 2 + 60)
