"""``terry serve``."""

from __future__ import annotations

import logging

import click

from terry.cli.context import open_config, open_store
from terry.errors import InputError
from terry.redact import install_log_filter


class _LogReporter:
    def __init__(self) -> None:
        self.log = logging.getLogger("terry.pipeline")

    def step(self, proposal_id: int | None, message: str) -> None:
        self.log.info("%s%s", f"#{proposal_id} " if proposal_id else "", message)

    def event(self, proposal_id: int, kind: str, event: object) -> None:
        host, status, task = (getattr(event, a, None) for a in ("host", "status", "task"))
        if host and status:
            self.log.debug("#%s %s %s %s %s", proposal_id, kind, host, status, task)


@click.command("serve")
@click.option(
    "--listen",
    metavar="HOST:PORT",
    help="Address to listen on (terry.yml server.listen, default 127.0.0.1:9180).",
)
@click.option(
    "--no-worker",
    is_flag=True,
    help="Only accept and store alerts; remediate nothing (another server does).",
)
@click.option(
    "--no-schedules",
    is_flag=True,
    help="Run none of terry.yml's schedules here (cron or another server runs them).",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 32),
    default=2,
    show_default=True,
    help="Incidents remediated at once (host locks keep one run per host).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Start without a webhook token: anyone who can reach the port may post alerts "
    "(and read, when no reader token is set). Logged and shown on /healthz.",
)
@click.pass_context
def command(
    ctx: click.Context,
    listen: str | None,
    no_worker: bool,
    no_schedules: bool,
    threads: int,
    log_level: str,
    insecure_no_auth: bool,
) -> None:
    """Serve Alertmanager's webhook and Terry's API, and remediate in the background.

    \b
    POST /api/v1/alerts     Alertmanager webhook (bearer token from $TERRY_WEBHOOK_TOKEN,
                            required unless --insecure-no-auth; body limit
                            server.max_body_bytes)
    GET  /healthz           200 when the store takes a write now, 503 otherwise (no token)
    GET  /metrics           Prometheus metrics (a reader token, unless
                            server.metrics_public)
    GET  /api/v1/incidents[/ID], /api/v1/proposals[/ID]   read-only JSON: a reader
                            token from $TERRY_READ_TOKENS (NAME:TOKEN,...); lists take
                            limit (at most 500), before_id and state, and link the next
                            page (Link: rel="next")
    POST /api/v1/proposals/ID/approve|reject|apply|rollback, /api/v1/incidents/ID/retry
                            the write API: an API token whose role may
                            (docs/permissions.md; the CLI's remote mode)
    GET  /console, /incidents/ID, /proposals/ID, /console/drift, /console/weekly
                            the web console: log in with any token that may read (a
                            viewer's: read only; an operator's or admin's: approve and
                            reject as its role allows); sessions signed with
                            $TERRY_CONSOLE_SECRET, ended by logging out

    Schedules of terry.yml (drift scans and fixes, their reports delivered) run here too,
    one run of each at a time across servers; see 'terry schedule --help'.

    Alerts are committed to the store before the 202. On SIGTERM the server stops taking
    requests, finishes the remediation in hand, and exits; queued work resumes on restart.
    """
    import uvicorn

    from terry.app import build_pipeline
    from terry.service.schedules import Scheduler
    from terry.service.server import create_app
    from terry.service.worker import Worker
    from terry.sources.drift import drift_fixer

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = open_config(ctx)
    install_log_filter()  # on the handler basicConfig added: secrets never reach the log
    store = open_store(config)
    address = listen or config.server.listen
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise InputError(f"--listen {address!r}: expected HOST:PORT")
    worker = None
    if not no_worker:
        worker = Worker(
            lambda: build_pipeline(config, store, reporter=_LogReporter()),
            store,
            threads=threads,
            gather=config.storm.gather,
            gather_max=config.storm.gather_max,
        )
    scheduler = None
    if config.schedules and not no_schedules:
        scheduler = Scheduler(
            config,
            store,
            fix=drift_fixer(lambda: build_pipeline(config, store, reporter=_LogReporter())),
        )
    app = create_app(
        config, store, worker=worker, scheduler=scheduler, insecure_no_auth=insecure_no_auth
    )
    uvicorn.run(
        app,
        host=host.strip("[]") or "127.0.0.1",
        port=int(port),
        log_level=log_level,
        # uvicorn's records go to the root logger's handler (and its redacting filter)
        # instead of handlers of its own.
        log_config=None,
        access_log=log_level == "debug",
        timeout_graceful_shutdown=30,
        # Terry reads no client address from proxy headers; skipping the middleware is
        # measurably cheaper per webhook request.
        proxy_headers=False,
        server_header=False,
    )
