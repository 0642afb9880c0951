"""The application, assembled in one place: the context, the appliers, review, the policy
engine and the steps, wired into the sequencer. The CLI, the server, the worker and the
demos all build their pipeline here."""

from __future__ import annotations

from collections.abc import Mapping

from terry.appliers.registry import Appliers, Build
from terry.config import Config
from terry.context import Context, MainView, Reporter, SilentReporter
from terry.gate.engine import OpaEngine, PolicyEngine, RegorusEngine
from terry.gitops.repo import Repo
from terry.pipeline import Pipeline, Steps
from terry.review.base import Review
from terry.steps.apply import Apply
from terry.steps.diagnose import Diagnose
from terry.steps.dry_run import DryRun
from terry.steps.gate import Gate
from terry.steps.precheck import Precheck
from terry.steps.propose import Propose
from terry.steps.record import Record
from terry.steps.review import ReviewStep
from terry.steps.rollback import Rollback
from terry.steps.verify import Verify
from terry.store import Store
from terry.store.locks import holder_id

__all__ = ["build_context", "build_pipeline", "default_engine"]


def build_context(config: Config, store: Store, *, reporter: Reporter | None = None) -> Context:
    repo = Repo(config.repo, main_branch=config.main_branch)
    return Context(
        config=config,
        store=store,
        repo=repo,
        main=MainView(config, repo),
        reporter=reporter or SilentReporter(),
        holder=holder_id(),
    )


def default_engine(config: Config) -> PolicyEngine:
    policy = config.policy
    if policy.engine == "opa" and policy.opa_url:
        return OpaEngine(policy.opa_url, query=policy.query, timeout=policy.timeout)
    return RegorusEngine(query=policy.query, timeout=policy.timeout)


def build_review(ctx: Context) -> Review:
    """Review as configured: on GitHub (``forge.kind: github``) or local."""
    if ctx.config.forge.kind == "github":
        from terry.review.forge import GitHubReview

        return GitHubReview(ctx)
    from terry.review.local import LocalReview

    return LocalReview(ctx)


def build_pipeline(
    config: Config,
    store: Store,
    *,
    reporter: Reporter | None = None,
    engine: PolicyEngine | None = None,
    appliers: Mapping[str, Build] | None = None,
) -> Pipeline:
    """The pipeline of one process. ``engine`` and ``appliers`` (name -> build) replace the
    configured ones (benchmarks time them)."""
    ctx = build_context(config, store, reporter=reporter)
    review = build_review(ctx)
    registry = Appliers(ctx, review, builds=appliers)
    record = Record(ctx)
    verify = Verify(ctx, registry, record)
    rollback = Rollback(ctx, registry, record)
    precheck = Precheck(ctx, registry)
    steps = Steps(
        diagnose=Diagnose(ctx),
        propose=Propose(ctx),
        dry_run=DryRun(ctx, registry, record),
        gate=Gate(ctx, engine or default_engine(config), review),
        review=ReviewStep(ctx, review),
        apply=Apply(ctx, registry, record, verify, rollback, precheck),
        rollback=rollback,
        record=record,
        precheck=precheck,
    )
    return Pipeline(ctx, steps, review)
