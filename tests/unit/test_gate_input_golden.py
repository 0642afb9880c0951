"""The policy input the gate builds (``GateInput.as_input``), case by case
(``tests/golden/gate_input/``): a proposal's remedy, hosts from an inventory snippet (the real
loader), its record and dry run in; the JSON the policy reads out. And the example in
docs/policy.md, which must be exactly what the code builds."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from terry.gate.input import GateInput
from terry.inventory.hosts import Inventory, load_inventory
from terry.remedies.catalogue import load_catalogue
from terry.store import Store
from terry.store.models import IncidentRow, ProposalRow
from terry.store.runs import History, RemedyRecord, remedy_record
from terry.tenants.loader import parse_tenants
from tests.conftest import REPO_ROOT
from tests.golden_files import cases, check, load_input, orphans

pytestmark = pytest.mark.unit

CATALOGUE = load_catalogue(REPO_ROOT / "roles")
POLICY_DOC = REPO_ROOT / "docs" / "policy.md"


def _inventory(tmp_path: Path, snippet: dict[str, Any]) -> Inventory:
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(snippet))
    return load_inventory(tmp_path, ["hosts.yml"])


def _record(remedy: str, given: dict[str, Any]) -> RemedyRecord:
    return RemedyRecord(
        remedy,
        History(**given["overall"]),
        {env: History(**h) for env, h in (given.get("by_environment") or {}).items()},
    )


@pytest.mark.parametrize("case", cases("gate_input"))
def test_gate_input(case: Path, tmp_path: Path) -> None:
    given = load_input(case)
    inventory = _inventory(tmp_path, given["inventory"])
    # risk and modules as the proposal recorded them: the catalogue's, unless the case says
    # (a remedy outside the catalogue: an AI-composed playbook)
    remedy = CATALOGUE.get(given["remedy"])
    recorded = {"risk": remedy.risk.value, "modules": remedy.modules} if remedy else {}
    recorded |= {k: given[k] for k in ("risk", "modules") if k in given}
    gate_input = GateInput(
        proposal_id=given["proposal_id"],
        remedy=given["remedy"],
        risk=recorded["risk"],
        hosts=tuple(inventory.hosts[h] for h in given["hosts"]),
        modules=tuple(recorded["modules"]),
        recurrence=given["recurrence"],
        record=_record(given["remedy"], given["record"]),
        check=given["check"],
        ai_authored=given.get("ai_authored", False),
        # a tenants document (policies/tenants.yml), when the case has one
        tenancy=parse_tenants(given["tenants"], source="policies/tenants.yml")
        if "tenants" in given
        else None,
    )
    # through JSON, as the policy engine gets it
    check(case, "json", json.loads(json.dumps(gate_input.as_input())))


def test_every_expected_file_has_its_input() -> None:
    assert orphans("gate_input", "json") == []


# -- docs/policy.md ------------------------------------------------------------------------


def _documented_input() -> dict[str, Any]:
    """The JSON example under "## Input" in docs/policy.md."""
    text = POLICY_DOC.read_text(encoding="utf-8")
    section = text.split("\n## Input\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```json\n(.*?)\n```", section, re.S)
    assert found, "docs/policy.md: no ```json block under ## Input"
    return json.loads(found.group(1))


def _differences(doc: Any, code: Any, where: str = "input") -> list[str]:
    """Every key and value where the doc's example and the code's input differ."""
    if isinstance(doc, dict) and isinstance(code, dict):
        out = [f"{where}.{k}: built by the code, not in the doc" for k in code if k not in doc]
        out += [f"{where}.{k}: in the doc, not built by the code" for k in doc if k not in code]
        for key in doc.keys() & code.keys():
            out += _differences(doc[key], code[key], f"{where}.{key}")
        return out
    if isinstance(doc, list) and isinstance(code, list) and len(doc) == len(code):
        return [
            d
            for i, (a, b) in enumerate(zip(doc, code, strict=True))
            for d in _differences(a, b, f"{where}[{i}]")
        ]
    return [] if doc == code else [f"{where}: the doc says {doc!r}, the code builds {code!r}"]


# The doc's history: disk-usage-high verified four times in staging (30, 36, 40 and 46 s from
# proposal to verified) and, in production, rolled back once then verified in 55.5 s.
_DOC_RECORD = [
    ("staging", "verified", 30.0),
    ("production", "rolled_back", 120.0),
    ("staging", "verified", 36.0),
    ("staging", "verified", 40.0),
    ("staging", "verified", 46.0),
    ("production", "verified", 55.5),
]


def _finished(store: Store, remedy: str, runs: list[tuple[str, str, float]]) -> None:
    """Finished proposals of ``remedy``, oldest first, each taking its seconds to its end."""
    start = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    with store.session() as session:
        for n, (environment, state, seconds) in enumerate(runs):
            created = start + timedelta(hours=n)
            incident = IncidentRow(
                fingerprint=f"{remedy}-{n}",
                source="alert",
                title="DiskUsageHigh",
                host="web-01",
                state="resolved",
                opened_at=created,
                resolved_at=created,
                fixed_at=created if state == "verified" else None,
            )
            session.add(incident)
            session.flush()
            session.add(
                ProposalRow(
                    incident_id=incident.id,
                    remedy=remedy,
                    role="disk_cleanup",
                    hosts=["web-01"],
                    params={},
                    risk="low",
                    state=state,
                    environment=environment,
                    created_at=created,
                    updated_at=created + timedelta(seconds=seconds),
                    reasons=[],
                    check_summary={},
                )
            )


def test_the_gate_input_in_docs_policy_md_is_what_the_code_builds(
    store: Store, tmp_path: Path
) -> None:
    doc = _documented_input()
    # The doc's proposal, through the code: web-01 as the inventory says it, the remedy as
    # the catalogue says it, its record as the store keeps it.
    inventory = _inventory(
        tmp_path,
        {
            "all": {
                "children": {
                    "staging": {
                        "hosts": {
                            "web-01": {
                                "terry_environment": "staging",
                                "terry_tenant": "blue",
                                "terry_labels": {"role": "web"},
                            }
                        }
                    }
                }
            }
        },
    )
    remedy = CATALOGUE.get("disk-usage-high")
    assert remedy is not None
    _finished(store, remedy.name, _DOC_RECORD)
    built = GateInput(
        proposal_id=7,
        remedy=remedy.name,
        risk=remedy.risk.value,
        hosts=(inventory.hosts["web-01"],),
        modules=remedy.modules,
        recurrence=0,
        record=remedy_record(store, remedy.name, exclude=7),
        check={
            "ok": True,
            "changed": 3,
            "failed_hosts": [],
            "unreachable_hosts": [],
            "estimates": [
                {
                    "host": "web-01",
                    "enough": True,
                    "summary": "would free 25.1 MiB (3 file(s) to remove: 0.8 MiB, 4 log(s) to "
                    "compress: 24.3 MiB); 3.9 MiB must go to get /srv/data on web-01 under 80% "
                    "(now 92.1%)",
                    "needed_bytes": 4089447,
                    "would_free_bytes": 26319667,
                }
            ],
        },
        ai_authored=False,
    ).as_input()
    code = json.loads(json.dumps(built))
    differences = _differences(doc, code)
    assert not differences, "docs/policy.md's input example is out of date:\n" + "\n".join(
        differences
    )
    assert doc == code
