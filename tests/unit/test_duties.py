"""Every interface records a person its own way; separation of duties compares persons."""

from __future__ import annotations

import pytest

from terry.proposals.duties import person_of, persons_of
from terry.tenants.model import IdentityKind, Member

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


@pytest.mark.parametrize(
    ("actor", "persons"),
    [
        ("alice", {"alice"}),
        ("bob (by ada)", {"bob", "ada"}),
        ("api:bob (by ada (token tk_ab12cd34))", {"bob", "ada"}),
        ("console:Bob (by Ada (token tk_ab12cd34))", {"bob", "ada"}),
        ("slack:U0456DEF (alice)", {"alice"}),
    ],
)
def test_an_admin_acting_as_someone_names_both(actor: str, persons: set[str]) -> None:
    assert persons_of(actor) == persons
    # a grant is another matter: an approval in someone else's name is no tenant member's
    behalf = "(by" in actor
    for person in persons:
        assert Member(IdentityKind.USER, person).is_(actor.lower()) is not behalf, person
