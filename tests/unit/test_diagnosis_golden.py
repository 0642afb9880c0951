"""Diagnosis, case by case (``tests/golden/diagnosis/``): an alert and an inventory snippet in,
the remedy with its hosts and checked parameters, or the reason there is none, out. The
real catalogue (``roles/*/remedies.yml``) and the real inventory loader (Ansible's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from terry.config import Config
from terry.diagnosis.rules import Diagnosis, NoFix, diagnose
from terry.inventory.hosts import load_inventory
from terry.remedies.catalogue import load_catalogue
from tests.conftest import REPO_ROOT
from tests.golden_files import GOLDEN, cases, check, load_input, orphans

pytestmark = pytest.mark.unit

CATALOGUE = load_catalogue(REPO_ROOT / "roles")


def _outcome(found: Diagnosis | NoFix) -> dict[str, Any]:
    if isinstance(found, NoFix):
        return {
            "no_fix": {"reason": found.reason, "host": found.host, "unmatched": found.unmatched}
        }
    return {
        "diagnosis": {
            "remedy": found.remedy.name,
            "hosts": [str(h.name) for h in found.hosts],
            "params": found.params,
        }
    }


@pytest.mark.parametrize("case", cases("diagnosis"))
def test_diagnosis(case: Path, tmp_path: Path) -> None:
    given = load_input(case)
    labels, annotations = given.get("labels") or {}, given.get("annotations") or {}
    for name, value in {**labels, **annotations}.items():
        assert isinstance(value, str), f"{case.name}: {name} is {value!r}: quote it (text only)"
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(given["inventory"]))
    found = diagnose(
        alertname=given["alertname"],
        labels=labels,
        annotations=annotations,
        catalogue=CATALOGUE,
        inventory=load_inventory(tmp_path, ["hosts.yml"]),
        host_labels=given.get("host_labels", Config().host_labels),
    )
    check(case, "yml", _outcome(found))


def test_every_remedy_in_the_catalogue_has_a_case() -> None:
    diagnosed = {
        yaml.safe_load(p.read_text()).get("diagnosis", {}).get("remedy")
        for p in (GOLDEN / "diagnosis").glob("*.expected.yml")
    }
    assert {r.name for r in CATALOGUE.remedies} <= diagnosed


def test_every_expected_file_has_its_input() -> None:
    assert orphans("diagnosis", "yml") == []
