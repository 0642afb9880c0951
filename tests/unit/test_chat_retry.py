"""Chat's ``retry INCIDENT REASON``: typed, and from Claude's one tool call, checked as the
other writes are (the incident must be in the person's own words, a reason is required)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from terry.chat.grammar import USAGE, ParseError, Retry, parse
from terry.chat.language import NotUnderstood, from_answer

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)


def _answer(command: dict[str, Any]) -> dict[str, Any]:
    """A Messages API response with the one forced ``terry_command`` call."""
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "stop_reason": "tool_use",
        "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "terry_command", "input": command}
        ],
    }


def test_retry_is_typed_with_an_incident_and_a_reason() -> None:
    said = parse("retry inc-2026-01-16-001 the policy is fixed", now=NOW)
    assert said == Retry("INC-2026-01-16-001", "the policy is fixed") and said.writes
    assert parse("retry #12 AWX is free again", now=NOW) == Retry("12", "AWX is free again")
    for bare in ("retry 12", "retry", "reject"):
        with pytest.raises(ParseError, match="usage: re"):
            parse(bare, now=NOW)
    with pytest.raises(ParseError, match="must be a number or a reference"):
        parse("retry yesterday because", now=NOW)
    with pytest.raises(ParseError, match="did you mean retry"):
        parse("rety 12 again", now=NOW)
    assert "retry" in USAGE
    # Terry's own name is how people address it, never a near miss of "retry"
    with pytest.raises(ParseError) as caught:
        parse("Terry, what is wrong with web-01?", now=NOW)
    assert "did you mean" not in str(caught.value)


def test_claude_may_name_a_retry_only_of_the_incident_the_person_named() -> None:
    sentence = "Terry, try incident 12 again, the policy is fixed"
    command = {"command": {"name": "retry", "incident": "12", "reason": "policy fixed"}}
    assert from_answer(_answer(command), sentence, (), NOW) == Retry("12", "policy fixed")
    other = {"command": {"name": "retry", "incident": "13", "reason": "policy fixed"}}
    with pytest.raises(NotUnderstood, match="names incident 13, which your message does not"):
        from_answer(_answer(other), sentence, (), NOW)
    bare = {"command": {"name": "retry", "incident": "12", "reason": " "}}
    with pytest.raises(NotUnderstood):
        from_answer(_answer(bare), sentence, (), NOW)
