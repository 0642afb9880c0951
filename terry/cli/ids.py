"""Row ids on the command line: a number no row can have is "does not exist", in one line.

``type=int`` let ``terry incidents show 99999999999999999999999`` reach the database, whose
driver then failed with a traceback (SQLite: "Python int too large to convert to SQLite
INTEGER"; PostgreSQL: "integer out of range"). Ids are INTEGER columns
(``terry.store.models.MAX_ROW_ID``), so a larger one names nothing.
"""

from __future__ import annotations

import click

from terry.errors import NotFound

__all__ = ["IncidentKey", "RowId"]

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


class IncidentKey(RowId):
    """An incident: its id, or its reference (``INC-2026-12-04-007``, any case).

    Converts to an ``int`` (an id) or the reference text; the command resolves it against the
    store (``terry.incidents.refs.resolve_incident``)."""

    name = "incident"

    def __init__(self) -> None:
        super().__init__("incident")

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int | str:  # type: ignore[override]
        text = str(value).strip()
        if text[:4].upper() == "INC-":
            from terry.incidents.refs import parse_ref

            if parse_ref(text) is None:
                self.fail(
                    f"{text[:40]!r} is not an incident reference (INC-YYYY-MM-DD-NNN)",
                    param,
                    ctx,
                )
            return text
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            self.fail(
                f"{text[:40]!r} is not an incident: give its number or its reference "
                "(INC-2026-12-04-007)",
                param,
                ctx,
            )
