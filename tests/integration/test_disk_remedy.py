"""The disk remedy against what really fills data volumes, through the whole pipeline:
terry init → example hosts (a scratch root with a quota) → DiskUsageHigh → dry run → gate.

Real ansible-playbook (local connection), real git, real regorus, SQLite. Old compressed
rotated logs are aged out and the fix verifies; a disk full of files the remedy may not
touch is not "fixed": its dry run estimates the shortfall and the proposal waits for a
person with that estimate as the reason, never merged, nothing changed on the host.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from terry.demo import example
from tests.conftest import Cli, alert, config_for, example_fleet, payload

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with example_fleet(tmp_path_factory.mktemp("disk") / "ops") as cli:
        yield cli


def data(cli: Cli, host: str) -> Path:
    return cli.repo / ".terry" / "hosts" / host / "srv" / "data"


def percent(cli: Cli, host: str) -> float:
    return example.disk_percent(example.example_hosts(config_for(cli.repo))[host])


def fill(cli: Cli, host: str, directory: str, name: str, *, days: float, to: float) -> list[Path]:
    """Incompressible 1 MiB files ``name`` % n under ``directory``, ``days`` old, until the
    host's /srv/data is at ``to`` percent of its quota."""
    where = data(cli, host) / directory
    where.mkdir(parents=True, exist_ok=True)
    when = time.time() - days * 86400
    written = []
    n = 1
    while percent(cli, host) < to:
        path = where / (name % n)
        path.write_bytes(os.urandom(1024 * 1024))
        os.utime(path, (when, when))
        written.append(path)
        n += 1
    return written


def disk_alert(cli: Cli, host: str, fingerprint: str) -> dict[str, Any]:
    body = payload(
        [alert("DiskUsageHigh", fingerprint=fingerprint, host=host, mountpoint="/srv/data")]
    )
    [outcome] = cli.json("alert", "ingest", "-", input=body)["proposals"]
    return outcome


def test_old_compressed_rotated_logs_are_aged_out_and_the_fix_verifies(fleet: Cli) -> None:
    # what logrotate leaves: compressed copies, a month old (retention is 14 days)
    rotated = fill(fleet, "web-01", "log", "app.log.%d.gz", days=30, to=92)
    assert percent(fleet, "web-01") >= 90

    outcome = disk_alert(fleet, "web-01", "disk-rotated")
    assert outcome["state"] == "verified", outcome
    assert outcome["decision"] == "merge"
    assert [p.name for p in rotated if p.exists()] == []
    assert percent(fleet, "web-01") < 80

    detail = fleet.json("proposals", "show", str(outcome["proposal_id"]))
    [estimate] = detail["check_summary"]["estimates"]
    assert estimate["host"] == "web-01" and estimate["enough"] is True
    assert estimate["would_free_bytes"] >= estimate["needed_bytes"] > 0
    assert re.match(
        rf"would free \d+\.\d MiB \({len(rotated)} file\(s\) to remove", estimate["summary"]
    )


def test_a_fix_that_cannot_reach_the_threshold_waits_for_a_person(fleet: Cli) -> None:
    # data the remedy may not touch: recent, not logs, not scratch files
    kept = fill(fleet, "web-02", "warehouse", "part-%03d.parquet", days=30, to=95)
    before = percent(fleet, "web-02")

    outcome = disk_alert(fleet, "web-02", "disk-short")
    assert outcome["state"] == "awaiting_review", outcome
    assert outcome["decision"] == "review"
    [reason] = outcome["reasons"]
    assert re.fullmatch(
        r"the dry run estimates the fix falls short on web-02: would free 0\.0 MiB "
        r"\(0 file\(s\) to remove: 0\.0 MiB, 0 log\(s\) to compress: 0\.0 MiB\); "
        r"\d+\.\d MiB must go to get /srv/data on web-02 under 80% \(now 9\d\.\d%\)",
        reason,
    ), reason

    detail = fleet.json("proposals", "show", str(outcome["proposal_id"]))
    assert [r["kind"] for r in detail["runs"]] == ["check"]  # never applied
    assert detail["merge_commit"] is None  # never merged
    [estimate] = detail["check_summary"]["estimates"]
    assert estimate["enough"] is False and estimate["would_free_bytes"] == 0
    assert estimate["needed_bytes"] > 0
    assert all(p.exists() for p in kept)
    assert percent(fleet, "web-02") == before
    assert detail["reasons"] == [reason]  # what a reviewer reads on the proposal


def test_thousands_of_files_are_cleaned_by_one_task_not_one_item_each(fleet: Cli) -> None:
    """2,000 files (1,000 stale scratch files, 1,000 rotated logs): one clean-up task over
    the set, every file handled as the per-file loops did, the manifest listing them all."""
    when = time.time() - 30 * 86400
    tmp, logs = data(fleet, "web-01") / "tmp", data(fleet, "web-01") / "log"
    tmp.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    stale, rotated = [], []
    for n in range(1000):
        path = tmp / f"upload-{n:04d}.tmp"
        path.write_bytes(os.urandom(2048))
        os.utime(path, (when, when))
        stale.append(path)
        log = logs / f"worker-{n:04d}.log.1"
        log.write_text(f"2026-11-01 worker {n} request ok\n" * 100)
        rotated.append(log)
    fill(fleet, "web-01", "tmp", "bulk-%d.bin", days=30, to=92)

    outcome = disk_alert(fleet, "web-01", "disk-many")
    assert outcome["state"] == "verified", outcome
    assert not any(p.exists() for p in stale)
    for log in rotated[::97]:
        assert not log.exists()
        packed = Path(f"{log}.gz").read_bytes()
        assert gzip.decompress(packed).decode().count("request ok") == 100
    detail = fleet.json("proposals", "show", str(outcome["proposal_id"]), "--events")
    [apply] = [r for r in detail["runs"] if r["kind"] == "apply"]
    cleanup = [
        e
        for e in apply["events"]
        if e["task"] == "Write the manifest, then remove old files and compress logs"
    ]
    assert [e["status"] for e in cleanup if e["status"]] == ["changed"], cleanup  # one task
    assert len(apply["events"]) < 200  # not an event per file
    manifest_path = data(fleet, "web-01") / ".terry" / str(outcome["proposal_id"])
    manifest = json.loads((manifest_path / "disk_cleanup" / "manifest.json").read_text())
    assert {str(p) for p in rotated} <= set(manifest["compressed"])
    assert {str(p) for p in stale} <= set(manifest["removed"])
