"""``terry notifications``: the notifier's outbox (terry.notify): what is owed, sent and
dead, one delivery round by hand, and a test message to a route."""

from __future__ import annotations

import click
from rich.table import Table
from sqlalchemy import select

from terry.cli.context import open_config, open_store
from terry.cli.output import console, emit_json, inert, output_option
from terry.errors import InputError, NotFound

_STATES = ("pending", "delivered", "dead")


@click.group("notifications")
def command() -> None:
    """Notifications: routes in terry.yml, an outbox in the store, sent through apprise.

    \b
    In terry.yml (the URL stays in the environment, never in the file, store or logs):
      notifications:
        routes:
          - name: oncall
            url_env: TERRY_SLACK_URL   # an apprise URL (slack://, discord://, msteams://,
                                       # mailto://, ntfy://, json://...) or an https webhook
            format: auto               # auto | slack | discord | json (for plain https URLs)
            events: [needs-review, failed, rolled-back, kept-for-human]
            environments: [production] # optional filters, empty = any
            severities: [critical]
        group_window: 5                # seconds new messages wait to be grouped
        max_attempts: 8                # then the notification is dead
    Events: incident-opened, drift-found, forecast-warning, needs-review, applied,
    verified, failed, rolled-back, kept-for-human, resolved.

    'terry serve' delivers in a thread of its own; without it, run
    'terry notifications deliver' from cron. Delivery is at least once: a target that is
    down is retried with backoff, then the notification is dead (list --state dead, retry).
    """


@command.command("list")
@click.option("--state", type=click.Choice([*_STATES, "all"]), default="all", show_default=True)
@click.option("--route", help="Only this route's notifications.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@output_option
@click.pass_context
def list_(ctx: click.Context, state: str, route: str | None, limit: int, output: str) -> None:
    """The newest notifications: route, event, incident, state, attempts, last error.

    \b
      terry notifications list --state dead
      terry notifications list --route oncall --output json
    """
    from terry.store.models import NotificationRow

    store = open_store(open_config(ctx))
    query = select(NotificationRow).order_by(NotificationRow.id.desc()).limit(limit)
    if state != "all":
        query = query.where(NotificationRow.state == state)
    if route:
        query = query.where(NotificationRow.route == route)
    with store.session() as session:
        rows = [
            {
                "id": r.id,
                "route": r.route,
                "event": r.event,
                "incident": (r.payload or {}).get("ref") or r.incident_id,
                "incident_id": r.incident_id,
                "proposal_id": r.proposal_id,
                "state": r.state,
                "attempts": r.attempts,
                "created_at": r.created_at,
                "next_attempt_at": r.next_attempt_at if r.state == "pending" else None,
                "delivered_at": r.delivered_at,
                "last_error": r.last_error,
            }
            for r in session.scalars(query)
        ]
    if output == "json":
        emit_json(rows)
        return
    if not rows:
        console.print("no notifications" + ("" if state == "all" else f" {state}"))
        return
    table = Table("id", "route", "event", "incident", "state", "tries", "when", "last error")
    for row in rows:
        when = row["delivered_at"] or row["next_attempt_at"] or row["created_at"]
        table.add_row(
            str(row["id"]),
            inert(row["route"]),
            row["event"],
            inert(row["incident"] or "-"),
            row["state"],
            str(row["attempts"]),
            f"{when:%Y-%m-%d %H:%M:%S}",
            inert(row["last_error"] or ""),
        )
    console.print(table)


@command.command("retry")
@click.argument("ids", nargs=-1, type=click.IntRange(1))
@click.option("--dead", is_flag=True, help="Every dead notification.")
@output_option
@click.pass_context
def retry(ctx: click.Context, ids: tuple[int, ...], dead: bool, output: str) -> None:
    """Send notifications again at the next round: IDs, or --dead for every dead one.

    Exit codes: 0 queued again, 2 neither IDs nor --dead, 4 no such notification,
    5 it was delivered already.
    """
    from terry.notify.outbox import retry as retry_rows

    if bool(ids) == dead:
        raise InputError("give notification IDs or --dead (one of them)")
    store = open_store(open_config(ctx))
    again = retry_rows(store, ids=ids, dead=dead)
    if output == "json":
        emit_json({"retried": again})
    else:
        console.print(f"{len(again)} notification(s) will be sent at the next round")


@command.command("deliver")
@output_option
@click.pass_context
def deliver(ctx: click.Context, output: str) -> None:
    """One delivery round: owe notifications for new events, send what is due.

    What 'terry serve' does every few seconds; run it from cron without a server.
    Exit codes: 0 every due message sent (or none due), 1 a send failed (retried later).
    """
    from terry.notify.deliver import deliver_round

    config = open_config(ctx)
    done = deliver_round(config, open_store(config))
    if output == "json":
        emit_json(done)
    else:
        console.print(
            f"{done.collected} new, {done.messages} message(s) sent for {done.delivered} "
            f"notification(s), {done.failed} failed, {done.dead} dead"
        )
        for error in done.errors:
            console.print(f"  {inert(error)}")
    if done.failed:
        ctx.exit(1)


@command.command("test")
@click.argument("route")
@output_option
@click.pass_context
def test(ctx: click.Context, route: str, output: str) -> None:
    """Send a test message to ROUTE now (not through the outbox).

    Exit codes: 0 delivered, 1 not delivered, 3 the route's variable is unset,
    4 no such route.
    """
    import os

    from terry.notify.message import Message
    from terry.notify.routes import target_for
    from terry.notify.send import send

    config = open_config(ctx)
    settings = config.notifications
    found = next((r for r in settings.routes if r.name == route), None)
    if found is None:
        known = ", ".join(r.name for r in settings.routes) or "none in terry.yml"
        raise NotFound(f"no notification route {route!r} (routes: {known})")
    target = target_for(found, os.environ)
    message = Message(
        f"[Terry] test message for route {found.name}",
        f"Events: {', '.join(found.events)}. Sent by 'terry notifications test'.",
    )
    send(target, message, timeout=settings.timeout)  # DeliveryError: exit 1
    if output == "json":
        emit_json({"route": found.name, "delivered": True, "to": target.where})
    else:
        console.print(f"route {found.name}: test message delivered to {target.where}")
