"""Untrusted text made inert for the people who read it.

Alert labels and annotations, webhook bodies, pull request comments, runner output and an
LLM's answers reach terminals and reports. A terminal obeys what it is sent: an escape
sequence can recolour, move the cursor, rewrite the window title or hide a line; a carriage
return overwrites what was printed; a right-to-left override (U+202E) shows text backwards;
zero-width characters make two different host names look the same. ``inert`` renders every
such character visibly instead, so a person reads what the text holds:

- the C0 and C1 control characters, DEL included, as ``\\xNN`` (ESC is ``\\x1b``); in one-line
  text newline, carriage return and tab are ``\\n``, ``\\r``, ``\\t``; in text of several
  lines, newlines and tabs stay (a CRLF is one newline), a lone carriage return does not;
- format characters (bidirectional embeddings, overrides and isolates, zero-width spaces
  and joiners, the byte order mark, soft hyphen, invisible tags), the line and paragraph
  separators, and lone surrogates, as ``<U+XXXX>``.

Everything else is kept as it is, including the characters of markup languages: escaping
those is the job of whoever renders the markup (rich markup is never interpreted in
untrusted text: ``terry.cli.output``; Markdown: ``terry.reports.markup``). JSON needs no
help: it escapes control characters itself. The rendering is for reading, not a round trip:
a backslash in the text stays one backslash.
"""

from __future__ import annotations

import re

__all__ = ["inert"]

# Cc (but tab and newline, handled below), Cf, Cs, Zl and Zp: what terminals act on or do
# not show. tests/unit/test_redact.py checks this against the unicodedata of the running
# Python.
_HIDDEN = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2"
    "\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ud800-\udfff\ufeff"
    "\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]"
)
_LINE_BREAKS = re.compile("[\n\r\t]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _shown(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"<U+{code:04X}>"


def inert(text: object, *, multiline: bool = False) -> str:
    """``text`` (any value: ``str()`` of it) with every control, format and invisible
    character shown visibly. ``multiline``: keep newlines and tabs (a playbook, a diff, an
    account); otherwise the result is one line (a label, a title, a table cell)."""
    shown = str(text)
    shown = shown.replace("\r\n", "\n") if multiline else _LINE_BREAKS.sub(_shown, shown)
    return _HIDDEN.sub(_shown, shown)
