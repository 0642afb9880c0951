"""Webhook latency while ten readers read 100,000 incidents, next to a same-run baseline.

Seeds a throw-away SQLite store with N incidents (default 100,000; ``--quick`` 20,000), starts
``terry serve --no-worker`` on it, and posts single-alert Alertmanager payloads back to back on
one connection, timing each, in two phases:

1. baseline: nobody reads (the same server, the same store, the same run);
2. while ten readers (a second process, asyncio, one connection each) each read every
   incident: page by page (``limit=500``, following ``Link: rel="next"``) for this working
   tree; with ``--base REV`` also a server of that revision (``git archive REV terry`` into a
   temp dir, run with ``PYTHONPATH``) on a copy of the same store, whose readers ask for
   everything at once (``limit=100000``, what it allowed; it had no pages).

Reports per server and phase: webhook posts, p50/p99/max latency, how many full reads were
done and the median seconds one took. The working tree's readers also ask once for
``limit=100000`` and must be refused (400) in well under a second.

Target: while the reads run, the webhook's p99 stays under 250 ms (the issue measured 29 s
per webhook before the cap); its ratio to the same-run baseline is printed beside it.

    python bench/api_reads.py [--quick] [--incidents N] [--readers R] [--base REV]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from _common import HOSTS, alert, free_port, gitops_repo, load_note, payload, pct, table
from sqlalchemy import insert

from terry.store import Store
from terry.store.models import IncidentRow, utcnow

HERE = Path(__file__).resolve()
CHECKOUT = HERE.parent.parent
WEBHOOK_TOKEN = "bench-webhook-token"
READ_TOKEN = "bench-reader-token-0123456789"


# -- the readers (a process of their own) ----------------------------------------------------
async def _read_all(client: httpx.AsyncClient, base: str, mode: str) -> dict[str, Any]:
    """One full read of the incidents: pages (following rel="next") or one big request."""
    started = time.perf_counter()
    link: str | None = "/api/v1/incidents?limit=" + ("500" if mode == "pages" else "100000")
    pages = size = 0
    status = 200
    while link is not None:
        async with client.stream("GET", base + link) as response:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
            status = response.status_code
            found = re.fullmatch(r'<([^>]+)>; rel="next"', response.headers.get("link", ""))
        pages += 1
        link = found.group(1) if found and status == 200 else None
    return {
        "seconds": time.perf_counter() - started,
        "pages": pages,
        "bytes": size,
        "status": status,
    }


async def _readers(port: int, readers: int, mode: str) -> list[dict[str, Any]]:
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {READ_TOKEN}"}
    timeout = httpx.Timeout(900.0)
    async with httpx.AsyncClient(headers=headers, timeout=timeout) as client:
        return list(await asyncio.gather(*(_read_all(client, base, mode) for _ in range(readers))))


def readers_main(port: int, readers: int, mode: str) -> None:
    json.dump(asyncio.run(_readers(port, readers, mode)), sys.stdout)


# -- the driver ------------------------------------------------------------------------------
def seed(url: str, incidents: int) -> None:
    """``incidents`` open incidents with labels and annotations the size of a real alert's."""
    store = Store(url)
    store.migrate()
    now = utcnow()
    for start in range(0, incidents, 5000):
        rows = [
            {
                "fingerprint": f"seed-{n:08d}",
                "source": "alert",
                "title": "DiskUsageHigh",
                "host": HOSTS[n % len(HOSTS)],
                "labels": {
                    "alertname": "DiskUsageHigh",
                    "host": HOSTS[n % len(HOSTS)],
                    "mountpoint": "/srv/data",
                    "severity": "warning",
                    "job": "node",
                },
                "annotations": {"summary": f"/srv/data on {HOSTS[n % len(HOSTS)]} is 92% full"},
                "state": "open",
                "opened_at": now,
                "resolved_at": None,
                "truncated": False,
                "recurrence": 0,
            }
            for n in range(start, min(incidents, start + 5000))
        ]
        with store.session() as session:
            session.execute(insert(IncidentRow.__table__), rows)
    store.dispose()
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:  # one file to copy: the log folded back in
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _env(root: Path | None) -> dict[str, str]:
    """This environment, with the Terry at ``root`` first on the path (when given)."""
    env = dict(os.environ)
    if root is not None:
        rest = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(root) + (os.pathsep + rest if rest else "")
    return env


def seed_with(root: Path | None, url: str, incidents: int) -> None:
    """``seed`` run by the Terry at ``root`` (its migrations make the schema it reads)."""
    argv = [sys.executable, str(HERE), "--seed", url, str(incidents)]
    subprocess.run(argv, env=_env(root), cwd=root or CHECKOUT, check=True)


@contextmanager
def serve(repo: Path, db: str, root: Path | None, log: Path) -> Iterator[int]:
    """``terry serve --no-worker`` on ``db``: this working tree's, or the copy at ``root``."""
    port = free_port()
    env = {
        **_env(root),
        "TERRY_DATABASE_URL": f"sqlite:///{db}",
        "TERRY_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "TERRY_READ_TOKENS": f"bench:{READ_TOKEN}",
    }
    argv = [sys.executable, "-m", "terry", "--repo", str(repo), "serve", "--no-worker"]
    argv += ["--listen", f"127.0.0.1:{port}", "--log-level", "warning"]
    with log.open("w") as sink:
        proc = subprocess.Popen(argv, env=env, cwd=root or CHECKOUT, stdout=sink, stderr=sink)
    try:
        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"server exited {proc.returncode}: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        else:
            raise RuntimeError(f"server did not answer /healthz: {log.read_text()[-2000:]}")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def post_while(port: int, until: subprocess.Popen[str] | None, count: int) -> list[float]:
    """Seconds per webhook POST, back to back: ``count`` of them, or while ``until`` runs
    (and at least ``count``)."""
    latencies: list[float] = []
    prefix = uuid.uuid4().hex[:8]
    headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
    with httpx.Client(timeout=600) as client:
        while len(latencies) < count or (until is not None and until.poll() is None):
            body = payload([alert(f"{prefix}-{len(latencies)}", HOSTS[len(latencies) % 3])])
            started = time.perf_counter()
            answer = client.post(
                f"http://127.0.0.1:{port}/api/v1/alerts", content=body, headers=headers
            )
            latencies.append(time.perf_counter() - started)
            if answer.status_code != 202:
                raise RuntimeError(f"webhook answered {answer.status_code}: {answer.text[:200]}")
            time.sleep(0.02)  # ~40 alerts a second at most: a busy Alertmanager, not a flood
    return latencies


def phase(name: str, port: int, readers: int, mode: str | None, count: int) -> list[object]:
    reads: list[dict[str, Any]] = []
    if mode is None:
        latencies = post_while(port, None, count)
    else:
        argv = [sys.executable, str(HERE), "--read", str(port), str(readers), mode]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        latencies = post_while(port, proc, 20)
        out, _ = proc.communicate()
        reads = json.loads(out)
    ms = [1000 * pct(latencies, 50), 1000 * pct(latencies, 99), 1000 * max(latencies)]
    done = [r for r in reads if r["status"] == 200]
    seconds = statistics.median(r["seconds"] for r in done) if done else float("nan")
    pages = max((r["pages"] for r in done), default=0)
    print(f"  {name}: {len(latencies)} posts, p99 {ms[1]:.1f} ms", flush=True)
    return [
        name,
        len(latencies),
        *ms,
        f"{len(done)}/{len(reads)}" if reads else "-",
        seconds,
        pages,
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 incidents")
    parser.add_argument("--incidents", type=int, help="incidents seeded (100,000)")
    parser.add_argument("--readers", type=int, default=10)
    parser.add_argument("--base", metavar="REV", help="also a server of this revision")
    parser.add_argument("--read", nargs=3, metavar=("PORT", "N", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--seed", nargs=2, metavar=("URL", "N"), help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.seed:
        seed(opts.seed[0], int(opts.seed[1]))
        return 0
    if opts.read:
        readers_main(int(opts.read[0]), int(opts.read[1]), opts.read[2])
        return 0
    incidents = opts.incidents or (20_000 if opts.quick else 100_000)
    print(f"  at the start: {load_note()}")
    rows: list[list[object]] = []
    notes: list[str] = []
    scratch = Path(tempfile.mkdtemp(prefix="terry-bench-reads-"))
    try:
        with gitops_repo("reads", example=False) as repo:
            sides: list[tuple[str, Path | None, str]] = [("this tree", None, "pages")]
            if opts.base:
                base = scratch / "base"
                base.mkdir()
                archive = subprocess.run(
                    ["git", "-C", str(CHECKOUT), "archive", opts.base, "terry"],
                    capture_output=True,
                    check=True,
                )
                subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
                sides.insert(0, (f"base {opts.base}", base, "one"))
            for label, root, mode in sides:
                db = scratch / f"{uuid.uuid4().hex[:8]}.db"
                started = time.perf_counter()
                seed_with(root, f"sqlite:///{db}", incidents)  # that side's own schema
                took = time.perf_counter() - started
                print(f"  {label}: seeded {incidents} incidents in {took:.1f} s")
                with serve(repo, str(db), root, scratch / f"{label}.log".replace(" ", "-")) as port:
                    rows.append(phase(f"{label}: no readers", port, 0, None, 200))
                    reading = "pages of 500" if mode == "pages" else "limit=100000 at once"
                    name = f"{label}: {opts.readers} readers, {reading}"
                    rows.append(phase(name, port, opts.readers, mode, 20))
                    if root is None:
                        started = time.perf_counter()
                        answer = httpx.get(
                            f"http://127.0.0.1:{port}/api/v1/incidents?limit=100000",
                            headers={"Authorization": f"Bearer {READ_TOKEN}"},
                            timeout=600,
                        )
                        took = 1000 * (time.perf_counter() - started)
                        notes.append(
                            f"{label}: limit=100000 answered {answer.status_code} in "
                            f"{took:.1f} ms: {answer.text[:90]}"
                        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"  at the end: {load_note()}")
    print(f"\napi reads: webhook latency while {opts.readers} readers read {incidents} incidents")
    headers = ["server, phase", "posts", "p50 ms", "p99 ms", "max ms", "full reads"]
    print(table([*headers, "s per full read", "pages"], rows))
    print("\n" + "\n".join(notes))
    tree = [r for r in rows if str(r[0]).startswith("this tree")]
    alone, busy = float(tree[0][3]), float(tree[1][3])  # type: ignore[arg-type]
    verdict = "met" if busy < 250 else "NOT met"
    print(
        f"target: webhook p99 while reading < 250 ms: {busy:.1f} ms ({verdict}); "
        f"{busy / max(alone, 1.0):.1f}x its p99 with no readers ({alone:.1f} ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
