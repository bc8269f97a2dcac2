"""Tests for gateway.audit.leaf: RFC 8785 canonical leaf encoding."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit.leaf import (
    MAX_DEPTH,
    MAX_SAFE_INT,
    LeafEncodingError,
    entry_leaf_hash,
    leaf_bytes,
)
from gateway.audit.merkle import leaf_hash


def test_known_canonical_output() -> None:
    entry = {
        "request_id": "r-1",
        "latency_us": 1250,
        "ok": True,
        "denied": None,
        "agency": "公安",
        "fields": ["name", "id_no"],
    }
    assert leaf_bytes(entry) == (
        b'{"agency":"\xe5\x85\xac\xe5\xae\x89","denied":null,"fields":["name","id_no"],'
        b'"latency_us":1250,"ok":true,"request_id":"r-1"}'
    )


def test_key_order_is_irrelevant() -> None:
    a = {"b": 1, "a": {"y": [1, 2], "x": "中文"}, "c": None}
    b = OrderedDict([("c", None), ("a", {"x": "中文", "y": [1, 2]}), ("b", 1)])
    assert leaf_bytes(a) == leaf_bytes(b) == leaf_bytes(MappingProxyType(a))


def test_chinese_is_stable_utf8_not_escaped() -> None:
    out = leaf_bytes({"案件": "刑事案件（一审）"})
    assert out == '{"案件":"刑事案件（一审）"}'.encode()
    assert leaf_bytes({"案件": "刑事案件（一审）"}) == out


def test_string_escaping_follows_rfc8785() -> None:
    out = leaf_bytes({"s": 'a"b\\c\n\x1f/é\u2028'})
    assert out == b'{"s":"a\\"b\\\\c\\n\\u001f/\xc3\xa9\xe2\x80\xa8"}'


def test_keys_sorted_by_utf16_code_units() -> None:
    # U+1F600 is the surrogate pair D83D DE00, which sorts before U+FB01 in UTF-16
    # although its code point is larger.
    out = leaf_bytes({"\ufb01": 2, "\U0001f600": 1, "a": 0})
    assert out == '{"a":0,"\U0001f600":1,"\ufb01":2}'.encode()


def test_tuples_encode_as_arrays() -> None:
    assert leaf_bytes({"t": (1, "x", [True])}) == b'{"t":[1,"x",[true]]}'


def test_integer_range() -> None:
    assert leaf_bytes({"n": MAX_SAFE_INT, "m": -MAX_SAFE_INT}) == (
        b'{"m":-9007199254740991,"n":9007199254740991}'
    )
    for bad in (MAX_SAFE_INT + 1, -MAX_SAFE_INT - 1, 2**64):
        with pytest.raises(LeafEncodingError, match=r"\$\.n"):
            leaf_bytes({"n": bad})


@pytest.mark.parametrize(
    "value",
    [1.5, 1.0, 0.0, float("nan"), float("inf"), b"bytes", {1, 2}, object()],
    ids=["float", "integral-float", "zero-float", "nan", "inf", "bytes", "set", "object"],
)
def test_disallowed_values_rejected(value: object) -> None:
    with pytest.raises(LeafEncodingError, match=r"\$\.outer\[0\]\.v"):
        leaf_bytes({"outer": [{"v": value}]})


def test_float_message_suggests_integers() -> None:
    with pytest.raises(LeafEncodingError, match="integers in a fixed unit"):
        leaf_bytes({"latency_ms": 12.5})


def test_bad_keys_and_strings_rejected() -> None:
    with pytest.raises(LeafEncodingError, match="not a string"):
        leaf_bytes({"d": {1: "x"}})
    with pytest.raises(LeafEncodingError, match="Unicode"):
        leaf_bytes({"s": "\ud800"})
    with pytest.raises(LeafEncodingError, match="Unicode"):
        leaf_bytes({"\udfff": 1})
    with pytest.raises(LeafEncodingError, match="mapping"):
        leaf_bytes([1, 2])  # type: ignore[arg-type]


def test_depth_limit() -> None:
    # The entry itself counts as one container: MAX_DEPTH containers in total.
    ok: object = 1
    for _ in range(MAX_DEPTH - 1):
        ok = [ok]
    assert leaf_bytes({"d": ok}).startswith(b'{"d":[[')
    with pytest.raises(LeafEncodingError, match="nesting"):
        leaf_bytes({"d": [ok]})


def test_entry_leaf_hash() -> None:
    entry = {"a": 1}
    assert entry_leaf_hash(entry) == leaf_hash(b'{"a":1}')
    assert entry_leaf_hash(entry) == hashlib.sha256(b'\x00{"a":1}').digest()


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INT, MAX_SAFE_INT) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, database=None)
@given(entry=st.dictionaries(st.text(max_size=8), _json, max_size=6), data=st.data())
def test_canonical_properties(entry: dict[str, object], data: st.DataObject) -> None:
    out = leaf_bytes(entry)
    # Parses back to the same value, and is independent of key insertion order.
    assert json.loads(out.decode("utf-8")) == entry
    keys = data.draw(st.permutations(list(entry)))
    assert leaf_bytes({k: entry[k] for k in keys}) == out
    # Idempotent: canonicalising the parsed output reproduces it.
    assert leaf_bytes(json.loads(out)) == out
