"""One request to a controller's REST API (Argo CD, AWX), retried the same way for all.

- A transport error or a 5xx answer is retried with exponential backoff (0.5 s doubling, at
  most 8 s) up to ``attempts`` times, for a request that may be repeated (``repeatable``).
  One that may not (a launch, a sync: it may have been carried out though the answer was
  lost) is retried only when its connection was never made.
- 429 (a rate limit: nothing was done) is retried for every request.
- ``Retry-After`` (seconds or an HTTP date) is honoured, at most a minute.
- Any other 4xx is a refusal and raised at once: retrying cannot change it.
- ``check`` may refuse an answer under 400 (a body that is not what was asked for, say a
  truncated one): that is retried like a 5xx.

Each applier words its own errors and decodes its own answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from terry.durations import retry_after

__all__ = ["request_with_retries"]

MAX_RETRY_AFTER = 60.0  # seconds: the longest a server's Retry-After is waited for
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout)


def _asked_wait(response: httpx.Response) -> float | None:
    return retry_after(response.headers.get("retry-after"), most=MAX_RETRY_AFTER)


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
    error: Callable[[str, int, bool], Exception],
    repeatable: bool = True,
    check: Callable[[httpx.Response], str | None] | None = None,
) -> httpx.Response:
    """The first answer under 400 that ``check`` accepts, or ``error(problem, status, sent)``
    (status 0: unreachable; ``sent`` False: the last attempt never left, its connection
    never made, so nothing was carried out)."""
    delay = 0.5
    for attempt in range(attempts):
        wait: float | None = None
        sent = True
        try:
            response = http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            problem, status, sent = unreachable(exc), 0, not isinstance(exc, _NEVER_SENT)
            again = repeatable or not sent
        else:
            status = response.status_code
            if status < 400:
                said = check(response) if check is not None else None
                if said is None:
                    return response
                problem, again = said, repeatable
            else:
                problem = refused(response)
                again = status == 429 or (repeatable and status >= 500)
                wait = _asked_wait(response)
        if not again or attempt == attempts - 1:
            raise error(problem, status, sent)
        sleep(delay if wait is None else wait)
        delay = min(delay * 2, 8.0)
    raise AssertionError("unreachable")
