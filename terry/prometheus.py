"""Prometheus's HTTP API, reached one way: a prometheus-api-client ``PrometheusConnect`` that
carries the configured credentials and verifies TLS.

Where Terry has its configuration it passes ``prometheus:`` of terry.yml
(``PrometheusConfig``); a bare URL (tests, benches) carries no credentials of its own.

Credentials are read from the environment when Terry connects, never from terry.yml: a
bearer token (``token_env``: an auth proxy in front of Prometheus, Thanos, Mimir), or basic
auth (``username`` with ``password_env``: Prometheus's own ``--web.config.file``). A URL's
``user:password@`` works too, as requests reads it. A variable that is named but unset or
empty is not an anonymous query in disguise: every request fails with
``MissingCredential``, a requests error naming the variable, so each caller reports it the
way it reports an unreachable Prometheus (verify: unknown, the gate: budget unknown).

TLS is verified against the system's CAs, or requests' ``REQUESTS_CA_BUNDLE`` for a private
CA; a server Terry cannot authenticate answers nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from terry.config import PrometheusConfig
from terry.errors import ConfigError

if TYPE_CHECKING:
    from prometheus_api_client import PrometheusConnect
    from urllib3.util.retry import Retry

__all__ = ["MissingCredential", "connect", "credentials"]


class MissingCredential(requests.exceptions.RequestException):
    """A credential the configuration names is not in the environment."""


class _Refused(AuthBase):
    """Sends nothing: raises before the request leaves."""

    def __init__(self, why: str) -> None:
        self.why = why

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        raise MissingCredential(self.why)


class _Bearer(AuthBase):
    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "Bearer(***)"


def credentials(prom: PrometheusConfig, environ: Mapping[str, str]) -> AuthBase | None:
    """How requests to ``prom`` authenticate: a bearer token, basic auth, or nothing."""
    name = prom.token_env or prom.password_env
    if name is None:
        return None
    value = environ.get(name, "")
    if not value:
        field = "token_env" if prom.token_env else "password_env"
        return _Refused(
            f"prometheus.{field} names ${name}, which is not set in Terry's environment: "
            "nothing was sent to Prometheus"
        )
    if prom.token_env:
        return _Bearer(value)
    assert prom.username is not None  # the configuration gives both or neither
    return HTTPBasicAuth(prom.username, value)


def connect(
    where: str | PrometheusConfig,
    *,
    timeout: float | None = None,
    retry: Retry | None = None,
    environ: Mapping[str, str] | None = None,
) -> PrometheusConnect:
    """A client of the Prometheus at ``where`` (its configuration, or a bare URL).

    ``timeout``: seconds per request (default: the configuration's); ``retry``: urllib3's
    policy (default: prometheus-api-client's)."""
    from prometheus_api_client import PrometheusConnect

    if isinstance(where, str):
        url, auth, default = where, None, 10.0
    else:
        if not where.url:
            raise ConfigError("no Prometheus to ask: set prometheus.url in terry.yml")
        url = where.url
        auth = credentials(where, os.environ if environ is None else environ)
        default = where.timeout
    seconds = default if timeout is None else timeout
    return PrometheusConnect(
        url=url,
        disable_ssl=False,
        auth=auth,  # type: ignore[arg-type]  # any requests auth, not only a tuple
        retry=retry,
        timeout=seconds,  # type: ignore[arg-type]  # requests takes a float
    )
