"""Routes: which events go where (``notifications.routes`` in terry.yml), and the apprise
URL each route's variable holds.

A route's URL is a secret (a Slack or Discord webhook URL is its own credential): it is
read from the environment when a message is sent, never stored, and ``Target`` hides it
from ``repr`` and from every error (``Target.redactor``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from terry.config import RouteConfig
from terry.environments import environment_name
from terry.errors import ConfigError
from terry.notify.events import Event
from terry.redact import Redactor

__all__ = ["SLACK_APP", "Target", "matches", "target_for"]

SLACK_APP = "slack-app"  # a Target's shape for a Slack app route (terry.notify.slack_app)

# Schemes whose URL's host is a host (shown in ``Target.where``). In the other apprise URLs
# the "host" is often the credential itself (tgram://{bot_token}/..., pbul://{token},
# pagerduty://{integration_key}@{api_key}): it is hidden with the rest.
WEB_SCHEMES = frozenset({"http", "https", "json", "jsons", "xml", "xmls", "form", "forms"})
MAIL_SCHEMES = frozenset({"mailto", "mailtos"})

# Plain https webhook URLs apprise speaks to natively, by host.
NATIVE_HOSTS = {
    "hooks.slack.com": "slack",
    "hooks.slack-gov.com": "slack",
    "discord.com": "discord",
    "discordapp.com": "discord",
}


def matches(route: RouteConfig, event: Event, bound: Collection[str] = ()) -> bool:
    """Whether ``route`` wants ``event``: one of its events, and (where it names some) one
    of its environments, severities and services. An event without an environment (or
    severity, or service) does not pass a route that filters on it. ``bound``: the tenants
    the route carries (``Tenancy.bound``: its own ``tenants`` and the tenants naming it); a
    bound route wants only events with a host in one of them (``Event.tenants``, placed
    from the inventory)."""
    if event.kind.value not in route.events:
        return False
    environment = environment_name(event.environment)
    checks = ((route.environments, environment), (route.severities, event.severity))
    if not all(not wanted or value in wanted for wanted, value in checks):
        return False
    if route.services and route.services.isdisjoint(event.services):
        return False  # a service's owners: the events about it (an exhausted budget)
    tenants = {*route.tenants, *bound}
    return not tenants or not tenants.isdisjoint(event.tenants)


@dataclass(frozen=True)
class Target:
    """Where one route's messages go. ``shape``: ``apprise`` (an apprise URL, or a webhook
    URL apprise knows natively), or ``slack`` / ``discord`` / ``json`` (that body, POSTed to
    an http(s) URL through apprise's generic JSON plugin)."""

    route: str
    shape: str
    url: str = field(repr=False)
    # A Slack app route (shape ``slack-app``): the bot token and the channel; ``url`` is
    # the Web API's base URL.
    token: str = field(default="", repr=False)
    channel: str = ""

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0].lower() if "://" in self.url else ""

    @property
    def redactor(self) -> Redactor:
        """Hides the URL and each of its longer parts (webhook tokens sit in the path, an
        apprise URL's in its "host" too; query values, user and password), and a Slack
        app's token."""
        if self.shape == SLACK_APP:
            return Redactor(p for p in (self.token,) if p)
        parts = _split(self.url)
        pieces = [self.url, parts.path, parts.query, parts.password, parts.username]
        pieces += [unquote(p) for p in (parts.password, parts.username) if p]
        pieces += [unquote(p) for p in parts.path.split("/")]
        for pair in parts.query.split("&"):
            pieces += [pair, unquote(pair.partition("=")[2]), pair.partition("=")[2]]
        if self.scheme not in WEB_SCHEMES | MAIL_SCHEMES:
            pieces += [parts.netloc, unquote(parts.netloc)]
            pieces += [unquote(p) for p in re.split(r"[@:]", parts.netloc)]
        return Redactor(p for p in pieces if p)

    @property
    def where(self) -> str:
        """The route as people may see it: its scheme, and its host when that is a host
        (http(s), json://, mailto://...), never the rest."""
        scheme = self.scheme
        if scheme not in WEB_SCHEMES | MAIL_SCHEMES:
            return f"{scheme}://"
        host = _split(self.url).hostname or ""
        return f"{scheme}://{host}" if host else f"{scheme}://"

    @property
    def markup(self) -> str:
        """The markup the service renders the message's text in: ``slack`` (mrkdwn:
        ``<!channel>``, ``<@U123>``, ``<url|text>``), ``discord`` (Markdown, mentions), or
        ``text`` (JSON, and the services apprise itself escapes for: email's HTML...)."""
        if self.shape in ("slack", "discord"):
            return self.shape
        if self.shape == SLACK_APP:
            return "slack"
        if self.shape != "apprise":
            return "text"
        host = (_split(self.url).hostname or "").lower() if self.scheme in WEB_SCHEMES else ""
        native = NATIVE_HOSTS.get(host, "")
        if self.scheme == "discord" or native == "discord":
            return "discord"
        if self.scheme == "slack" or native == "slack":
            return "slack"
        return "text"


class _Parts:
    """``urlsplit``'s answer, read once (its ``hostname`` and ``port`` raise on some
    input)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.path, self.query, self.netloc = parts.path, parts.query, parts.netloc
        self.username, self.password = parts.username, parts.password
        self.hostname = parts.hostname


def _split(url: str) -> _Parts:
    try:
        return _Parts(url)
    except ValueError:  # checked by target_for; a Target made elsewhere hides it all
        return _Parts("")


def target_for(route: RouteConfig, environ: Mapping[str, str]) -> Target:
    """The route's target, from the variable it names; ConfigError when it is unset or is
    no URL."""
    if route.slack_app is not None:
        app = route.slack_app
        token = (environ.get(app.token_env) or "").strip()
        if not token:
            raise ConfigError(f"route {route.name}: ${app.token_env} is not set (the bot token)")
        return Target(route.name, SLACK_APP, app.api_url, token=token, channel=app.channel)
    assert route.url_env is not None  # RouteConfig: exactly one of url_env and slack_app
    url = (environ.get(route.url_env) or "").strip()
    if not url:
        raise ConfigError(f"route {route.name}: ${route.url_env} is not set (the route's URL)")
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme):
        raise ConfigError(
            f"route {route.name}: ${route.url_env} is not a URL (expected an apprise URL such "
            "as slack://... or an https:// webhook URL)"
        )
    try:
        parts = urlsplit(url)
        host = parts.hostname
        if scheme in ("http", "https"):
            _ = parts.port  # a port that is no number raises here, not when sending
    except ValueError:
        raise ConfigError(
            f"route {route.name}: ${route.url_env} is not a URL that can be read (its host or port)"
        ) from None
    if scheme in ("http", "https") and not host:
        raise ConfigError(f"route {route.name}: ${route.url_env} has no host")
    if scheme not in ("http", "https"):
        if route.format not in ("auto",):
            raise ConfigError(
                f"route {route.name}: format {route.format} needs an http(s) URL in "
                f"${route.url_env}, not a {scheme}:// URL"
            )
        return Target(route.name, "apprise", url)
    if route.format == "auto":
        native = (host or "").lower() in NATIVE_HOSTS
        return Target(route.name, "apprise" if native else "json", url)
    return Target(route.name, route.format, url)
