"""The store's schema comes from Alembic migrations, and they match the models exactly."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from terry.gitops.init import init_repository
from terry.gitops.repo import Repo
from terry.store import Store
from terry.store.models import Base

pytestmark = pytest.mark.unit


def test_migrations_build_exactly_the_models(store: Store) -> None:
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
    tables = set(inspect(store.engine).get_table_names())
    assert {
        "alerts",
        "incidents",
        "proposals",
        "runs",
        "run_events",
        "audit",
        "host_locks",
        "alembic_version",
    } <= tables


def test_migrating_twice_is_a_no_op(store: Store) -> None:
    store.migrate()
    with store.engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    versions = Path(__file__).parents[2] / "terry/store/migrations/versions"
    assert current == max(p.name[:4] for p in versions.glob("[0-9][0-9][0-9][0-9]_*.py"))


def test_old_tree_exports_are_pruned_and_fresh_ones_kept(tmp_path: Path) -> None:

    repo = Repo(init_repository(tmp_path / "ops").path)
    current = repo.tree(repo.head())
    stale = current.parent / ("0" * 40)
    stale.mkdir()
    os.utime(stale, (time.time() - 7 * 3600,) * 2)
    (repo.path / "note.txt").write_text("x")
    repo.commit_paths(["note.txt"], "a change")
    newest = repo.tree(repo.head())
    assert newest.is_dir() and current.is_dir()
    assert not stale.exists()


def test_a_committed_link_out_of_the_tree_is_left_out_of_its_export(tmp_path: Path) -> None:
    # A link to /etc/hostname or past the repository's root is not exported (nothing read
    # from the tree reaches through it); the rest of the commit is, a link inside it too.
    repo = Repo(init_repository(tmp_path / "ops").path)
    (repo.path / "slos").mkdir()
    (repo.path / "slos" / "evil.yml").symlink_to("/etc/hostname")
    (repo.path / "slos" / "up.yml").symlink_to("../../../outside.yml")
    (repo.path / "slos" / "same.yml").symlink_to("../terry.yml")
    repo.commit_paths(["slos"], "links")
    tree = repo.tree(repo.head())
    assert not (tree / "slos" / "evil.yml").is_symlink()
    assert not (tree / "slos" / "up.yml").is_symlink()
    assert (tree / "slos" / "same.yml").read_text() == (tree / "terry.yml").read_text()


def test_a_remedys_last_outcome_is_the_one_that_ended_last(store: Store) -> None:
    """The learned auto-merge list sends a remedy back to review on its first failure: the
    latest news is the proposal that ended last, not the newest one (an old proposal a
    person approved late, that failed after newer ones verified)."""
    from datetime import timedelta

    from terry.store.models import utcnow
    from terry.store.runs import remedy_records
    from tests.conftest import stored_proposal

    now = utcnow()
    late = stored_proposal(
        store, fingerprint="late", hosts=["web-01"], state="failed", updated_at=now
    )
    for n in range(3):
        stored_proposal(
            store,
            fingerprint=f"early-{n}",
            hosts=["web-01"],
            state="verified",
            created_at=now - timedelta(hours=2),
            updated_at=now - timedelta(hours=1, minutes=n),
        )
    record = remedy_records(store)["disk-usage-high"].overall
    assert late and record.runs == 4 and record.verified == 3
    assert record.last_outcome == "failed"
