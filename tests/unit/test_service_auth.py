"""The principals of ``terry serve``: tokens read from the environment, one check for all."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.requests import Request

from terry.config import load_config
from terry.errors import ConfigError
from terry.service.auth import Authenticator, Role, parse_read_tokens

pytestmark = pytest.mark.unit

ALICE = "alice-token-0123456789"
BOB = "bob-token-0123456789ab"


def _request(authorization: str | None) -> Request:
    headers = [] if authorization is None else [(b"authorization", authorization.encode())]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


def test_entries_separated_by_commas_spaces_or_lines_with_comments() -> None:
    text = f"# readers\nalice:{ALICE}, bob:{BOB}\n\n  carol:{'c' * 16}:with-colon\n"
    assert parse_read_tokens(text, source="$X") == {
        "alice": ALICE,
        "bob": BOB,
        "carol": "c" * 16 + ":with-colon",
    }
    assert parse_read_tokens("", source="$X") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"alice {ALICE}", "entry 1 is not NAME:TOKEN"),
        (f"alice:{ALICE},:{BOB}", "entry 2 is not NAME:TOKEN"),
        ("alice:short", "shorter than 16"),
        (f"alice:{ALICE},alice:{BOB}", "named twice"),
        (f"alice:{ALICE},bob:{ALICE}", "the same token"),
        ("alice:tøken-with-non-ascii-letters", "not printable ASCII"),
    ],
)
def test_a_bad_entry_is_named_by_place_or_principal_never_by_its_token(
    text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_read_tokens(text, source="$TERRY_READ_TOKENS")
    assert ALICE not in str(caught.value) and BOB not in str(caught.value)


def test_each_token_names_its_principal_for_its_role_only() -> None:
    auth = Authenticator(webhook_token="hook-token", readers={"alice": ALICE, "bob": BOB})
    assert auth.authenticate(_request(f"Bearer {ALICE}"), Role.READER).name == "alice"
    assert auth.authenticate(_request(f"bearer  {BOB} "), Role.READER).name == "bob"
    hook = auth.authenticate(_request("Bearer hook-token"), Role.ALERTMANAGER)
    assert hook is not None and hook.role is Role.ALERTMANAGER
    for header, role in (
        ("Bearer hook-token", Role.READER),  # Alertmanager reads nothing
        (f"Bearer {ALICE}", Role.ALERTMANAGER),  # a reader posts no alert
        (None, Role.READER),
        (f"Basic {ALICE}", Role.READER),
        ("Bearer ", Role.READER),
        (f"Bearer {ALICE}x", Role.READER),
    ):
        assert auth.authenticate(_request(header), role) is None, (header, role)
    assert auth.warnings == ()


def test_no_webhook_token_is_refused_unless_insecure_and_then_only_unheld_roles_open() -> None:
    with pytest.raises(ConfigError, match="--insecure-no-auth"):
        Authenticator(webhook_token=None, readers={"alice": ALICE})
    auth = Authenticator(webhook_token=None, readers={"alice": ALICE}, insecure_no_auth=True)
    anonymous = auth.authenticate(_request(None), Role.ALERTMANAGER)
    assert anonymous is not None and anonymous.anonymous
    assert auth.authenticate(_request(None), Role.READER) is None  # readers hold tokens
    assert auth.authenticate(_request("Bearer guess"), Role.ALERTMANAGER) is None
    assert auth.warnings == ("the webhook accepts alerts without a token (--insecure-no-auth)",)


def test_tokens_come_from_the_variables_the_configuration_names(tmp_path: Path) -> None:
    (tmp_path / "terry.yml").write_text(
        "server: {token_env: HOOK, read_tokens_env: READERS}\n", encoding="utf-8"
    )
    config = load_config(tmp_path, environ={})
    assert "READERS" in config.secret_env_names
    tokens = tmp_path / "readers"
    tokens.write_text(f"alice:{ALICE}\n", encoding="utf-8")
    auth = Authenticator.from_config(
        config, environ={"HOOK": "hook-token", "READERS": f"@{tokens}"}
    )
    assert auth.reader_names == ("alice",)
    assert auth.authenticate(_request("Bearer hook-token"), Role.ALERTMANAGER) is not None
    with pytest.raises(ConfigError, match="absolute path"):
        Authenticator.from_config(config, environ={"HOOK": "h", "READERS": "@readers"})
    with pytest.raises(ConfigError, match="cannot read the token file"):
        Authenticator.from_config(config, environ={"HOOK": "h", "READERS": f"@{tmp_path}/no"})
