"""Prometheus that asks who is calling (no root): Debian's ``prometheus`` with its own
``--web.config.file`` (basic auth over TLS), and a bearer-token proxy in front of one (as
Thanos, Mimir or kube-rbac-proxy put it), reached with ``prometheus.username`` and
``password_env``, or ``token_env`` (terry.prometheus).

What a user sees: verify, SLO budgets and forecasts answer through the credentials; a
credential the configuration names but the environment lacks is a clear reason, and no
request leaves without it; a wrong one is Prometheus's 401, unknown, never healthy; the
credential's value is in no output.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from terry.config import PrometheusConfig
from terry.gitops.init import init_repository
from terry.ports import free_port
from terry.remedies.catalogue import PrometheusVerify
from terry.verify.judge import Outcome, query_prometheus
from tests.conftest import Cli, make_cli
from tests.fakes.local_server import LocalServer
from tests.prometheus_tsdb import NEEDS_PROMETHEUS, running_prometheus, self_signed
from tests.shop import git

pytestmark = [pytest.mark.integration, NEEDS_PROMETHEUS]

USER = "terry"
PASSWORD = "pw-CANARY-5e1f0a"
TOKEN = "tok-CANARY-77c2b9"
UP = PrometheusVerify(query='max(up{job="self"})', above="0.5")
SLO = """
version: prometheus/v1
service: prometheus
slos:
  - name: api-availability
    objective: 99.0
    sli:
      events:
        error_query: sum(rate(prometheus_http_requests_total{code=~"5.."}[{{.window}}]))
        total_query: sum(rate(prometheus_http_requests_total[{{.window}}]))
"""


def _has_data(url: str, **kwargs: Any) -> bool:
    """Whether Prometheus has scraped itself twice (a rate has a value)."""
    query = "rate(prometheus_http_requests_total[1m])"
    try:
        answer = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=2, **kwargs)
        return answer.status_code == 200 and bool(answer.json()["data"]["result"])
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """Prometheus over TLS (self-signed for 127.0.0.1) with basic auth; its URL and the
    certificate to trust. It scrapes itself with the same credentials."""
    home = tmp_path_factory.mktemp("prom-auth")
    cert, key = self_signed(home)
    with warnings.catch_warnings():  # crypt is deprecated, and the simplest bcrypt here
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

        hashed = crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    web = {
        "tls_server_config": {"cert_file": str(cert), "key_file": str(key)},
        "basic_auth_users": {USER: hashed},
    }
    (home / "web.yml").write_text(yaml.safe_dump(web))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "self",
                "scheme": "https",
                "tls_config": {"insecure_skip_verify": True},
                "basic_auth": {"username": USER, "password": PASSWORD},
                "static_configs": [{"targets": ["PLACEHOLDER"]}],
            }
        ],
    }
    port = free_port()
    config["scrape_configs"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{port}"]
    with running_prometheus(
        home,
        yaml.safe_dump(config),
        port=port,
        scheme="https",
        extra=[f"--web.config.file={home / 'web.yml'}"],
        ready=lambda url: _has_data(url, auth=(USER, PASSWORD), verify=False),
    ) as url:
        yield url, cert


class BearerProxy(LocalServer):
    """An auth proxy in front of Prometheus: ``Authorization: Bearer <token>`` or 401 (with
    ``WWW-Authenticate``, as RFC 6750 says); what it was sent is kept."""

    label = "bearer proxy"

    def __init__(self, upstream: str, token: str) -> None:
        super().__init__()
        self.upstream, self.token = upstream, token
        self.seen: list[str] = []

    def _app(self) -> Starlette:
        return Starlette(routes=[Route("/api/v1/{path:path}", self._forward)])

    async def _forward(self, request: Request) -> Response:
        said = request.headers.get("authorization", "")
        self.seen.append(said)
        if said != f"Bearer {self.token}":
            return JSONResponse(
                {"status": "error", "error": "unauthorized"},
                401,
                headers={"WWW-Authenticate": 'Bearer realm="prometheus"'},
            )
        async with httpx.AsyncClient() as client:
            answer = await client.get(
                f"{self.upstream}/api/v1/{request.path_params['path']}",
                params=request.query_params,
                timeout=10,
            )
        return Response(answer.content, answer.status_code, media_type="application/json")


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BearerProxy]:
    """A plain Prometheus scraping itself, behind ``BearerProxy``."""
    home = tmp_path_factory.mktemp("prom-bearer")
    port = free_port()
    config = (
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n  - job_name: self\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
    with running_prometheus(home, config, port=port, ready=_has_data) as url:
        proxy = BearerProxy(url, TOKEN)
        proxy.start()
        yield proxy
        proxy.stop()


def test_basic_auth_over_tls_answers_with_the_password_and_only_with_it(
    guarded: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, cert = guarded
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    prom = PrometheusConfig(url=url, username=USER, password_env="PROM_PASSWORD", timeout=5)

    monkeypatch.setenv("PROM_PASSWORD", PASSWORD)
    ok = query_prometheus(prom, UP, {})
    assert ok.outcome is Outcome.VERIFIED, ok.evidence

    monkeypatch.setenv("PROM_PASSWORD", "not-the-password")
    wrong = query_prometheus(prom, UP, {})
    assert wrong.outcome is Outcome.UNKNOWN
    assert "401" in " ".join(wrong.evidence), wrong.evidence

    monkeypatch.delenv("PROM_PASSWORD")
    missing = query_prometheus(prom, UP, {})
    assert missing.outcome is Outcome.UNKNOWN
    said = " ".join(missing.evidence)
    assert "prometheus.password_env names $PROM_PASSWORD, which is not set" in said, said

    # A bare URL carries no credentials: Prometheus refuses it.
    anonymous = query_prometheus(url, UP, {}, timeout=5)
    assert anonymous.outcome is Outcome.UNKNOWN and "401" in " ".join(anonymous.evidence)
    for verdict in (ok, wrong, missing, anonymous):
        assert PASSWORD not in " ".join(verdict.evidence)


def _repo(tmp_path: Path, prometheus: dict[str, Any]) -> Cli:
    repo = init_repository(tmp_path / "ops").path
    settings = yaml.safe_load((repo / "terry.yml").read_text())
    settings["prometheus"] = prometheus
    (repo / "terry.yml").write_text(yaml.safe_dump(settings))
    (repo / "slos").mkdir()
    (repo / "slos" / "prometheus.yml").write_text(SLO)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=T", "-c", "user.email=t@x", "commit", "-qm", "credentials; an SLO")
    return make_cli(repo)


def test_slo_status_reads_budgets_through_basic_auth(
    guarded: tuple[str, Path], tmp_path: Path
) -> None:
    url, cert = guarded
    cli = _repo(tmp_path, {"url": url, "username": USER, "password_env": "PROM_PASSWORD"})
    cli.env["REQUESTS_CA_BUNDLE"] = str(cert)
    cli.env["PROM_PASSWORD"] = PASSWORD
    result = cli("slo", "status", "-o", "json")
    report = json.loads(result.stdout)
    [row] = report["slos"]
    assert row["error"] is None, row
    assert row["sli_percent"] is not None and row["budget_remaining_percent"] is not None, row
    assert PASSWORD not in result.stdout + result.stderr

    del cli.env["PROM_PASSWORD"]
    result = cli("slo", "status", "-o", "json")
    [row] = json.loads(result.stdout)["slos"]
    assert row["state"] == "unknown" and "$PROM_PASSWORD, which is not set" in row["error"], row


def test_a_bearer_token_reaches_prometheus_behind_a_proxy(
    proxied: BearerProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    prom = PrometheusConfig(url=proxied.base_url, token_env="PROM_TOKEN", timeout=5)
    monkeypatch.setenv("PROM_TOKEN", TOKEN)
    ok = query_prometheus(prom, UP, {})
    assert ok.outcome is Outcome.VERIFIED, ok.evidence
    assert proxied.seen[-1] == f"Bearer {TOKEN}"

    monkeypatch.delenv("PROM_TOKEN")
    before = len(proxied.seen)
    missing = query_prometheus(prom, UP, {})
    assert missing.outcome is Outcome.UNKNOWN
    assert "prometheus.token_env names $PROM_TOKEN" in " ".join(missing.evidence)
    assert len(proxied.seen) == before  # nothing was sent without it


def test_forecast_without_its_token_is_a_configuration_error(
    proxied: BearerProxy, tmp_path: Path
) -> None:
    cli = _repo(tmp_path, {"url": proxied.base_url, "token_env": "PROM_TOKEN"})
    cli.env["PROM_TOKEN"] = TOKEN
    ok = cli("forecast", "-o", "json")
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    assert TOKEN not in ok.stdout + ok.stderr
    del cli.env["PROM_TOKEN"]
    refused = cli("forecast", "-o", "json")
    assert refused.exit_code == 3, refused.stdout + refused.stderr
    assert "prometheus.token_env names $PROM_TOKEN, which is not set" in refused.stderr


def test_the_configuration_takes_one_credential_and_withholds_it_from_ansible(
    tmp_path: Path,
) -> None:
    cli = _repo(tmp_path, {"url": "http://127.0.0.1:9", "token_env": "T", "username": "u"})
    refused = cli("slo", "status")
    assert refused.exit_code == 3
    assert "give token_env (a bearer token) or username and password_env" in refused.stderr

    from terry.config import load_config

    settings = yaml.safe_load((cli.repo / "terry.yml").read_text())
    settings["prometheus"] = {"url": "http://x", "username": "u", "password_env": "PROM_PW"}
    (cli.repo / "terry.yml").write_text(yaml.safe_dump(settings))
    assert "PROM_PW" in load_config(cli.repo, environ={}).secret_env_names
