"""One incident, one proposal, however many threads and processes reach for it.

The worker's threads, the server's and a sweep may all find the same new incident at once
(the server queues it as it arrives; an idle worker thread lists pending incidents). The
store's claim names the process, so two threads of one process must still not both
diagnose it: one proposal, one branch. And proposals made at the same moment whose branch
names collide each end on a branch of their own, never a proposal left in ``proposed``.

Real git, real SQLite (and PostgreSQL when configured), real regorus and a real check-mode
dry run on the example hosts; nothing is applied (``apply=False``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from terry.app import build_pipeline
from terry.diagnosis.finding import Fix
from terry.errors import BranchTaken, GitError, MergeConflict
from terry.gitops.repo import Repo
from terry.sources.alertmanager import parse_payload
from terry.store import Store
from terry.store.models import ProposalRow
from tests.conftest import Cli, alert, config_for, make_cli, payload

pytestmark = pytest.mark.integration


@pytest.fixture
def ops(tmp_path: Path) -> Iterator[Cli]:
    repo = tmp_path / "ops"
    cli = make_cli(repo)
    cli.ok("init", str(repo))
    yield cli


def _open(store: Store, repo: Path, tag: str, host: str = "web-01") -> int:
    pipeline = build_pipeline(config_for(repo), store)
    body = alert("DiskUsageHigh", fingerprint=tag, host=host, mountpoint="/srv/data")
    [opened] = pipeline.ingest(parse_payload(payload([body])), remediate=False).ingest.opened
    return opened


def _together(count: int, work) -> list[object]:
    """``work(i)`` on ``count`` threads released at the same moment; their results."""
    start = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # kept for the assertion, never swallowed
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def test_threads_of_one_process_racing_for_an_incident_make_one_proposal(
    ops: Cli, store: Store
) -> None:
    config = config_for(ops.repo)
    for round_ in range(3):
        incident = _open(store, ops.repo, f"race-{round_}")
        pipelines = [build_pipeline(config, store) for _ in range(4)]  # as the worker's threads
        outcomes = _together(
            4,
            lambda i, ps=pipelines, n=incident: ps[i].remediate_many([n], apply=False),
        )
        assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
        made = [o[0] for o in outcomes if o[0].proposal_id is not None]  # type: ignore[index]
        assert len(made) == 1, outcomes
        assert {o[0].note for o in outcomes if o[0].proposal_id is None} == {  # type: ignore[index]
            "already handled elsewhere"
        }
        with store.session() as session:
            rows = session.scalars(
                select(ProposalRow).where(ProposalRow.incident_id == incident)
            ).all()
            assert [(r.id, r.state != "proposed", r.branch is not None) for r in rows] == [
                (made[0].proposal_id, True, True)
            ]


def test_proposals_whose_branch_names_collide_each_get_a_branch(ops: Cli, store: Store) -> None:
    config = config_for(ops.repo)
    incident = _open(store, ops.repo, "collide")
    pipeline = build_pipeline(config, store)
    finding = pipeline.steps.diagnose(incident)
    assert isinstance(finding, Fix)
    # the same incident, remedy and host: every proposal wants the same branch name
    made = _together(4, lambda _i: pipeline.steps.propose(incident, finding))
    assert not [m for m in made if isinstance(m, Exception)], made
    with store.session() as session:
        rows = session.scalars(select(ProposalRow).where(ProposalRow.incident_id == incident))
        branches = {r.id: (r.branch, r.commit_sha) for r in rows}
    assert sorted(branches) == sorted(made)
    names = [b for b, _sha in branches.values()]
    assert len(set(names)) == 4 and all(n and sha for n, sha in branches.values())
    repo = Repo(ops.repo)
    for name, sha in branches.values():
        assert repo.head(name) == sha  # each branch holds its own proposal's commit


def test_creating_a_branch_that_exists_is_refused_and_leaves_it_alone(ops: Cli) -> None:
    repo = Repo(ops.repo)
    first = repo.commit_files(branch="terry/taken", files={"a.txt": "one\n"}, message="one")
    with pytest.raises(BranchTaken, match="terry/taken"):
        repo.commit_files(branch="terry/taken", files={"a.txt": "two\n"}, message="two")
    assert repo.head("terry/taken") == first


def test_a_commit_on_a_branch_that_moved_is_refused_and_loses_nothing(ops: Cli) -> None:
    """``commit_on`` (a storm's proposal taking in hosts that joined before its decision)
    moves the branch only from the commit its caller read: one pushed there meanwhile
    stays."""
    repo = Repo(ops.repo)
    first = repo.commit_files(branch="terry/moving", files={"a.txt": "one\n"}, message="one")
    second = repo.commit_on(
        branch="terry/moving", tip=first, files={"a.txt": "two\n"}, message="two"
    )
    assert repo.head("terry/moving") == second
    assert repo.read_text(second, "a.txt") == "two\n"
    with pytest.raises(GitError):
        repo.commit_on(branch="terry/moving", tip=first, files={"a.txt": "3\n"}, message="3")
    assert repo.head("terry/moving") == second


def test_a_merge_that_conflicts_names_the_paths_and_leaves_main_alone(ops: Cli) -> None:
    """Two branches changed the same line; the first merges, the second cannot: git says
    which paths, and main keeps the first's merge. A commit other than the branch's tip is
    merged when named (what was dry-run), whatever was pushed on the branch since."""
    repo = Repo(ops.repo)
    base = repo.head()
    repo.commit_files(branch="terry/left", files={"c.txt": "left\n"}, message="l", base=base)
    repo.commit_files(branch="terry/right", files={"c.txt": "right\n"}, message="r", base=base)
    merged = repo.merge("terry/left", message="merge left")
    with pytest.raises(MergeConflict, match=r"main changed c\.txt since") as conflict:
        repo.merge("terry/right", message="merge right")
    assert conflict.value.paths == ("c.txt",)
    assert repo.head() == merged and repo.read_text(merged, "c.txt") == "left\n"

    checked = repo.commit_files(branch="terry/later", files={"d.txt": "checked\n"}, message="d")
    repo.commit_on(branch="terry/later", tip=checked, files={"d.txt": "pushed\n"}, message="p")
    into = repo.merge("terry/later", commit=checked, message="merge the checked commit")
    assert repo.read_text(into, "d.txt") == "checked\n"
