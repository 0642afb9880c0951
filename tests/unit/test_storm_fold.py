"""What folds a storm into one proposal: the remedy's parameters, read from the shipped
catalogue and from a copy whose parameters come from annotations. Free text from an
annotation (a summary) differs on every host and folds; a path or a number from an
annotation is what the fix acts on and never folds when it differs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from terry.diagnosis.finding import Fix
from terry.diagnosis.rules import Diagnosis
from terry.inventory.hosts import Host
from terry.proposals import storm
from terry.remedies.catalogue import Remedy, load_catalogue
from terry.remedies.params import resolve_params
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit


def _remedy(roles: Path) -> Remedy:
    remedy = load_catalogue(roles).get("disk-usage-high")
    assert remedy is not None
    return remedy


@pytest.fixture(scope="module")
def from_annotations(tmp_path_factory: pytest.TempPathFactory) -> Remedy:
    """The disk remedy with its path and threshold taken from annotations."""
    roles = tmp_path_factory.mktemp("roles")
    shutil.copytree(REPO_ROOT / "roles" / "disk_cleanup", roles / "disk_cleanup")
    spec = roles / "disk_cleanup" / "remedies.yml"
    text = spec.read_text()
    assert "from: label:mountpoint" in text and "from: label:threshold" in text
    spec.write_text(
        text.replace("from: label:mountpoint", "from: annotation:mountpoint").replace(
            "from: label:threshold", "from: annotation:threshold"
        )
    )
    return _remedy(roles)


def _fix(remedy: Remedy, host: str, labels: dict[str, str], notes: dict[str, str]) -> Fix:
    params = resolve_params(remedy.params, {"alertname": "DiskUsageHigh", **labels}, notes)
    return Fix(Diagnosis(remedy, (Host(host, None, "staging", None),), params), base="0" * 40)


def test_a_path_or_number_from_an_annotation_folds_only_when_it_is_the_same(
    from_annotations: Remedy,
) -> None:
    srv = {"mountpoint": "/srv/data", "threshold": "80"}
    a = _fix(from_annotations, "s-1", {}, {**srv, "summary": "s-1 is full"})
    b = _fix(from_annotations, "s-2", {}, {"mountpoint": "/var/log", "threshold": "50"})
    c = _fix(from_annotations, "s-3", {}, {**srv, "summary": "s-3 is full"})
    groups = storm.group([(1, a), (2, b), (3, c)])
    assert [[i for i, _f in g] for g in groups] == [[1, 3], [2]]
    merged = storm.merged_fix([f for _i, f in groups[0]])
    assert [h.name for h in merged.diagnosis.hosts] == ["s-1", "s-3"]
    # what the fix acts on is exactly each host's; only the words for people are shared
    assert merged.diagnosis.params["path"] == "/srv/data"
    assert merged.diagnosis.params["threshold"] == 80
    assert merged.diagnosis.params["reason"] == "s-1 is full (and the other hosts of a storm)"


def test_the_shipped_remedy_folds_across_summaries_not_across_mountpoints() -> None:
    remedy = _remedy(REPO_ROOT / "roles")
    srv = {"mountpoint": "/srv/data"}
    a = _fix(remedy, "s-1", srv, {"summary": "one"})
    b = _fix(remedy, "s-2", srv, {"summary": "two"})
    c = _fix(remedy, "s-3", {"mountpoint": "/var/log"}, {"summary": "one"})
    assert [[i for i, _f in g] for g in storm.group([(1, a), (2, b), (3, c)])] == [[1, 2], [3]]
