"""The standard's YAML reading: libyaml's parser where it can, the strict Python one as the
reference (data, positions and every error)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.standard import _yaml
from gateway.standard._yaml import YamlDocument, read_yaml
from gateway.standard.errors import StandardError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "policies").rglob("*.yaml"))

# Only the comparisons need libyaml; without it every file is read by the strict reader, and
# the error tests below still hold.
needs_libyaml = pytest.mark.skipif(
    not yaml.__with_libyaml__, reason="PyYAML built without libyaml: nothing to compare"
)


def both(text: str) -> tuple[YamlDocument | None, YamlDocument]:
    return _yaml._read_with_libyaml("f.yaml", text), _yaml._read_strict("f.yaml", text)


def same(fast: YamlDocument | None, strict: YamlDocument) -> None:
    assert fast is not None
    assert fast.data == strict.data
    assert fast.marks == strict.marks


@needs_libyaml
def test_there_are_shipped_files_to_compare() -> None:
    assert len(SHIPPED) > 20


@needs_libyaml
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_file_reads_the_same_both_ways(path: Path) -> None:
    same(*both(path.read_text(encoding="utf-8")))


# Keys and scalars as the standard's files write them: ASCII names, Chinese text, codes
# with leading zeros, numbers, booleans, nulls and dates.
_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Co", "Cn", "Zl", "Zp")),
    max_size=12,
)
_scalar = st.one_of(
    _text,
    st.integers(-(10**6), 10**6),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.dates(),
    st.sampled_from(["01", "007", "yes", "No", "~", "2021-01-01", "1e3", "刑初"]),
)
_documents = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(_text, st.sampled_from(["01", "1", "true"])), inner, max_size=4),
    ),
    max_leaves=25,
)


@needs_libyaml
@settings(max_examples=300, deadline=None)
@given(
    _documents,
    st.sampled_from([None, False, True]),
    st.booleans(),
    st.sampled_from([None, '"', "'", "|"]),
)
def test_any_document_reads_the_same_both_ways(
    data: object, flow: bool | None, unicode: bool, style: str | None
) -> None:
    """Oracle: the strict Python reading, on documents dumped in every style."""
    text = yaml.safe_dump(
        {"doc": data}, default_flow_style=flow, allow_unicode=unicode, default_style=style
    )
    same(*both(text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &x 1\nb: *x\n", "YAML aliases are not allowed in the standard"),
        ("a: 1\na: 2\n", "duplicate key 'a' (first defined on line 1)"),
        ("base: &b {x: 1}\nc:\n  <<: *b\n", "YAML aliases are not allowed in the standard"),
        ("c:\n  <<: {x: 1}\n", "YAML merge keys (<<) are not allowed"),
        ("a: 1\n---\nb: 2\n", "YAML syntax error"),
        ("a: [1, 2\n", "YAML syntax error"),
        ("a: 1\x00\n", "YAML error"),
        ("? [1, 2]\n: x\n", "mapping keys must be plain strings"),
        ("", "file is empty"),
    ],
)
def test_errors_are_the_strict_readers(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(StandardError) as read:
        read_yaml(path)
    with pytest.raises(StandardError) as strict:
        _yaml._read_strict(str(path), text)
    assert message in str(read.value)
    assert str(read.value) == str(strict.value)
    assert read.value.problems == strict.value.problems


@needs_libyaml
def test_an_alias_sends_the_file_to_the_strict_reader() -> None:
    assert _yaml._read_with_libyaml("f.yaml", "a: &x [1]\nb: *x\n") is None


@needs_libyaml
def test_an_anchor_alone_is_read_by_libyaml() -> None:
    same(*both("a: &x [1]\nb: 2\n"))
