"""A host with no price is never counted as free (docs/cost.md): the totals are of what has
a price, said as "at least", with the hosts left out named, in every format; and a price no
sum can hold is refused rather than printed as Infinity in JSON."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from terry.gitops.init import init_repository
from terry.gitops.repo import Repo
from tests.conftest import Cli, make_cli

pytestmark = pytest.mark.integration


def _shop(root: Path, prices: str) -> Cli:
    repo = init_repository(root / "ops").path
    (repo / "costs").mkdir()
    (repo / "costs" / "prices.yml").write_text(prices)
    hosts = repo / "inventories" / "example" / "hosts.yml"
    inventory = yaml.safe_load(hosts.read_text())
    types = {"web-01": "m5.xlarge", "web-02": "x9.huge", "db-01": "m5.xlarge"}
    for group in inventory["all"]["children"].values():
        for name, host in group["hosts"].items():
            host["terry_instance_type"] = types[name]
    hosts.write_text(yaml.safe_dump(inventory))
    Repo(repo).commit_paths(["costs", "inventories"], "prices and types")
    return make_cli(repo)


PRICES = "currency: USD\ninstances:\n  m5.xlarge: 0.2\n"


def test_a_host_without_a_price_is_left_out_and_said(tmp_path: Path) -> None:
    cli = _shop(tmp_path, PRICES)
    report = cli.json("cost", "report", "--format", "json")
    assert report["unpriced_hosts"] == ["web-02"]
    assert report["monthly_total"] == pytest.approx(2 * 0.2 * 730)
    [odd] = [h for h in report["hosts"] if h["host"] == "web-02"]
    assert odd["unpriced"] == "no price for instance type x9.huge"
    text = cli("cost", "report").stdout
    assert "At least 292.00 USD a month for 3 host(s)" in " ".join(text.split())
    assert "1 host(s) have a part with no price, left out of the totals" in text
    page = cli("cost", "report", "--format", "html").stdout
    assert "1 partly unpriced, left out: at least this" in page


def test_a_price_no_sum_can_hold_is_refused(tmp_path: Path) -> None:
    cli = _shop(tmp_path, "currency: USD\ninstances:\n  m5.xlarge: 1.0e+308\n")
    refused = cli("cost", "report", "--format", "json")
    assert refused.exit_code == 3, refused.stdout
    assert "is not a price Terry can add up" in refused.stderr
    assert "Infinity" not in refused.stdout
