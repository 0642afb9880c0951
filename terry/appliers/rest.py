"""One request to a controller's REST API (Argo CD, AWX), retried the same way for all.

A transport error or a 5xx answer is retried with exponential backoff (0.5 s doubling, at
most 8 s) up to ``attempts`` times; a 4xx answer is a refusal and raised at once (retrying
cannot change it). Each applier words its own errors and decodes its own answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

__all__ = ["request_with_retries"]


def request_with_retries(
    http: httpx.Client,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    *,
    attempts: int,
    sleep: Callable[[float], None],
    unreachable: Callable[[httpx.HTTPError], str],
    refused: Callable[[httpx.Response], str],
    error: Callable[[str, int], Exception],
) -> httpx.Response:
    """The first answer under 400, or ``error(problem, status)`` (status 0: unreachable)."""
    delay = 0.5
    for attempt in range(attempts):
        try:
            response = http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            problem, status = unreachable(exc), 0
        else:
            if response.status_code < 400:
                return response
            problem, status = refused(response), response.status_code
            if status < 500:
                raise error(problem, status)
        if attempt == attempts - 1:
            raise error(problem, status)
        sleep(delay)
        delay = min(delay * 2, 8.0)
    raise AssertionError("unreachable")
