"""Remedy parameters: untrusted label values either fit their type or are refused with why."""

from __future__ import annotations

import pytest

from terry.remedies.params import ParamError, ParamSpec, ParamType, resolve_params

pytestmark = pytest.mark.unit

PATH = ParamSpec("path", ParamType.PATH, source="label:mountpoint", within=("/srv", "/var"))
NAME = ParamSpec("service", ParamType.NAME, source="label:service", required=True)
INT = ParamSpec("threshold", ParamType.INT, source="label:threshold", default=80, min=1, max=99)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("/srv/data", "/srv/data"), ("/var/log/../log/app", "/var/log/app"), ("/srv", "/srv")],
)
def test_paths_inside_the_allowed_roots_are_accepted_normalised(value: str, expected: str) -> None:
    assert PATH.check(value) == expected


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("/etc/passwd", "outside the allowed roots"),
        ("/srv/../etc", "outside the allowed roots"),
        ("/srvdata", "outside the allowed roots"),
        ("srv/data", "not an absolute path"),
        ("/srv/data; rm -rf /", "characters not allowed"),
        ("/srv/$(id)", "characters not allowed"),
        ("{{ lookup('pipe','id') }}", "not an absolute path"),
        ("/srv/a\nb", "control characters"),
    ],
)
def test_paths_that_cannot_be_valid_are_refused_with_the_reason(value: str, why: str) -> None:
    with pytest.raises(ParamError, match=why.replace("(", r"\(")):
        PATH.check(value)


@pytest.mark.parametrize("value", ["web server", "web;id", "-rf", "", "$(id)", "a" * 65])
def test_service_names_with_spaces_or_shell_are_refused(value: str) -> None:
    with pytest.raises(ParamError, match="not a valid name"):
        NAME.check(value)


def test_ints_are_bounded_and_defaulted() -> None:
    assert resolve_params((INT,), {}, {}) == {"threshold": 80}
    assert resolve_params((INT,), {"threshold": "85"}, {}) == {"threshold": 85}
    with pytest.raises(ParamError, match=r"parameter 'threshold' .* above the maximum 99"):
        resolve_params((INT,), {"threshold": "100"}, {})
    with pytest.raises(ParamError, match="not an integer"):
        resolve_params((INT,), {"threshold": "80; id"}, {})


def test_a_required_parameter_that_is_missing_is_named() -> None:
    with pytest.raises(ParamError, match="parameter 'service': label:service is missing"):
        resolve_params((NAME,), {}, {})


def test_free_text_is_kept_as_data_with_control_characters_folded() -> None:
    spec = ParamSpec("reason", ParamType.STRING, source="annotation:summary", default="")
    text = "{{ lookup('pipe','id') }}\n- hosts: all\x00"
    assert resolve_params((spec,), {}, {"summary": text}) == {
        "reason": "{{ lookup('pipe','id') }} - hosts: all "
    }
    assert len(spec.check("x" * 5000)) == 256
