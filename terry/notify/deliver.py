"""Delivery rounds: collect new events into the outbox, send what is due, record how it
went. ``terry notifications deliver`` runs one round; ``terry serve`` runs them in a
thread of their own (``Notifier``), so a target that is slow or down delays only its own
messages, never the pipeline (which only writes audit rows).

A round sends one message per route and event kind: a storm of 200 incidents opened is one
message listing the first few and "and 190 more". When a route fails, its other messages
of the round are not tried (a route that hangs costs one timeout per round) and are
retried with it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from terry.config import Config, RouteConfig
from terry.errors import TerryError
from terry.notify import slack_app
from terry.notify.message import compose
from terry.notify.outbox import Claimed, claim, collect, settle
from terry.notify.routes import SLACK_APP, target_for
from terry.notify.send import DeliveryError, check, send
from terry.notify.tenancy import UNBOUND, TenancyReader
from terry.redact import Redactor, redact
from terry.store import Store

__all__ = ["Notifier", "Round", "check_routes", "deliver_round"]

log = logging.getLogger("terry.notify")


@dataclass(frozen=True)
class Round:
    """What one round did: events newly owed, messages sent, rows delivered, rows failed
    (to be retried), rows that went dead, and each failure (without URLs)."""

    collected: int = 0
    messages: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    errors: tuple[str, ...] = field(default_factory=tuple)


def _lease(config: Config) -> float:
    """Seconds a round holds its rows: long enough for its sends, short enough that the
    rows of a round that died are soon due again."""
    return max(120.0, config.notifications.timeout * 10)


def deliver_round(
    config: Config,
    store: Store,
    *,
    environ: Mapping[str, str] | None = None,
    now: datetime | None = None,
    tenancy: TenancyReader | None = None,
) -> Round:
    """Collect, then send every due message once. ``tenancy``: where main's tenants are
    read (default: read now); when they cannot be read, nothing new is owed this round
    (a tenant's route must not get another's event) and the audit rows wait for the next."""
    settings = config.notifications
    env = os.environ if environ is None else environ
    collected = 0
    try:
        placed = (tenancy or TenancyReader(config)).read() if settings.routes else UNBOUND
    except TerryError as exc:
        log.error("notifications: tenants cannot be read, owing nothing new: %s", exc)
    else:
        collected = collect(store, settings, now=now, tenancy=placed)
    routes = {r.name: r for r in settings.routes}
    if not routes:
        return Round(collected=collected)
    held = claim(store, list(routes), lease=_lease(config), now=now)
    groups: dict[tuple[str, str, int | None], list[Claimed]] = {}
    for item in held:
        # A Slack app route threads each incident's messages: its groups are per incident.
        incident = item.event.incident_id if routes[item.route].slack_app else None
        groups.setdefault((item.route, item.event.kind.value, incident), []).append(item)
    down: dict[str, tuple[str, float | None]] = {}
    messages = delivered = failed = dead = 0
    errors: list[str] = []
    for (route, _kind, _incident), items in groups.items():
        error, retry_after = down.get(route, (None, None))
        permanent = False
        if error is None:
            try:
                target = target_for(routes[route], env)
                message = compose(
                    [i.event for i in items],
                    public_url=config.server.public_url,
                    max_items=settings.max_items,
                    markup=target.markup,
                )
                if target.shape == SLACK_APP:
                    slack_app.deliver(
                        store, target, [i.event for i in items], message, timeout=settings.timeout
                    )
                else:
                    send(target, message, timeout=settings.timeout)
                messages += 1
            except Exception as exc:
                # A TerryError says why; anything else is a bug that must not stop the
                # other routes' messages (nor keep this route's rows claimed).
                said = str(exc) if isinstance(exc, TerryError) else f"{type(exc).__name__}: {exc}"
                error = _hidden(routes[route], env)(redact(said))[:500]
                if isinstance(exc, DeliveryError):
                    retry_after = exc.retry_after
                    # Refused for good (a bad token, a channel the bot is not in, a
                    # webhook's 404): dead now.
                    permanent = exc.permanent
                down[route] = (error, retry_after)
                errors.append(error)
                if isinstance(exc, TerryError):
                    log.warning("notification to route %s failed: %s", route, error)
                else:
                    log.error("notification to route %s failed unexpectedly: %s", route, error)
        once = settings.model_copy(update={"max_attempts": 1}) if permanent else settings
        dead += settle(store, items, once, error=error, retry_after=retry_after)
        if error is None:
            delivered += len(items)
        else:
            failed += len(items)
    return Round(collected, messages, delivered, failed, dead, tuple(errors))


def _hidden(route: RouteConfig, environ: Mapping[str, str]) -> Redactor:
    """The route's secret values as the environment has them (its URL, its URL's parts, a
    Slack app's token), for text about it that did not come through its ``Target``."""
    names = [n for n in (route.url_env, route.slack_app and route.slack_app.token_env) if n]
    values = [(environ.get(n) or "").strip() for n in names]
    try:
        return target_for(route, environ).redactor | Redactor(values)
    except Exception:  # no target: the values alone
        return Redactor(values)


def check_routes(config: Config, environ: Mapping[str, str] | None = None) -> list[str]:
    """What is wrong with each route's target as the environment has it (a variable unset,
    no URL, a URL apprise does not know): said when ``terry serve`` starts, not at the first
    notification."""
    env = os.environ if environ is None else environ
    return [p for route in config.notifications.routes if (p := check(route, env))]


class Notifier:
    """``terry serve``'s delivery thread: a round every ``notifications.poll_seconds``."""

    def __init__(
        self, config: Config, store: Store, *, environ: Mapping[str, str] | None = None
    ) -> None:
        self.config = config
        self.store = store
        self.environ = environ
        self.tenancy = TenancyReader(config)  # main's tenants, read again when main moves
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="terry-notifier", daemon=True)

    def start(self) -> None:
        if self.config.notifications.routes:
            for problem in check_routes(self.config, self.environ):
                log.error("notifications: %s (its messages wait and are retried)", problem)
            self._thread.start()

    def stop(self) -> None:
        """Stop after the send in hand (at most one timeout); what is left stays owed."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.config.notifications.timeout + 10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                done = deliver_round(
                    self.config, self.store, environ=self.environ, tenancy=self.tenancy
                )
                if done.messages or done.failed:
                    log.info(
                        "notifications: %d message(s) sent, %d row(s) delivered, %d failed, "
                        "%d dead",
                        done.messages,
                        done.delivered,
                        done.failed,
                        done.dead,
                    )
            except Exception:
                log.exception("notification round failed; trying again")
            self._stop.wait(self.config.notifications.poll_seconds)
