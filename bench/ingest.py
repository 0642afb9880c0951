"""Alerts per second accepted by ``POST /api/v1/alerts`` of a real ``terry serve``.

Starts ``terry --repo DIR serve --listen 127.0.0.1:PORT --no-worker`` as a subprocess, waits
for ``GET /healthz`` 200, then a second process (this script with ``--client``: asyncio,
raw sockets, HTTP/1.1 keep-alive, C connections, default 32) sends single-alert Alertmanager
v4 payloads with distinct fingerprints for D seconds (default 10, ``--quick`` 3); then
again with one connection, to show what concurrency buys. Reports accepted/s, p50/p99
latency, non-2xx, the CPU each side used (cores), and whether every 202'd fingerprint is in
the ``alerts`` table afterwards (nothing lost).

Baselines in the same run, same client, same uvicorn settings as ``terry serve``: a trivial
Starlette app that answers 202 without storing, and the same app also running Terry's
``parse_payload`` (so the table splits HTTP, parsing and storing). With
``TERRY_TEST_POSTGRES_URL`` set, Terry runs again on a fresh PostgreSQL database
(``TERRY_DATABASE_URL``; ``terry`` has no ``--database-url`` flag).

Target: at least 2,500 alerts/s on 2 cores, each alert committed before its 2xx.
The example hosts are not started: with ``--no-worker`` nothing touches them.

    python bench/ingest.py [--quick] [--duration S] [--connections C]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
from _common import (
    HOSTS,
    TERRY,
    alert,
    cpu_seconds,
    free_port,
    gitops_repo,
    load_note,
    payload,
    pct,
    table,
)
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from terry.store import Store
from terry.store.models import AlertRow, InboxRow

HERE = Path(__file__).resolve()
TOKEN = "bench-webhook-token"  # Alertmanager's bearer token; the baselines ignore it


# -- the load generator (runs in its own process) ----------------------------------------
async def _connection(port: int, prefix: str, deadline: float, out: dict[str, Any]) -> None:
    templates = [payload([alert("FINGERPRINT", host)]) for host in HOSTS]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    seq = 0
    while time.perf_counter() < deadline:
        fingerprint = f"{prefix}-{seq}"
        body = templates[seq % len(templates)].replace("FINGERPRINT", fingerprint).encode()
        seq += 1
        request = (
            f"POST /api/v1/alerts HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        started = time.perf_counter()
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            out["errors"] += 1
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            continue
        out["latencies"].append(time.perf_counter() - started)
        status = int(head.split(b" ", 2)[1])
        if 200 <= status < 300:
            out["accepted"].append(fingerprint)
        else:
            out["non_2xx"] += 1
    writer.close()


async def _load(port: int, connections: int, duration: float, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {"latencies": [], "accepted": [], "non_2xx": 0, "errors": 0}
    started = time.perf_counter()
    deadline = started + duration
    await asyncio.gather(
        *(_connection(port, f"{prefix}-{c}", deadline, out) for c in range(connections))
    )
    out["elapsed"] = time.perf_counter() - started
    return out


def client_main(port: int, connections: int, duration: float, prefix: str) -> None:
    out = asyncio.run(_load(port, connections, duration, prefix))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["cpu"] = usage.ru_utime + usage.ru_stime
    json.dump(out, sys.stdout)


# -- the baselines: the same framework and server, no store --------------------------------
def baseline_main(kind: str, port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from terry.sources.alertmanager import parse_payload

    async def alerts(request: Request) -> Response:
        body = await request.body()
        accepted = len(parse_payload(body).alerts) if kind == "parse" else 1
        return JSONResponse({"accepted": accepted}, status_code=202)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    app = Starlette(
        routes=[
            Route("/api/v1/alerts", alerts, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
    # The settings terry serve uses (terry/cli/serve.py).
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="info",
        access_log=False,
        proxy_headers=False,
        server_header=False,
    )


# -- the driver ------------------------------------------------------------------------------
@contextmanager
def server(argv: list[str], port: int, env: dict[str, str], log: Path) -> Iterator[int]:
    with log.open("w") as sink:
        environ = {**os.environ, "TERRY_WEBHOOK_TOKEN": TOKEN, **env}  # terry serve needs one
        proc = subprocess.Popen(argv, env=environ, stdout=sink, stderr=sink)
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"server exited {proc.returncode}: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        else:
            raise RuntimeError(f"server did not answer /healthz: {log.read_text()[-2000:]}")
        yield proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure(
    argv: list[str], env: dict[str, str], conns: int, seconds: float, log: Path, url: str | None
) -> Any:
    """Load one server; with ``url``, check the store while that server still runs (folding
    the burst into alerts happens after the load, in the server)."""
    port = free_port()
    with server([a.replace("{port}", str(port)) for a in argv], port, env, log) as pid:
        before = cpu_seconds(pid)
        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        client = [sys.executable, str(HERE), "--client", str(port), prefix]
        client += ["--connections", str(conns), "--duration", str(seconds)]
        done = subprocess.run(client, capture_output=True, text=True, check=True)
        result = json.loads(done.stdout)
        result["server_cpu"] = cpu_seconds(pid) - before
        if url:
            result["stored"] = stored(url, result["accepted"])
    return result


def stored(url: str, accepted: list[str]) -> tuple[int, int, float | None]:
    """(inbox rows, 202'd fingerprints missing from the inbox, seconds until all were folded
    into the alerts table or None if not within a minute). The inbox is what is durable
    before the 2xx; folding into alerts/incidents follows once the burst is over."""
    store = Store(url)
    with store.session() as session:
        bodies = list(session.scalars(select(InboxRow.body)))
    durable = {a["fingerprint"] for b in bodies for a in json.loads(b)["alerts"]}
    missing = len(set(accepted) - durable)
    started = time.perf_counter()
    folded_after: float | None = None
    while time.perf_counter() - started < 60:
        with store.session() as session:
            have = set(session.scalars(select(AlertRow.fingerprint)))
        if set(accepted) <= have:
            folded_after = time.perf_counter() - started
            break
        time.sleep(0.5)
    store.dispose()
    return len(bodies), missing, folded_after


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh database on the PostgreSQL server, dropped afterwards."""
    name = f"terry_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s per target")
    parser.add_argument("--duration", type=float, help="seconds of load per target (10)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--client", nargs=2, metavar=("PORT", "PREFIX"), help=argparse.SUPPRESS)
    parser.add_argument("--baseline", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    opts = parser.parse_args()
    opts.duration = opts.duration or (3.0 if opts.quick else 10.0)
    if opts.client:
        client_main(int(opts.client[0]), opts.connections, opts.duration, opts.client[1])
        return 0
    if opts.baseline:
        baseline_main(opts.baseline[0], int(opts.baseline[1]))
        return 0

    print(f"  at the start: {load_note()}")
    pg_admin = os.environ.get("TERRY_TEST_POSTGRES_URL")
    c = opts.connections
    rows: list[list[object]] = []
    notes: list[str] = []
    with ExitStack() as stack:
        repo = stack.enter_context(gitops_repo("ingest", example=False))
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        me = [sys.executable, str(HERE), "--baseline"]
        serve = [TERRY, "--repo", str(repo), "serve", "--no-worker", "--listen", "127.0.0.1:{port}"]
        sqlite_url = f"sqlite:///{repo / '.terry' / 'terry.db'}"
        # (name, server argv, its extra env, store URL to check, connections)
        targets: list[tuple[str, list[str], dict[str, str], str | None, int]] = [
            ("baseline: Starlette 202, no store", [*me, "trivial", "{port}"], {}, None, c),
            ("baseline: + parse_payload, no store", [*me, "parse", "{port}"], {}, None, c),
            ("terry serve, SQLite", serve, {}, sqlite_url, c),
            ("terry serve, SQLite, 1 connection", serve, {}, sqlite_url, 1),
        ]
        if pg_admin:
            pg_url = stack.enter_context(postgres_database(pg_admin))
            env = {"TERRY_DATABASE_URL": pg_url}
            targets.append(("terry serve, PostgreSQL", serve, env, pg_url, c))
        for i, (name, argv, env, url, conns) in enumerate(targets):
            r = measure(argv, env, conns, opts.duration, tmp / f"server-{i}.log", url)
            n, lat, elapsed = len(r["accepted"]), r["latencies"], r["elapsed"]
            ms = [1000 * pct(lat, 50), 1000 * pct(lat, 99)]
            cores = [f"{r[k] / elapsed:.2f}" for k in ("server_cpu", "cpu")]
            rows.append([name, conns, round(n / elapsed), *ms, r["non_2xx"], r["errors"], *cores])
            if url:
                count, missing, folded = r["stored"]
                verdict = "nothing lost" if missing == 0 else f"{missing} LOST"
                when = f"{folded:.1f} s after the load" if folded is not None else "NOT in 60 s"
                notes.append(
                    f"{name}: {n} answered 2xx, all durable in the inbox ({count} rows): "
                    f"{verdict}; folded into alerts {when}"
                )
            print(f"  {name}: {n} accepted in {elapsed:.1f} s", flush=True)
    print(f"  at the end: {load_note()}")
    print(f"\ningest: POST /api/v1/alerts, one alert per request, {opts.duration:g} s per target")
    headers = ["target", "conns", "accepted/s", "p50 ms", "p99 ms", "non-2xx", "errors"]
    print(table([*headers, "server cores", "client cores"], rows))
    print("\n" + "\n".join(notes))
    best = max((int(r[2]) for r in rows if str(r[0]).startswith("terry")), default=0)
    verdict = "met" if best >= 2500 else "NOT met"
    print(f"target ≥ 2500 alerts/s: best terry serve {best}/s ({verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
