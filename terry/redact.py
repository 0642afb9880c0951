"""Secrets out of the text Terry copies: what it stores, logs and answers.

Text from other systems (an API's error message, ansible's output, an exception) can echo a
credential Terry holds: a gateway repeats the API key it refused, a task prints a token.
A ``Redactor`` replaces every known secret value in such text with ``[redacted]``. It knows:

- every environment variable the configuration names as holding a credential
  (``Config.secret_env_names``: tokens, keys, webhook secrets and URLs);
- every environment variable whose name looks like one (``TOKEN``, ``SECRET``,
  ``PASSWORD``, ``PASSWD``, ``PASSPHRASE``, ``PRIVATE_KEY``, ``CREDENTIAL``, ``API_KEY``,
  ``APIKEY``, ``ACCESS_KEY``, ``AUTH``...), but not those naming a place (``*_FILE``,
  ``*_PATH``, ``*_DIR``, ``*_SOCK``): ``ANSIBLE_VAULT_PASSWORD_FILE`` is a path;
- the password of any URL in the environment or the configuration (``TERRY_DATABASE_URL``,
  a proxy, Prometheus with basic auth), as written and percent-decoded; the rest of such a
  URL is not secret;
- values a caller holds itself (the AI client its key, the forge its tokens).

Values shorter than six characters, or made of digits only (an App id, a port), are not
replaced: they would turn up in unrelated text and say little. Longer secrets are replaced
first, so a secret containing another is hidden whole; each line of a secret of several
lines (a PEM key) is a secret too.

Where text enters Terry, the code that receives it redacts it (the AI client's and the
forge's errors, ansible's events). Behind them, the store's few writers of free text
(an incident's attention, a proposal's outcome and audit reasons) and the log records of
the CLI and the server (``install_log_filter``) pass through this process's redactor
(``redact``): the environment as it is, plus what the configuration loaded by the command
says (``configure``).
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = [
    "REDACTED",
    "RedactingFilter",
    "Redactor",
    "configure",
    "install_log_filter",
    "looks_like_credential",
    "process_redactor",
    "redact",
]

REDACTED = "[redacted]"
MIN_LENGTH = 6

_CREDENTIAL_NAME = re.compile(
    r"TOKEN|SECRET|PASSW|PASSPHRASE|PRIVATE_?KEY|CREDENTIAL|API_?KEY|ACCESS_?KEY|AUTH"
    r"|SIGNING_?KEY|SESSION_?KEY|COOKIE|(?:^|_)DSN$",
    re.IGNORECASE,
)
# Names of a place (a file holding the secret, a socket), not of a secret.
_PLACE_NAME = re.compile(r"_(?:FILE|PATH|DIR|SOCK|SOCKET)$", re.IGNORECASE)
# Whose URL value hides only its password (the rest of a database URL is not secret).
_URL_NAMES = frozenset({"TERRY_DATABASE_URL"})


@functools.lru_cache(maxsize=1024)
def looks_like_credential(name: str) -> bool:
    """Whether an environment variable's name says it holds a credential."""
    return bool(_CREDENTIAL_NAME.search(name)) and not _PLACE_NAME.search(name)


def _url_passwords(value: str | None) -> list[str]:
    """The password in ``value`` when it is a URL with one, as written and decoded."""
    if not value or "://" not in value or "@" not in value:
        return []
    try:
        password = urlsplit(value.strip()).password
    except ValueError:
        return []
    return [password, unquote(password)] if password else []


def _worth_hiding(value: str) -> bool:
    return len(value) >= MIN_LENGTH and not value.isdigit()


class Redactor:
    """Replaces known secret values in text with ``[redacted]``; never shows them itself."""

    __slots__ = ("_pattern", "_values")

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        found = {s.strip() for s in secrets if s and s.strip()}
        # A secret of several lines (a PEM key) is hidden line by line too: an error may
        # quote one line. Its armour ("-----BEGIN ... KEY-----") is not secret.
        found |= {
            line.strip()
            for s in found
            if "\n" in s
            for line in s.splitlines()
            if not line.strip().startswith("-----")
        }
        # A list of secrets in one variable ("alice:tok1,bob:tok2", TERRY_READ_TOKENS) is
        # hidden item by item too, and a NAME:TOKEN item by its token.
        items = {i for s in found if "\n" not in s for i in re.split(r"[,\s]+", s) if i}
        found |= items | {i.partition(":")[2] for i in items if ":" in i and "//" not in i}
        values = sorted((s for s in found if _worth_hiding(s)), key=lambda s: (-len(s), s))
        self._values = tuple(values)
        self._pattern = re.compile("|".join(map(re.escape, values))) if values else None

    @classmethod
    def from_environ(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        names: Iterable[str] = (),
        extra: Iterable[str | None] = (),
    ) -> Redactor:
        """The secrets of ``environ`` (default: this process's): the values of ``names``
        and of credential-like names, URL passwords; plus ``extra`` values."""
        env = os.environ if environ is None else environ
        named = set(names)
        secrets: list[str | None] = list(extra)
        for name, value in env.items():
            passwords = _url_passwords(value)
            secrets += passwords
            if name in _URL_NAMES:
                continue
            if name in named or (not passwords and looks_like_credential(name)):
                secrets.append(value)
        return cls(secrets)

    @classmethod
    def from_config(cls, config: Any, environ: Mapping[str, str] | None = None) -> Redactor:
        """The secrets a ``terry.config.Config`` points at in ``environ`` (default: this
        process's), and the passwords of the URLs it configures."""
        return cls.from_environ(
            environ, names=config.secret_env_names, extra=_config_passwords(config)
        )

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(REDACTED, text)

    def scrub(self, value: Any) -> Any:
        """``value`` with every string in it (keys and values of mappings, items of lists)
        redacted; other values as they are."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {self.scrub(k): self.scrub(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.scrub(v) for v in value)
        return value

    def __or__(self, other: Redactor) -> Redactor:
        return Redactor((*self._values, *other._values))

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __repr__(self) -> str:  # never the values
        return f"Redactor(<{len(self._values)} secrets>)"

    __str__ = __repr__


def _config_passwords(config: Any) -> list[str]:
    urls = (
        config.database_url,
        config.prometheus.url,
        config.argocd.url,
        config.policy.opa_url,
        config.ai.base_url,
        config.forge.github.api_url,
    )
    return [password for url in urls for password in _url_passwords(url)]


# -- this process ------------------------------------------------------------------------
# What the configuration this process runs with says is secret (set by the CLI when it loads
# terry.yml); the environment itself is read again each time, so a change is seen.
_configured: tuple[frozenset[str], tuple[str, ...]] = (frozenset(), ())


def configure(config: Any) -> None:
    """Make ``config``'s secrets (the variables it names, its URLs' passwords) part of what
    this process redacts (``redact``, the log filter)."""
    global _configured
    _configured = (frozenset(config.secret_env_names), tuple(_config_passwords(config)))


def process_redactor(environ: Mapping[str, str] | None = None) -> Redactor:
    """This process's redactor: its environment and the configuration it was given."""
    names, passwords = _configured
    items = tuple((os.environ if environ is None else environ).items())
    return _redactor(names, passwords, items)


@functools.lru_cache(maxsize=16)
def _redactor(
    names: frozenset[str], passwords: tuple[str, ...], items: tuple[tuple[str, str], ...]
) -> Redactor:
    return Redactor.from_environ(dict(items), names=names, extra=passwords)


def redact(text: str) -> str:
    """``text`` with this process's secrets replaced (see ``process_redactor``)."""
    return process_redactor()(text)


class RedactingFilter(logging.Filter):
    """Redacts each log record that passes: its message formatted with its arguments, the
    formatted exception and the stack. With no redactor given, this process's (as it is
    when the record is logged)."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = self._redactor if self._redactor is not None else process_redactor()
        if not redactor:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format: logging reports it; show what we can, redacted
            message = f"{record.msg!s} {record.args!r}"
        clean = redactor(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redactor(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor(record.stack_info)
        return True


def install_log_filter(redactor: Redactor | None = None) -> RedactingFilter:
    """Redact every record that reaches the root logger's handlers (records of child
    loggers are filtered by handlers, not by the root logger) or, with none, Python's
    last-resort handler. Install it again after adding handlers; installing replaces a
    filter installed before."""
    installed = RedactingFilter(redactor)
    root = logging.getLogger()
    targets: list[logging.Filterer] = [root, *root.handlers]
    if logging.lastResort is not None:
        targets.append(logging.lastResort)
    for target in targets:
        for old in [f for f in target.filters if isinstance(f, RedactingFilter)]:
            target.removeFilter(old)
        target.addFilter(installed)
    return installed
