"""Durations as people write them in ``terry.yml`` and on the command line: ``90s``, ``10m``,
``6h``, ``7d`` (also ``1.5h``, ``2w``, or a bare number of seconds), and back to short text;
and the wait a server asks for (``Retry-After``), read once for every client.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["format_duration", "parse_duration", "retry_after"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def parse_duration(value: object) -> float:
    """Seconds from ``"90s"``, ``"10m"``, ``"6h"``, ``"7d"``, ``"2w"`` or a number of seconds.

    Raises ``ValueError`` saying what is accepted; zero and negative durations are refused.
    """
    if isinstance(value, bool):  # YAML's yes/no are not durations
        raise ValueError(f"{value!r} is not a duration: write e.g. 90s, 10m, 6h or 7d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        shown = value if isinstance(value, int | float | str) else type(value).__name__
        raise ValueError(
            f"{str(shown)[:40]!r} is not a duration: write a number and a unit "
            "(s, m, h, d or w), e.g. 90s, 10m, 6h or 7d"
        )
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{value!r} is not a positive duration")
    return seconds


def format_duration(seconds: float) -> str:
    """Short text for a span: ``45s``, ``3m``, ``2.5h``, ``9.7d`` (sign dropped)."""
    s = abs(seconds)
    if not math.isfinite(s):
        return "never"
    if s < 100:
        return f"{s:.0f}s"
    if s < 100 * 60:
        return f"{s / 60:.0f}m"
    if s < 48 * 3600:
        return f"{s / 3600:.1f}h".replace(".0h", "h")
    return f"{s / 86400:.1f}d".replace(".0d", "d")


def retry_after(value: object, *, most: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date) or a
    JSON ``retry_after`` (a number), between 0 and ``most``; None when it says none."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                when = parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = (when - datetime.now(UTC)).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), most)
