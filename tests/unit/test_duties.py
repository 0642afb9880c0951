"""Every interface records a person its own way; separation of duties compares persons."""

from __future__ import annotations

import pytest

from terry.proposals.duties import person_of

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("actor", "person"),
    [
        ("alice", "alice"),
        ("Alice", "alice"),
        ("console:alice (token tk_ab12cd34)", "alice"),
        ("api:alice (token tk_ab12cd34)", "alice"),
        ("alice (token tk_ab12cd34)", "alice"),
        ("console:alice", "alice"),
        ("slack:U0456DEF (alice)", "alice"),
        ("discord:812345678901234567 (Alice)", "alice"),
        ("slack:U0456DEF (alice) extra", "slack:u0456def (alice) extra"),  # not a known form
    ],
)
def test_the_person_behind_each_interfaces_actor(actor: str, person: str) -> None:
    assert person_of(actor) == person
