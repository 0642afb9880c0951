"""What Jaeger's and Tempo's clients share: one ``httpx`` client and one ``GET`` that turns
every failure (no answer, a timeout, an error status, a body that is not a JSON object) into
``TraceUnavailable`` with a short reason, so a trace backend that is down only makes the
diagnosis say so. Each backend words its own refusals (``refusal``). Asked inside one of
Terry's spans (the diagnose step), a request carries its W3C ``traceparent``, so a traced
Jaeger or Tempo puts its work in the incident's trace."""

from __future__ import annotations

import json
from typing import Any

import httpx

from terry.traces.model import TraceTimedOut, TraceUnavailable
from terry.traces.spans import traceparent

__all__ = ["TraceAPI"]


class TraceAPI:
    """A trace backend's HTTP JSON API; every failure is ``TraceUnavailable``."""

    name = "traces"

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        transport: httpx.BaseTransport | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=url.rstrip("/"), timeout=timeout, transport=transport, headers=headers
        )

    def close(self) -> None:
        self._http.close()

    def refusal(self, response: httpx.Response, body: Any) -> str:
        """Why an answer that is not a 200 with a JSON object is no trace (at most a line)."""
        return f"{self.name} answered {response.status_code}"

    def _get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        parent = traceparent()
        try:
            response = self._http.get(
                path, params=params, headers={"traceparent": parent} if parent else None
            )
        except httpx.TimeoutException as exc:
            raise TraceTimedOut(f"{self.name} did not answer in time ({path})") from exc
        except httpx.HTTPError as exc:
            raise TraceUnavailable(f"{self.name} unreachable: {type(exc).__name__}") from exc
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if response.status_code != 200 or not isinstance(body, dict):
            raise TraceUnavailable(self.refusal(response, body))
        return body
