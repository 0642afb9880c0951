"""Errors of diagnosis with Claude: the service failed, or its answer cannot be used.

Either way the incident is kept for a human; nothing is applied.
"""

from __future__ import annotations

from terry.errors import TerryError

__all__ = ["AIAnswerError", "AIError", "AIServiceError"]


class AIError(TerryError):
    """Diagnosis with Claude could not give a usable answer."""

    exit_code = 11


class AIServiceError(AIError):
    """The Anthropic API refused the request or could not be reached.

    ``kind`` is one of ``authentication``, ``permission``, ``invalid_request``, ``not_found``,
    ``rate_limit``, ``overloaded``, ``server``, ``timeout``, ``connection``, ``response``;
    ``retryable`` says whether asking again later may succeed."""

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        retryable: bool,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable
        self.status = status
        self.request_id = request_id


class AIAnswerError(AIError):
    """Claude answered, but the answer breaks a rule (schema, catalogue, allow-list, hosts);
    the message says which, and the answer is not used."""
