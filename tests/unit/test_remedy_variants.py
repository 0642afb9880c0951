"""Remedy variants, the pure parts: the shipped catalogue's variant, the choice, the winner
rule, and the edit that makes a winner the default (terry.remedies.variants)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from terry.remedies.catalogue import Remedy, load_catalogue
from terry.remedies.variants import (
    DEFAULT,
    VARIANT_PARAM,
    VariantStats,
    WinnerRule,
    choose_variant,
    edit_default_variant,
    judge,
    variant_input,
    with_variant,
)
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def disk() -> Remedy:
    remedy = load_catalogue(REPO_ROOT / "roles").get("disk-usage-high")
    assert remedy is not None
    return remedy


def test_the_disk_remedy_offers_compress_only_and_tries_nothing_unless_asked(disk: Remedy) -> None:
    assert [v.name for v in disk.variants] == [DEFAULT, "compress-only"]
    assert disk.default_variant == DEFAULT and disk.try_variants_in == ()
    compress = disk.variants[1]
    assert compress.params == {
        "max_age_days": 3650,
        "log_retention_days": 3650,
        "core_retention_days": 3650,
        "package_caches": "keep",
    }
    # Not tried anywhere by default: staging runs the default too.
    assert choose_variant(disk, variant_input(disk, "staging", {})).name == DEFAULT


def test_comparable_incidents_alternate_outside_production_only(disk: Remedy) -> None:
    trying = replace(disk, try_variants_in=("staging",))
    tried: dict[str, int] = {}
    names = []
    for _ in range(4):
        chosen = choose_variant(trying, variant_input(trying, "staging", tried))
        names.append(chosen.name)
        tried[chosen.name] = tried.get(chosen.name, 0) + 1
    assert names == [DEFAULT, "compress-only", DEFAULT, "compress-only"]
    prod = choose_variant(trying, variant_input(trying, "production", {"default": 9}))
    assert prod.name == DEFAULT and prod.params == {}
    flipped = replace(trying, default_variant="compress-only")
    assert choose_variant(flipped, variant_input(flipped, "production", {})).name == (
        "compress-only"
    )


def _stats(name: str, runs: int, verified: int, median: float | None, *, default: bool = False):
    return VariantStats(name, name, default, runs, verified, median)


@pytest.mark.parametrize(
    ("stats", "winner", "why"),
    [
        ([_stats("a", 4, 4, 10, default=True), _stats("b", 9, 1, 5)], None, "not enough runs"),
        ([_stats("a", 5, 2, 10, default=True), _stats("b", 5, 5, 60)], "b", "60 points more often"),
        ([_stats("a", 5, 5, 100, default=True), _stats("b", 5, 5, 70)], "b", "faster"),
        ([_stats("a", 5, 5, 100, default=True), _stats("b", 5, 5, 90)], None, "no clear lead"),
        ([_stats("a", 5, 5, 10, default=True), _stats("b", 5, 2, 5)], None, "the default, a"),
        # exactly the lead asked for, whatever floating point makes of 1.0 - 0.9
        ([_stats("a", 10, 9, 100, default=True), _stats("b", 10, 10, 100)], "b", "10 points more"),
        ([_stats("a", 10, 8, 100, default=True), _stats("b", 10, 9, 100)], "b", "10 points more"),
    ],
)
def test_a_winner_needs_enough_runs_and_a_clear_lead(
    stats: list[VariantStats], winner: str | None, why: str
) -> None:
    found, reason = judge(stats, WinnerRule())
    assert found == winner and why in reason, reason


def test_a_tie_is_never_a_lead_whatever_the_rule() -> None:
    # --min-lead 0 --faster 0: two variants verified as often and as fast name no winner
    tie = [_stats("a", 5, 5, 100, default=True), _stats("b", 5, 5, 100)]
    for order in (tie, tie[::-1]):
        found, reason = judge(order, WinnerRule(min_lead=0.0, faster=0.0))
        assert found is None and "no clear lead" in reason, reason


def test_making_a_winner_the_default_keeps_the_file_as_written() -> None:
    text = (
        "---\n# the catalogue\nremedies:\n  - name: other\n    risk: low\n"
        "  - name: disk\n    risk: low  # why\n    variants:\n      quick: {params: {a: 1}}\n"
    )
    edited = edit_default_variant(text, "disk", "quick")
    assert edited.startswith("---\n# the catalogue\n")
    assert "risk: low  # why\n    default_variant: quick\n    variants:\n" in edited
    back = edit_default_variant(edited, "disk", DEFAULT)
    assert back == text


def test_the_default_variant_named_where_variants_are_tried_folds_with_the_plain_fix() -> None:
    """A staging host (variants tried there: ``terry_variant: default``) and a production
    host (not tried: no name) running the same parameters are one storm, so production
    still gets staging as its canary; another variant stays a proposal of its own."""
    from terry.proposals.storm import _canonical  # the fold key's parameter part

    plain = {"path": "/srv/data", "threshold": 85}
    named = {**plain, "terry_variant": DEFAULT}
    other = {**plain, "max_age_days": 3650, "terry_variant": "compress-only"}
    assert _canonical(named, frozenset()) == _canonical(plain, frozenset())
    assert _canonical(other, frozenset()) != _canonical(plain, frozenset())


def test_a_host_of_no_known_environment_never_takes_a_trial(disk: Remedy, store: Any) -> None:
    # "unknown" cannot be listed (the catalogue refuses it); even were it, a host whose
    # inventory names no environment counts as production and runs the default.
    everywhere = replace(disk, try_variants_in=("staging", "unknown"))
    for environments in ([None], ["unknown"], ["staging", None], []):
        assert with_variant(store, everywhere, environments, {"days": 7}) == {"days": 7}
    staging = with_variant(store, everywhere, ["staging"], {"days": 7})
    assert staging[VARIANT_PARAM] == DEFAULT


def test_a_winner_committed_but_not_opened_for_review_says_why_and_how_it_ended(
    disk: Remedy, tmp_path: Any
) -> None:
    from terry.errors import ForgeError
    from terry.gitops.init import init_repository
    from terry.gitops.repo import Repo
    from terry.remedies.variants import Comparison, propose_winner

    repo = Repo(init_repository(tmp_path / "ops").path)
    stats = (_stats("default", 5, 2, 10, default=True), _stats("compress-only", 5, 5, 9))
    comparison = Comparison(disk.name, disk.source, None, stats, "compress-only", "leads")

    def refused(branch: str, **_: Any) -> str:
        raise ForgeError(f"GitHub refused the pull request for {branch} (422)")

    proposed = propose_winner(repo, comparison, base=repo.head(), open_change=refused)
    assert proposed is not None and proposed.pull_url is None
    assert proposed.pull_error == (
        "GitHub refused the pull request for terry/variant-disk-usage-high-compress-only (422)"
    )
    assert proposed.pull_exit == 10  # what `terry remedies compare --propose` exits with
    assert repo.ref_exists(proposed.branch)  # the commit is kept: proposing again finds it
