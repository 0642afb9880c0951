"""What every step of the pipeline shares: the repository, the store, the reporter, and
running a proposal's playbook. The steps themselves live in the modules named after them:
``terry.review.local`` (merge, approve, reject), ``terry.apply`` (apply, verify, rollback), and
``terry.pipeline`` (diagnosis → proposal → dry run → gate, and sequencing).
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Protocol, TypeVar

from terry.appliers.ansible_runner import AnsibleRunnerApplier, RunnerEvent, RunRequest, RunResult
from terry.appliers.argocd import ArgoCDApplier, ArgoCDClient, SyncRequest
from terry.config import Config
from terry.errors import GitError, RunnerError
from terry.gate.engine import OpaEngine, PolicyEngine, PolicySet, RegorusEngine, load_policy_set
from terry.gitops.repo import Repo
from terry.incidents import lifecycle as incidents
from terry.inventory.hosts import Inventory, load_inventory
from terry.inventory.proposal import GIT, INVENTORY_EDIT, check_edit, commit_diffs, edit_run
from terry.proposals.state import ProposalState, get, transition
from terry.remedies.catalogue import Catalogue, load_catalogue
from terry.store import Store
from terry.store.locks import holder_id
from terry.store.runs import fail_run, finish_run, start_run

__all__ = ["Reporter", "SilentReporter", "Steps", "decision_trailers", "one_line"]

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


def one_line(text: str, limit: int = 120) -> str:
    """Untrusted text made safe for a commit message line: no newlines, bounded."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text)[:limit]


def decision_trailers(
    decision: str | None, reasons: list[str] | tuple[str, ...], policy_commit: str | None
) -> list[str]:
    """The gate's verdict as git trailers: on the proposal commit's note and the merge."""
    return [
        f"Terry-Decision: {decision}",
        *(f"Terry-Reason: {one_line(r, 300)}" for r in reasons),
        f"Terry-Policy-Commit: {policy_commit}",
    ]


def _remember(cache: dict[K, V], key: K, value: V, *, keep: int = 4) -> None:
    """Keep ``value`` under ``key``, dropping the oldest entry beyond ``keep``."""
    if len(cache) >= keep:
        cache.pop(next(iter(cache)))
    cache[key] = value


class Steps:
    """The shared base of the pipeline's steps."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        reporter: Reporter | None = None,
        engine: PolicyEngine | None = None,
        applier: AnsibleRunnerApplier | None = None,
        argocd: ArgoCDApplier | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.repo = Repo(config.repo, main_branch=config.main_branch)
        self.reporter: Reporter = reporter or SilentReporter()
        self.engine = engine or self._default_engine()
        self.applier = applier or AnsibleRunnerApplier()
        self._argocd = argocd
        self.holder = holder_id()
        self.lease = timedelta(seconds=config.runner.timeout * 2 + 60)
        self._views: dict[tuple[object, ...], tuple[Catalogue, Inventory]] = {}
        self._policies: dict[str, PolicySet] = {}

    def _default_engine(self) -> PolicyEngine:
        policy = self.config.policy
        if policy.engine == "opa" and policy.opa_url:
            return OpaEngine(policy.opa_url, query=policy.query, timeout=policy.timeout)
        return RegorusEngine(query=policy.query, timeout=policy.timeout)

    # -- what main says ---------------------------------------------------------------
    def main_tree(self) -> tuple[str, Path]:
        sha = self.repo.head()
        return sha, self.repo.tree(sha)

    def main_view(self, sha: str | None = None) -> tuple[str, Catalogue, Inventory]:
        """Main's commit, catalogue and inventory. Both are reused while the files they come
        from are unchanged (same git object ids), so a merge that only adds a playbook does
        not make the next alert re-read them."""
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

    def main_policies(self, sha: str) -> PolicySet:
        """Main's policies and the commit that last changed them, reused while the policy
        directory's git object is unchanged (the same content decides the same way)."""
        path = self.config.policy.path
        key = self.repo.object_ids(sha, [path])[path]
        cached = self._policies.get(key)
        if cached is None:
            commit = self.repo.last_change(path, sha) or sha
            cached = load_policy_set(self.repo.tree(sha) / path, commit)
            if key is not None:  # no policy directory: nothing to reuse
                _remember(self._policies, key, cached)
        return cached

    # -- where appliers read git ---------------------------------------------------------
    # Argo CD reads the repository from the forge, so a branch it dry-runs and a revert it
    # syncs must be there first. Without a forge they are local already: nothing to do.
    def _share_branch(self, branch: str) -> None:
        return None

    def _share_main(self) -> None:
        return None

    def _refresh_main(self) -> None:
        return None

    @property
    def argocd(self) -> ArgoCDApplier:
        if self._argocd is None:
            config = self.config.argocd
            self._argocd = ArgoCDApplier(
                ArgoCDClient.from_config(config, dict(os.environ)),
                timeout=config.timeout,
                poll_interval=config.poll_interval,
            )
        return self._argocd

    def _run(
        self,
        proposal_id: int,
        kind: str,
        commit: str,
        *,
        check: bool = False,
        tags: tuple[str, ...] = (),
    ) -> RunResult:
        with self.store.session() as session:
            row = get(session, proposal_id)
            playbook, vars_path, hosts = row.playbook_path, row.vars_path, tuple(row.hosts)
            applier, target = row.applier, row.target
            edit = dict(row.params) if row.remedy == INVENTORY_EDIT else None
        if applier == "argocd":
            assert target is not None
            return self._run_argocd(proposal_id, kind, commit, app=target, host=hosts[0])
        if edit is not None and (applier == GIT or kind == "check"):
            found = self._run_edit(proposal_id, kind, commit, edit, runs_playbook=applier != GIT)
            if found is not None:
                return found
        assert playbook is not None
        run_id = start_run(self.store, proposal_id=proposal_id, kind=kind, commit=commit)
        request = RunRequest(
            project_dir=self.repo.tree(commit),
            playbook=playbook,
            private_dir=self.config.state_dir / "runs" / str(run_id),
            inventory=tuple(self.config.inventory),
            hosts=hosts,
            vars_file=vars_path,
            check=check,
            tags=tags,
            forks=self.config.runner.forks,
            timeout=self.config.runner.timeout,
            env=dict(self.config.runner.env),
            withhold=self.config.secret_env_names,
        )
        try:
            result = self.applier.run(
                request, on_event=lambda e: self.reporter.event(proposal_id, kind, e)
            )
        except RunnerError:
            fail_run(self.store, run_id, "error")
            raise
        finish_run(self.store, run_id, result)
        return result

    def _run_edit(
        self,
        proposal_id: int,
        kind: str,
        commit: str,
        edit: dict[str, object],
        *,
        runs_playbook: bool,
    ) -> RunResult | None:
        """An inventory edit's own steps: its dry run checks the edited inventory first
        (then, converging, ``site.yml`` runs in check mode: None here); with nothing to run
        on hosts, applying it is the merge itself."""
        problems = check_edit(self.config, self.repo, commit, edit) if kind == "check" else []
        if runs_playbook and not problems:
            return None
        run_id = start_run(self.store, proposal_id=proposal_id, kind=kind, commit=commit)
        diffs = None
        if kind == "check" and not problems:
            parent = self.repo.head(f"{commit}^")
            diffs = commit_diffs(self.repo, commit, self.repo.changed_paths(parent, commit))
        result = edit_run(str(edit["host"]), problems, diffs)
        for event in result.events:
            self.reporter.event(proposal_id, kind, event)
        finish_run(self.store, run_id, result)
        return result

    def _run_argocd(
        self, proposal_id: int, kind: str, commit: str, *, app: str, host: str
    ) -> RunResult:
        """check: dry-run sync of the proposal commit; apply: sync the merge and wait for
        Synced and Healthy; verify: read the application; rollback: revert the merge on
        main and sync the revert."""
        manifest = None
        if kind == "check":
            with self.store.session() as session:
                row = get(session, proposal_id)
                path, branch = row.playbook_path, row.branch
            assert path is not None and branch is not None
            parent = self.repo.head(f"{commit}^")
            manifest = (
                path,
                self.repo.read_text(parent, path) or "",
                self.repo.read_text(commit, path) or "",
            )
            self._share_branch(branch)
        if kind == "rollback":
            try:
                commit = self._revert(proposal_id, commit)
            except GitError as exc:
                raise RunnerError(f"cannot revert {commit[:10]} on main: {exc}") from exc
        run_id = start_run(self.store, proposal_id=proposal_id, kind=kind, commit=commit)

        def on_event(event: RunnerEvent) -> None:
            self.reporter.event(proposal_id, kind, event)

        try:
            if kind == "verify":
                result = self.argocd.status(
                    app, host, commit, contains=self.repo.is_ancestor, on_event=on_event
                )
            else:
                request = SyncRequest(app, host, commit, dry_run=kind == "check", manifest=manifest)
                result = self.argocd.sync(
                    request, on_event=on_event, contains=self.repo.is_ancestor
                )
        except RunnerError:
            fail_run(self.store, run_id, "error")
            raise
        finish_run(self.store, run_id, result)
        return result

    def _revert(self, proposal_id: int, merge_sha: str) -> str:
        """A commit on main that undoes the proposal's merge, shared where Argo CD reads."""
        self._refresh_main()
        sha = self.repo.revert_merge(
            merge_sha,
            message=(
                f"Revert proposal {proposal_id} (merge {merge_sha[:10]})\n\n"
                f"Terry-Proposal: {proposal_id}\nTerry-Reverts: {merge_sha}\n"
            ),
        )
        self._share_main()
        self.reporter.step(proposal_id, f"reverted {merge_sha[:10]} on main as {sha[:10]}")
        return sha

    def _move(
        self, proposal_id: int, to: ProposalState, reason: str, *, outcome: str | None = None
    ) -> None:
        """A transition made by Terry itself, optionally recording the outcome text."""
        transition(
            self.store,
            proposal_id,
            to,
            actor="terry",
            reason=reason,
            changes={"outcome": outcome} if outcome is not None else None,
        )

    def _attention(self, proposal_id: int, reason: str) -> None:
        with self.store.session() as session:
            incident_id = get(session, proposal_id).incident_id
        incidents.set_attention(self.store, incident_id, reason)
        self.reporter.step(proposal_id, reason)

    def state(self, proposal_id: int) -> ProposalState:
        with self.store.session() as session:
            return ProposalState(get(session, proposal_id).state)
