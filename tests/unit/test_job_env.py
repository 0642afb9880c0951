"""What ansible gets of Terry's environment: an allow-list, never Terry's credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from terry.appliers.ansible_runner import RunRequest, _job_env
from terry.config import Config

pytestmark = pytest.mark.unit


def _request(**over: object) -> RunRequest:
    base: dict[str, object] = {
        "project_dir": Path("/tmp/x"),
        "playbook": "p.yml",
        "private_dir": Path("/tmp/x/run"),
        "inventory": (),
        "hosts": (),
    }
    base.update(over)
    return RunRequest(**base)  # type: ignore[arg-type]


def test_credentials_are_withheld_and_the_rest_passes() -> None:
    inherited = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "SSH_AUTH_SOCK": "/run/agent",
        "GITHUB_TOKEN": "ghp_x",
        "TERRY_WEBHOOK_TOKEN": "t",
        "TERRY_GITHUB_WEBHOOK_SECRET": "s",
        "TERRY_DATABASE_URL": "postgresql://u:pw@db/terry",
        "MY_APP_PASSWORD": "pw",
        "ANSIBLE_VAULT_PASSWORD_FILE": "/etc/vault-pass",
        "VAULT_TOKEN": "from-runner-env",
    }
    withhold = Config().secret_env_names
    env = _job_env(inherited, _request(withhold=withhold, env={"VAULT_TOKEN": "on purpose"}))
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "SSH_AUTH_SOCK": "/run/agent",
        "ANSIBLE_VAULT_PASSWORD_FILE": "/etc/vault-pass",  # a setting, not a secret
        "VAULT_TOKEN": "from-runner-env",  # runner.env asked for it by name
    }


def test_only_the_allow_list_passes_whatever_the_names_say() -> None:
    """An allow-list: a credential whose name the old deny-list did not know (``*_API_KEY``),
    a database URL, and anything else Terry's process happens to hold stay out."""
    inherited = {
        "PATH": "/usr/bin",
        "HOME": "/home/terry",
        "USER": "terry",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "TMPDIR": "/tmp",
        "VIRTUAL_ENV": "/opt/terry",
        "ANSIBLE_CONFIG": "/etc/ansible/terry.cfg",
        "ANSIBLE_NET_PASSWORD": "net-secret-1",  # an ANSIBLE_* name that is a credential
        # what ansible-runner sets for its callback in the ansible process
        "AWX_ISOLATED_DATA_DIR": "/run/artifacts/1",
        "RUNNER_OMIT_EVENTS": "False",
        "RUNNER_ONLY_FAILED_EVENTS": "False",
        "ORIGINAL_STDOUT_CALLBACK": "default",
        # never
        "FOO_API_KEY": "canary-api-key",
        "OPENAI_APIKEY": "canary-apikey",
        "AWS_SECRET_ACCESS_KEY": "canary-aws",
        "TERRY_DATABASE_URL": "postgresql://u:canarypw@h/db",
        "SLACK_REPORTS_URL": "https://hooks.example.org/T0/B0/x",
        "SOME_APP_SETTING": "whatever",
        "PROMPT_COMMAND": "history -a",
    }
    env = _job_env(inherited, _request(withhold=Config().secret_env_names))
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/terry",
        "USER": "terry",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "TMPDIR": "/tmp",
        "VIRTUAL_ENV": "/opt/terry",
        "ANSIBLE_CONFIG": "/etc/ansible/terry.cfg",
        "AWX_ISOLATED_DATA_DIR": "/run/artifacts/1",
        "RUNNER_OMIT_EVENTS": "False",
        "RUNNER_ONLY_FAILED_EVENTS": "False",
        "ORIGINAL_STDOUT_CALLBACK": "default",
    }


def test_withheld_names_stay_out_even_when_allowed_and_runner_env_wins() -> None:
    inherited = {"ANSIBLE_TERRY_HOOK": "x", "HOME": "/root", "SOME_APP_SETTING": "on purpose"}
    request = _request(withhold=("ANSIBLE_TERRY_HOOK", "HOME"), env={"SOME_APP_SETTING": "1"})
    assert _job_env(inherited, request) == {"SOME_APP_SETTING": "on purpose"}
