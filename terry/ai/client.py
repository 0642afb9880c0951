"""Ask Claude through the real ``anthropic`` client; map its failures to Terry errors.

The API key comes from the environment variable ``ai.api_key_env`` names and goes only to
the client: never to logs, errors, the store or ansible. What the API says in an error is
copied into Terry's (and so into the incident, the logs and the API's answers) only
redacted: a gateway that repeats the key it refused repeats ``[redacted]``.

With no key (or ``ai.enabled: false``), ``ClaudeDiagnoser.from_config`` returns None and
the incident is kept for a human with Terry's own explanation; nothing fails.

The client retries 408, 409, 429, 5xx (529 overloaded included), timeouts and connection
errors up to ``ai.max_retries`` times, honouring ``retry-after``; what is left becomes an
``AIServiceError`` saying what happened.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anthropic

from terry.ai.account import ClaudeAccount, account_request, parse_account
from terry.ai.answer import AIAnswer, parse_answer
from terry.ai.errors import AIServiceError
from terry.ai.request import DiagnosisRequest, messages_request
from terry.ai.rules import AnswerRules
from terry.redact import Redactor, process_redactor

if TYPE_CHECKING:
    from terry.config import AIConfig

__all__ = ["DEFAULT_BASE_URL", "ClaudeDiagnoser"]

DEFAULT_BASE_URL = "https://api.anthropic.com"


def _api_message(exc: anthropic.APIStatusError, redact: Redactor) -> str:
    text = exc.api_message if isinstance(exc.api_message, str) else ""
    text = " ".join(redact(text).split())[:300]
    return f": {text}" if text else ""


def _status_error(
    exc: anthropic.APIStatusError, settings: AIConfig, redact: Redactor
) -> AIServiceError:
    status = exc.status_code
    retries = settings.max_retries
    detail = _api_message(exc, redact)
    kind, retryable, what = "server", True, f"the Anthropic API failed ({status})"
    if status == 401:
        kind, retryable = "authentication", False
        what = f"the Anthropic API refused the key in ${settings.api_key_env} (401)"
    elif status == 403:
        kind, retryable = "permission", False
        what = f"the key in ${settings.api_key_env} may not use this API or model (403)"
    elif status == 400:
        kind, retryable = "invalid_request", False
        what = "the Anthropic API refused the request as invalid (400)"
    elif status == 404:
        kind, retryable = "not_found", False
        what = (
            f"the Anthropic API has no such resource (404; is ai.model {settings.model!r} right?)"
        )
    elif status == 429:
        kind = "rate_limit"
        what = f"rate limited by the Anthropic API (429) after {retries} retries"
    elif status == 529:
        kind = "overloaded"
        what = f"the Anthropic API is overloaded (529) after {retries} retries"
    elif status >= 500:
        what = f"the Anthropic API failed ({status}) after {retries} retries"
    return AIServiceError(
        what + detail, kind=kind, retryable=retryable, status=status, request_id=exc.request_id
    )


class ClaudeDiagnoser:
    """Asks Claude about an incident: a diagnosis (one forced ``propose_fix`` call) or a
    plain-language account (one forced ``explain_incident`` call), validated."""

    def __init__(self, settings: AIConfig, api_key: str) -> None:
        self.settings = settings
        self.rules = AnswerRules.from_config(settings)
        # The key, the base URL's password and this process's secrets: out of error text.
        self._redact = process_redactor() | Redactor(
            [api_key, urlsplit(settings.base_url or DEFAULT_BASE_URL).password]
        )
        self._client = anthropic.Anthropic(
            api_key=api_key,
            base_url=settings.base_url or DEFAULT_BASE_URL,
            timeout=settings.timeout,
            max_retries=settings.max_retries,
        )

    @classmethod
    def from_config(
        cls, settings: AIConfig, environ: Mapping[str, str] | None = None
    ) -> ClaudeDiagnoser | None:
        """A diagnoser, or None when diagnosis with Claude is off or has no key."""
        env = os.environ if environ is None else environ
        key = (env.get(settings.api_key_env) or "").strip()
        if not settings.enabled or not key:
            return None
        return cls(settings, key)

    @property
    def _where(self) -> str:
        """The API's scheme, host and port (never user information from the URL)."""
        url = urlsplit(self.settings.base_url or DEFAULT_BASE_URL)
        port = f":{url.port}" if url.port else ""
        return f"{url.scheme}://{url.hostname}{port}"

    def __repr__(self) -> str:  # never the key
        return f"ClaudeDiagnoser(model={self.settings.model!r})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ClaudeDiagnoser:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def diagnose(self, request: DiagnosisRequest) -> AIAnswer:
        """Claude's validated answer; AIServiceError when the API fails, AIAnswerError when
        the answer breaks a rule."""
        params = messages_request(
            request, self.rules, model=self.settings.model, max_tokens=self.settings.max_tokens
        )
        return parse_answer(self._send(params), request, self.rules)

    def explain(self, record: Mapping[str, Any]) -> ClaudeAccount:
        """Claude's plain-language account of an incident's record (``terry explain``),
        validated and cleaned; the same errors as ``diagnose``."""
        params = account_request(
            record, model=self.settings.model, max_tokens=self.settings.max_tokens
        )
        return parse_account(self._send(params), default_model=self.settings.model)

    def _send(self, params: dict[str, Any]) -> dict[str, Any]:
        """One Messages API call; the answer as JSON, or AIServiceError saying what failed."""
        try:
            message = self._client.messages.create(**params)
        except anthropic.APITimeoutError:
            raise AIServiceError(
                f"the Anthropic API did not answer within {self.settings.timeout:g}s "
                f"(after {self.settings.max_retries} retries)",
                kind="timeout",
                retryable=True,
            ) from None
        except anthropic.APIConnectionError as exc:
            raise AIServiceError(
                f"cannot reach the Anthropic API at {self._where}: {self._redact(exc.message)}",
                kind="connection",
                retryable=True,
            ) from None
        except anthropic.APIStatusError as exc:
            raise _status_error(exc, self.settings, self._redact) from None
        except (anthropic.AnthropicError, ValueError) as exc:  # ValueError: a body not JSON
            raise AIServiceError(
                f"unusable answer from the Anthropic API: {type(exc).__name__}",
                kind="response",
                retryable=True,
            ) from None
        # The SDK does not check the answer's types (a 200 whose body is null, a list, a
        # string is handed back as it is); the parsers check everything in a Message.
        if not isinstance(message, anthropic.types.Message):
            raise AIServiceError(
                f"unusable answer from the Anthropic API: not a message ({type(message).__name__})",
                kind="response",
                retryable=True,
            )
        return message.model_dump(mode="json", warnings=False)
