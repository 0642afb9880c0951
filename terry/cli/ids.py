"""Row ids on the command line: a number no row can have is "does not exist", in one line.

``type=int`` let ``terry incidents show 99999999999999999999999`` reach the database, whose
driver then failed with a traceback (SQLite: "Python int too large to convert to SQLite
INTEGER"; PostgreSQL: "integer out of range"). Ids are INTEGER columns
(``terry.store.models.MAX_ROW_ID``), so a larger one names nothing.
"""

from __future__ import annotations

import click

from terry.errors import NotFound

__all__ = ["RowId"]

MAX_ROW_ID = 2**31 - 1  # terry.store.models.MAX_ROW_ID (kept equal by tests/unit)


class RowId(click.ParamType):
    """A row id: a whole number; one above any id the store can hold is NotFound."""

    name = "id"

    def __init__(self, what: str) -> None:
        self.what = what  # "incident", "proposal", "scan": for the message

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            text = str(value)
        else:
            text = str(value).strip()
        if not (text.isascii() and text.isdigit()):
            self.fail(f"{text[:40]!r} is not an id (a whole number)", param, ctx)
        if len(text) > 10 or not 1 <= int(text) <= MAX_ROW_ID:
            shown = text if len(text) <= 24 else text[:24] + "…"
            raise NotFound(f"{self.what} {shown} does not exist")
        return int(text)
