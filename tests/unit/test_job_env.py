"""What ansible gets of Terry's environment: everything but Terry's credentials."""

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
