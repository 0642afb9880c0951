"""Where a bad setting came from: terry.yml, or an environment variable set over it.

A value set by ``TERRY_PROMETHEUS_URL`` (or another variable of the environment table) that
cannot work is refused naming the variable, not terry.yml, which may not even mention the
key. Every server's URL is checked when the configuration is read, not first when the
server is asked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from terry.config import load_config
from terry.errors import ConfigError

pytestmark = pytest.mark.unit


def _repo(tmp_path: Path, text: str = "") -> Path:
    (tmp_path / "terry.yml").write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("variable", "value", "key", "why"),
    [
        ("TERRY_PROMETHEUS_URL", "notaurl", "prometheus.url", "must be an http(s) URL"),
        ("TERRY_ARGOCD_URL", "argocd:443", "argocd.url", "must be an http(s) URL"),
        ("TERRY_AWX_URL", "ftp://awx.example.org", "awx.url", "must be an http(s) URL"),
        ("TERRY_RUNNER_STRATEGY", "bogus", "runner.strategy", "Input should be 'linear'"),
    ],
)
def test_a_bad_value_from_the_environment_names_its_variable(
    tmp_path: Path, variable: str, value: str, key: str, why: str
) -> None:
    repo = _repo(tmp_path, "prometheus: {timeout: 5}\n")
    with pytest.raises(ConfigError) as told:
        load_config(repo, environ={variable: value})
    said = str(told.value)
    assert said.startswith(f"{variable} (sets {key} over {repo / 'terry.yml'}): "), said
    assert why in said, said


@pytest.mark.parametrize("section", ["prometheus", "argocd", "awx"])
def test_a_server_url_in_terry_yml_that_cannot_work_is_refused_naming_the_file(
    tmp_path: Path, section: str
) -> None:
    repo = _repo(tmp_path, f"{section}: {{url: 'localhost:9090'}}\n")
    with pytest.raises(ConfigError) as told:
        load_config(repo, environ={})
    assert str(told.value) == (
        f"{repo / 'terry.yml'}: {section}.url: must be an http(s) URL with a host "
        "(https://host.example.com), not 'localhost:9090'"
    )


def test_a_refused_url_is_never_repeated_with_its_credentials(tmp_path: Path) -> None:
    # no scheme: the redactor could not take the password out of what is repeated
    secret = "Sup3rSecretPw"
    repo = _repo(tmp_path)
    with pytest.raises(ConfigError) as told:
        load_config(repo, environ={"TERRY_PROMETHEUS_URL": f"reader:{secret}@prom.internal:9090"})
    assert secret not in str(told.value) and "reader" not in str(told.value)
    assert str(told.value).endswith("not '...@prom.internal:9090'")


def test_the_policy_engines_opa_url_is_checked_too(tmp_path: Path) -> None:
    repo = _repo(tmp_path, "policy: {engine: opa, opa_url: '127.0.0.1:8181'}\n")
    with pytest.raises(ConfigError, match=r"policy\.opa_url: must be an http\(s\) URL"):
        load_config(repo, environ={})


def test_good_urls_from_the_file_and_the_environment_are_taken(tmp_path: Path) -> None:
    repo = _repo(tmp_path, "prometheus: {url: 'http://127.0.0.1:9090'}\n")
    config = load_config(
        repo,
        environ={
            "TERRY_ARGOCD_URL": "https://argocd.example.org",
            "TERRY_AWX_URL": "https://aap.example.org/api/controller",
        },
    )
    assert config.prometheus.url == "http://127.0.0.1:9090"
    assert config.argocd.url == "https://argocd.example.org"
    assert config.awx.url == "https://aap.example.org/api/controller"
    over = load_config(repo, environ={"TERRY_PROMETHEUS_URL": "https://prom.example.org"})
    assert over.prometheus.url == "https://prom.example.org"  # the environment wins


def test_a_key_terry_yml_gets_wrong_is_blamed_on_the_file_whatever_else_is_set(
    tmp_path: Path,
) -> None:
    # the variable sets another key of the same section: the file is still to blame
    repo = _repo(tmp_path, "prometheus: {timeout: -1}\n")
    with pytest.raises(ConfigError) as told:
        load_config(repo, environ={"TERRY_PROMETHEUS_URL": "http://127.0.0.1:9090"})
    assert str(told.value).startswith(f"{repo / 'terry.yml'}: prometheus.timeout: ")


def test_a_flag_over_the_environment_is_not_blamed_on_the_variable(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    with pytest.raises(ConfigError) as told:
        load_config(
            repo,
            environ={"TERRY_PROMETHEUS_URL": "http://127.0.0.1:9090"},
            overrides={"prometheus": {"url": "nope"}},
        )
    assert "TERRY_PROMETHEUS_URL" not in str(told.value)
    assert "prometheus.url: must be an http(s) URL" in str(told.value)


def test_the_inventory_variable_is_split_on_the_path_separator(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    config = load_config(repo, environ={"TERRY_INVENTORY": "inventories/a:inventories/b:"})
    assert config.inventory == ["inventories/a", "inventories/b"]
