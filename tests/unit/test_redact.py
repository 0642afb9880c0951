"""Secrets out of copied text (``terry.redact``) and untrusted text made inert
(``terry.inert``): what they hide and show, the log records of the CLI and the server, and
the store's writers of free text."""

from __future__ import annotations

import io
import logging
import sys
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from terry.config import Config
from terry.drift.report import DriftReport, HostView, ItemView, Summary
from terry.drift.report import to_html as drift_html
from terry.drift.report import to_markdown as drift_markdown
from terry.incidents.lifecycle import ingest, set_attention
from terry.inert import inert
from terry.proposals.state import ProposalState, transition
from terry.redact import (
    REDACTED,
    RedactingFilter,
    Redactor,
    configure,
    install_log_filter,
    process_redactor,
    redact,
)
from terry.sources.alertmanager import parse_payload
from terry.store import Store
from terry.store.audit import audit
from terry.store.models import AuditRow, IncidentRow, ProposalRow
from tests.conftest import alert, payload

pytestmark = pytest.mark.unit

KEY = "sk-ant-api03-CANARY-redact-0000"
HOOK = "https://hooks.example.org/services/T0/B0/CANARYhook"


# -- inert ---------------------------------------------------------------------------------
def test_escape_sequences_and_controls_show_as_hex() -> None:
    assert inert("a\x1b[31mred\x1b[0m") == "a\\x1b[31mred\\x1b[0m"
    assert inert("\x1b]0;title\x07") == "\\x1b]0;title\\x07"
    assert inert("\x9b31m \x85 \x7f \x00") == "\\x9b31m \\x85 \\x7f \\x00"
    assert inert("one\ntwo\r\tthree") == "one\\ntwo\\r\\tthree"


def test_format_characters_show_as_code_points() -> None:
    assert inert("safe\u202egnp.exe") == "safe<U+202E>gnp.exe"
    assert inert("\u2066x\u2069 \u200bweb-01\u200d \ufeff") == (
        "<U+2066>x<U+2069> <U+200B>web-01<U+200D> <U+FEFF>"
    )
    assert inert("tag\U000e0041") == "tag<U+E0041>"  # invisible tag characters
    assert inert("lone \udc80") == "lone <U+DC80>"  # a surrogate from undecodable bytes


def test_several_lines_keep_newlines_and_tabs_but_not_a_lone_carriage_return() -> None:
    assert inert("a\r\nb\n\tc\rd\x1b", multiline=True) == "a\nb\n\tc\\rd\\x1b"


def test_plain_text_markup_and_other_scripts_pass_as_they_are() -> None:
    text = "[bold]x[/bold] :warning: <b>&amp; C:\\dir naïve 日本語 مرحبا 🙂"
    assert inert(text) == text
    assert inert(42) == "42"


def test_every_control_format_and_separator_character_is_shown() -> None:
    """The pattern against this Python's Unicode database: nothing it calls Cc (but tab
    and newline in text of several lines), Cf, Cs, Zl or Zp passes as it is."""
    hidden = {"Cc", "Cf", "Cs", "Zl", "Zp"}
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if unicodedata.category(char) not in hidden or char in "\t\n":
            continue
        assert inert(char, multiline=True) != char, f"U+{code:04X} passes unseen"


# -- the redactor --------------------------------------------------------------------------
def test_values_of_credential_names_and_configured_names_are_redacted() -> None:
    env = {
        "FOO_API_KEY": "foo-key-123456",
        "MY_APP_PASSWORD": "hunter2hunter2",
        "VAULT_TOKEN": "s.vaulttoken",
        "DEPLOY_AUTH": "auth-value-1",
        "SLACK_REPORTS": HOOK,  # not a credential by its name: configured below
        "HOME": "/home/terry",
    }
    redactor = Redactor.from_environ(env, names=["SLACK_REPORTS"])
    text = f"x foo-key-123456 hunter2hunter2 s.vaulttoken auth-value-1 {HOOK} /home/terry"
    assert redactor(text) == f"x {' '.join([REDACTED] * 5)} /home/terry"


def test_a_database_url_hides_its_password_only_written_or_decoded() -> None:
    env = {"TERRY_DATABASE_URL": "postgresql://terry:p%40ss-w0rd@db:5432/terry"}
    redactor = Redactor.from_environ(env)
    assert redactor("failed: postgresql://terry:p%40ss-w0rd@db:5432/terry") == (
        f"failed: postgresql://terry:{REDACTED}@db:5432/terry"
    )
    assert redactor("password p@ss-w0rd refused") == f"password {REDACTED} refused"
    # without a password nothing in a database URL is secret
    assert not Redactor.from_environ({"TERRY_DATABASE_URL": "sqlite:////var/terry/terry.db"})
    # any URL's password: a proxy, say
    proxy = Redactor.from_environ({"HTTPS_PROXY": "http://me:proxy-secret@proxy:3128"})
    assert proxy("via proxy-secret") == f"via {REDACTED}"


def test_paths_short_values_and_numbers_are_not_secrets() -> None:
    env = {
        "ANSIBLE_VAULT_PASSWORD_FILE": "/etc/terry/vault-pass",
        "SSH_AUTH_SOCK": "/run/user/0/agent.sock",
        "GITHUB_APP_ID": "123456",
        "TINY_TOKEN": "abc",
    }
    redactor = Redactor.from_environ(env, names=Config().secret_env_names)
    assert not redactor
    assert redactor("app 123456, /etc/terry/vault-pass, abc") == (
        "app 123456, /etc/terry/vault-pass, abc"
    )


def test_the_longest_secret_is_hidden_whole_and_repr_shows_none() -> None:
    redactor = Redactor(["secret-one", "secret-one-and-more", None, ""])
    assert redactor("secret-one-and-more, secret-one") == f"{REDACTED}, {REDACTED}"
    assert "secret-one" not in repr(redactor) and "secret-one" not in str(redactor)
    assert repr(redactor) == "Redactor(<2 secrets>)"


def test_each_line_of_a_key_is_hidden_but_not_its_armour() -> None:
    pem = (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0canary\nline-two-canary\n"
        "-----END RSA PRIVATE KEY-----\n"
    )
    redactor = Redactor.from_environ({"GITHUB_APP_PRIVATE_KEY": pem})
    assert redactor(pem) == REDACTED + "\n"
    assert redactor("bad key line: MIIEowIBAAKCAQEA0canary") == f"bad key line: {REDACTED}"
    assert redactor("-----END RSA PRIVATE KEY-----") == "-----END RSA PRIVATE KEY-----"


def test_scrub_reaches_into_event_data() -> None:
    redactor = Redactor([KEY])
    data = {"res": {"msg": f"key {KEY}", "items": [KEY, 3, None]}, KEY: ("a", KEY)}
    assert redactor.scrub(data) == {
        "res": {"msg": f"key {REDACTED}", "items": [REDACTED, 3, None]},
        REDACTED: ("a", REDACTED),
    }


def test_a_configuration_names_its_secrets_for_the_whole_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLAUDE_KEY_FOR_TERRY", KEY)  # its name says nothing
    config = Config.model_validate(
        {
            "ai": {"api_key_env": "CLAUDE_KEY_FOR_TERRY"},
            "prometheus": {"url": "https://terry:prom-password@prom:9090"},
        }
    )
    assert Redactor.from_config(config)(f"{KEY} prom-password") == f"{REDACTED} {REDACTED}"
    try:
        configure(Config())
        assert redact(KEY) == KEY
        configure(config)
        assert redact(f"{KEY} prom-password") == f"{REDACTED} {REDACTED}"
    finally:
        configure(Config())


# -- reports -------------------------------------------------------------------------------
def _drift_report(text: str) -> DriftReport:
    now = datetime.now(UTC)
    item = ItemView(
        host="web-01",
        state="new",
        since=now,
        kind="file",
        severity="high",
        role="base",
        task=f"Ensure {text}",
        resource=f"/etc/{text}",
        detail=f"changed {text}",
        diff="",
    )
    summary = Summary(1, 1, 0, 1, 1, 0, 0, {"base": 1}, {"file": 1}, {"high": 1})
    host = HostView("web-01", "drifted", None, {}, (item,))
    return DriftReport(1, now, now, "0" * 40, None, "successful", None, summary, (host,))


def test_reports_show_what_hosts_report_inert_in_markdown_and_html() -> None:
    """A drift item's names and detail come from the hosts: Markdown cells, fenced blocks
    and HTML values show their control and format characters instead of carrying them."""
    report = _drift_report("motd\x1b[2J\x9b31m\u202etxt.exe")
    markdown, html = drift_markdown(report), drift_html(report)
    for rendered in (markdown, html):
        for char in ("\x1b", "\x9b", "\u202e"):
            assert char not in rendered
    # a cell: controls folded to a space, the rest shown, then Markdown-escaped
    assert "| /etc/motd \\[2J\\\\x9b31m\\<U+202E\\>txt.exe |" in markdown
    assert "changed motd\\x1b[2J\\x9b31m<U+202E>txt.exe\n```" in markdown  # a fenced block
    assert "<td>/etc/motd\\x1b[2J\\x9b31m&lt;U+202E&gt;txt.exe</td>" in html


# -- log records ---------------------------------------------------------------------------
@pytest.fixture
def root_log() -> Iterator[io.StringIO]:
    """A handler on the root logger, as ``terry serve``'s basicConfig adds."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    yield out
    root.removeHandler(handler)
    for target in (root, logging.lastResort):
        for found in [
            f for f in (target.filters if target else []) if isinstance(f, RedactingFilter)
        ]:
            target.removeFilter(found)


def test_log_records_of_any_logger_are_redacted_message_args_and_traceback(
    root_log: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOO_API_KEY", KEY)
    install_log_filter()
    log = logging.getLogger("terry.test.redact")  # a child: the root's own filters skip it
    log.warning("asked Claude: %s", f"400 bad key {KEY}")
    log.warning(f"inline {KEY} and 100% sure")
    try:
        raise RuntimeError(f"the API said {KEY}")
    except RuntimeError:
        log.exception("failed")
    written = root_log.getvalue()
    assert KEY not in written
    assert f"asked Claude: 400 bad key {REDACTED}" in written
    assert f"inline {REDACTED} and 100% sure" in written
    assert f"RuntimeError: the API said {REDACTED}" in written


def test_installing_twice_leaves_one_filter(root_log: io.StringIO) -> None:
    install_log_filter()
    install_log_filter(Redactor([KEY]))
    root = logging.getLogger()
    for target in (root, *root.handlers):
        assert sum(isinstance(f, RedactingFilter) for f in target.filters) == 1
    logging.getLogger("terry.test.twice").warning("x %s", KEY)
    assert root_log.getvalue() == f"WARNING terry.test.twice: x {REDACTED}\n"


# -- the store's writers of free text ------------------------------------------------------
def test_attention_outcome_and_audit_reasons_are_stored_redacted(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOO_API_KEY", KEY)
    monkeypatch.setenv("TERRY_DATABASE_URL", "postgresql://terry:canary-db-pw@db/terry")
    assert process_redactor()  # both are known to this process now
    opened = ingest(store, parse_payload(payload([alert("Odd", fingerprint="redact-1")])))
    incident_id = opened.effects[0].incident_id
    assert incident_id is not None
    set_attention(store, incident_id, f"asked Claude: 401 invalid x-api-key {KEY}")
    now = datetime.now(UTC)
    with store.session() as session:
        row = ProposalRow(
            incident_id=incident_id,
            remedy="r",
            role="r",
            hosts=["web-01"],
            params={},
            risk="low",
            state=ProposalState.PROPOSED.value,
            created_at=now,
            updated_at=now,
            reasons=[],
            check_summary={},
        )
        session.add(row)
        session.flush()
        proposal_id = row.id
        audit(
            session,
            entity="proposal",
            entity_id=row.id,
            actor="t",
            from_state=None,
            to_state="proposed",
        )
    transition(
        store,
        proposal_id,
        ProposalState.CHECKED,
        actor="terry",
        reason="dry run: password canary-db-pw refused",
        changes={"outcome": f"failed: {KEY}", "check_summary": {"ok": False, "msg": KEY}},
    )
    with store.session() as session:
        incident = session.get(IncidentRow, incident_id)
        proposal = session.get(ProposalRow, proposal_id)
        reasons = [a.reason for a in session.scalars(select(AuditRow).order_by(AuditRow.id))]
        assert incident is not None and proposal is not None
        stored = [incident.attention, proposal.outcome, str(proposal.check_summary), *reasons]
    for text in stored:
        assert KEY not in (text or "") and "canary-db-pw" not in (text or ""), text
    assert incident.attention == f"asked Claude: 401 invalid x-api-key {REDACTED}"
    assert proposal.outcome == f"failed: {REDACTED}"
    assert proposal.check_summary == {"ok": False, "msg": REDACTED}
    assert f"needs a human: asked Claude: 401 invalid x-api-key {REDACTED}" in reasons
    assert f"dry run: password {REDACTED} refused" in reasons


def test_a_list_of_tokens_in_one_variable_is_hidden_token_by_token() -> None:
    """TERRY_READ_TOKENS holds NAME:TOKEN items; an error may quote one token alone."""
    from terry.redact import Redactor

    hide = Redactor(["alice:reader-token-1,bob:reader-token-2"])
    said = hide("401 for reader-token-2; alice:reader-token-1 rejected; alice is a name")
    assert "reader-token" not in said
    assert said.endswith("alice is a name")


def test_a_commit_message_line_shows_hidden_characters() -> None:
    """What goes in a commit message is read in ``git log``: one line, bounded, and a
    right-to-left override or a zero-width space shown, not obeyed."""
    from terry.gitops.messages import one_line

    assert one_line("disk\u202efull\u200b\nnext\x1b[2J") == "disk<U+202E>full<U+200B> next [2J"
    assert len(one_line("x" * 500, 60)) == 60
