"""A key given twice in one mapping is an error wherever Terry reads YAML people write:
terry.yml, a remedies.yml, the SLO specs (PyYAML would keep the last one silently)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from terry import yaml_unique
from terry.config import load_config
from terry.errors import ConfigError
from terry.slo.spec import parse_text

pytestmark = pytest.mark.unit


def test_a_setting_given_twice_in_terry_yml_is_refused_naming_both_lines(tmp_path: Path) -> None:
    (tmp_path / "terry.yml").write_text("canary:\n  percent: 5\nstorm: {}\ncanary:\n  watch: 0\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, environ={})
    assert str(caught.value) == (
        f"{tmp_path / 'terry.yml'}: not valid YAML: line 4: key 'canary' given twice in one "
        "mapping (first at line 1): YAML keeps only the last"
    )


def test_an_slo_field_given_twice_is_refused() -> None:
    text = "version: prometheus/v1\nservice: a\nservice: b\nslos: []\n"
    with pytest.raises(ConfigError, match=r"slos/x.yml: not YAML: line 3: key 'service' given"):
        parse_text(text, "slos/x.yml")


def test_what_yaml_allows_stays_allowed() -> None:
    # the same key in different mappings, a merge key overridden, keys of other types
    text = "a: {k: 1}\nb: {k: 2}\nbase: &b {x: 1}\nc:\n  <<: *b\n  x: 2\nd: {1: one, '1': text}\n"
    assert yaml_unique.load(text) == {
        "a": {"k": 1},
        "b": {"k": 2},
        "base": {"x": 1},
        "c": {"x": 2},
        "d": {1: "one", "1": "text"},
    }
    assert list(yaml_unique.load_all("a: 1\n---\na: 2\n")) == [{"a": 1}, {"a": 2}]
    assert yaml_unique.load("") is None
    with pytest.raises(yaml_unique.DuplicateKey, match=r"line 3: key 'k' .*first at line 2"):
        yaml_unique.load("- {j: 0}\n- {k: 1,\n   k: 2}\n")


@pytest.mark.parametrize("loader", [yaml.SafeLoader, getattr(yaml, "CSafeLoader", yaml.SafeLoader)])
def test_yaml_nested_past_reading_is_a_yaml_error(loader: type) -> None:
    with pytest.raises(yaml.YAMLError):
        yaml_unique.load("[" * 5000 + "]" * 5000, loader=loader)
    with pytest.raises(yaml.YAMLError):
        list(yaml_unique.load_all("a: 1\n---\n" + "[" * 5000 + "]" * 5000, loader=loader))
