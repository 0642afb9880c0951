"""The ansible applier: a proposal's playbook run with ansible-runner from an export of the
commit (``terry.appliers.ansible_runner`` wraps ansible-runner itself)."""

from __future__ import annotations

from terry.appliers.ansible_runner import AnsibleRunnerApplier, RunRequest
from terry.appliers.base import Job, OnEvent, RunResult
from terry.context import Context
from terry.errors import RunnerError

__all__ = ["AnsibleApplier", "build"]


class AnsibleApplier:
    """A proposal's playbook, from an export of its commit: the fix (dry run: in check mode
    with diff), then its ``verify`` and ``rollback`` plays by tag."""

    name = "ansible"
    check_words = "ansible-playbook --check --diff"

    def __init__(self, ctx: Context, runner: AnsibleRunnerApplier | None = None) -> None:
        self.ctx = ctx
        self.runner = runner or AnsibleRunnerApplier()

    def check(self, job: Job, on_event: OnEvent) -> RunResult:
        return self._run(job, on_event, check=True)

    def apply(self, job: Job, on_event: OnEvent) -> RunResult:
        return self._run(job, on_event)

    def verify(self, job: Job, on_event: OnEvent) -> RunResult:
        return self._run(job, on_event, tags=("verify",))

    def rollback(self, job: Job, on_event: OnEvent) -> RunResult:
        return self._run(job, on_event, tags=("rollback",))

    def _run(
        self, job: Job, on_event: OnEvent, *, check: bool = False, tags: tuple[str, ...] = ()
    ) -> RunResult:
        if job.playbook is None:
            raise RunnerError(f"proposal {job.proposal_id} has no playbook to run")
        config = self.ctx.config
        request = RunRequest(
            project_dir=self.ctx.repo.tree(job.commit),
            playbook=job.playbook,
            private_dir=job.run_dir,
            inventory=tuple(config.inventory),
            hosts=job.hosts,
            vars_file=job.vars_path,
            check=check,
            tags=tags,
            forks=config.runner.forks,
            timeout=config.runner.timeout,
            env=dict(config.runner.env),
            withhold=config.secret_env_names,
        )
        return self.runner.run(request, on_event=on_event)


def build(ctx: Context, share: object) -> AnsibleApplier:
    return AnsibleApplier(ctx)
