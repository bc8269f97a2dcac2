"""Tests for gateway.audit.leaf: RFC 8785 canonical leaf encoding."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import Enum, IntEnum
from http import HTTPStatus
from types import MappingProxyType
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit import leaf as leaf_module
from gateway.audit.entry import AuditKind, encode_leaf
from gateway.audit.leaf import (
    MAX_DEPTH,
    MAX_SAFE_INT,
    LeafEncodingError,
    entry_leaf_hash,
    leaf_bytes,
)
from gateway.audit.merkle import leaf_hash
from tests.audit.conftest import exchange_draft


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


# --- the fast path (orjson) must produce the reference (rfc8785) bytes -------------------------
#
# ``leaf_bytes`` encodes plain entries with ``orjson.dumps(..., OPT_SORT_KEYS)`` and everything
# else with the reference path ``_reference_leaf_bytes`` (the encoder the log used before the
# fast path existed, unchanged). The leaf bytes of the existing log must not change, so the
# tests below check (a) the fast path is byte-identical to ``rfc8785.dumps`` on its subset and
# (b) ``leaf_bytes`` agrees with the reference path, bytes or error, on any input at all.


@pytest.fixture
def fast_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if ``leaf_bytes`` falls back to the reference encoder."""

    def refuse(entry: object) -> bytes:
        raise AssertionError(f"fell back to the reference encoder for {entry!r:.200}")

    monkeypatch.setattr(leaf_module, "_reference_leaf_bytes", refuse)


@pytest.fixture
def fallbacks(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record every entry ``leaf_bytes`` hands to the reference encoder."""
    seen: list[object] = []
    reference = leaf_module._reference_leaf_bytes

    def spy(entry: Mapping[str, object]) -> bytes:
        seen.append(entry)
        return reference(entry)

    monkeypatch.setattr(leaf_module, "_reference_leaf_bytes", spy)
    return seen


def _outcome(encode: Callable[[Any], bytes], entry: object) -> bytes | str:
    """The bytes, or the LeafEncodingError message, ``encode`` gives for ``entry``."""
    try:
        return encode(entry)
    except LeafEncodingError as exc:
        return f"LeafEncodingError: {exc}"


ESCAPES = [
    ('"', b'\\"'),
    ("\\", b"\\\\"),
    ("/", b"/"),
    ("\b", b"\\b"),
    ("\f", b"\\f"),
    ("\n", b"\\n"),
    ("\r", b"\\r"),
    ("\t", b"\\t"),
    ("\x00", b"\\u0000"),
    ("\x01", b"\\u0001"),
    ("\x0b", b"\\u000b"),
    ("\x1f", b"\\u001f"),
    ("\x7f", b"\x7f"),
    ("\u0080", b"\xc2\x80"),
    ("é", b"\xc3\xa9"),
    ("中", b"\xe4\xb8\xad"),
    ("\u2028", b"\xe2\x80\xa8"),
    ("\u2029", b"\xe2\x80\xa9"),
    ("\ufeff", b"\xef\xbb\xbf"),
    ("\uffff", b"\xef\xbf\xbf"),
    ("\U0001f600", b"\xf0\x9f\x98\x80"),
    ("\U0010ffff", b"\xf4\x8f\xbf\xbf"),
]


@pytest.mark.parametrize(("char", "escaped"), ESCAPES, ids=[repr(c) for c, _ in ESCAPES])
def test_fast_path_escapes_like_rfc8785(fast_only: None, char: str, escaped: bytes) -> None:
    entry = {"s": f"a{char}b", "l": [char, char * 2]}
    expected = b'{"l":["' + escaped + b'","' + escaped * 2 + b'"],"s":"a' + escaped + b'b"}'
    assert rfc8785.dumps(entry) == expected
    assert leaf_bytes(entry) == expected


@pytest.mark.parametrize("char", [chr(c) for c in range(0x80)], ids=lambda c: f"U+{ord(c):04X}")
def test_fast_path_ascii_keys_escape_and_sort_like_rfc8785(fast_only: None, char: str) -> None:
    entry = {char: 1, f"k{char}": 2, f"{char}{char}": 3, "k": 4, "": 5, "~": 6}
    assert leaf_bytes(entry) == rfc8785.dumps(entry)


def test_fast_path_agrees_on_every_code_point(fast_only: None) -> None:
    # Every Unicode scalar value, 4,096 code points per string (surrogates excluded: no
    # valid string contains them), each also alone for the ASCII and Latin-1 range.
    singles = [chr(c) for c in range(0x100)]
    blocks = [
        "".join(chr(c) for c in range(start, start + 0x1000) if not 0xD800 <= c <= 0xDFFF)
        for start in range(0, 0x110000, 0x1000)
    ]
    for text in singles + blocks:
        entry = {"s": text}
        assert leaf_bytes(entry) == rfc8785.dumps(entry), f"from U+{ord(text[0]):04X}"


def test_fast_path_integers_and_literals(fast_only: None) -> None:
    entry = {
        "n": [0, 1, -1, 10, -10, 2**31, -(2**31), 2**32 + 1, MAX_SAFE_INT, -MAX_SAFE_INT],
        "t": True,
        "f": False,
        "z": None,
        "e": [[], {}, (), [{}], {"a": []}],
        "u": (1, ("x", (None,))),
    }
    assert leaf_bytes(entry) == rfc8785.dumps(entry)


def test_fast_path_depth_boundary(fast_only: None) -> None:
    # MAX_DEPTH containers in total (the entry counts), and an empty one at the limit.
    deepest: object = 1
    for _ in range(MAX_DEPTH - 1):
        deepest = [deepest]
    empty_at_limit: object = []
    for _ in range(MAX_DEPTH - 1):
        empty_at_limit = {"x": empty_at_limit}
    entry = {"d": deepest, "e": empty_at_limit}
    assert leaf_bytes(entry) == rfc8785.dumps(entry)


def test_writer_entries_take_the_fast_path(fast_only: None) -> None:
    draft = exchange_draft(3, detail='upstream said "no"\n', action={"route": "/v1/x"})
    document, leaf = encode_leaf(7, draft)
    assert leaf == rfc8785.dumps(document)
    admin = exchange_draft(4, kind=AuditKind.POLICY_ADMIN, action={"files": ["a.yaml"], "n": 2})
    document, leaf = encode_leaf(8, admin)
    assert leaf == rfc8785.dumps(document)


class _Colour(str, Enum):  # noqa: UP042 - a (str, Enum) mixin, whose str() is "_Colour.RED"
    RED = "red"


class _Level(IntEnum):
    HIGH = 3


class _Key(str):
    pass


# Each of these leaves the fast subset somewhere; the reference encoder decides.
FALLBACKS: list[tuple[str, dict[str, object]]] = [
    ("non-ascii key", {"案件": 1, "a": 2}),
    ("astral key (UTF-16 order)", {"\ufb01": 2, "\U0001f600": 1, "a": 0}),
    ("nested non-ascii key", {"a": {"é": 1}}),
    ("lone surrogate key", {"\udfff": 1}),
    ("lone surrogate value", {"s": "\ud800"}),
    ("lone surrogate deep", {"a": [{"b": ["ok", "x\udc00y"]}]}),
    ("surrogate pair as two code units", {"s": "\ud83d\ude00"}),
    ("float", {"latency_ms": 12.5}),
    ("integral float", {"a": [1.0]}),
    ("nan", {"a": float("nan")}),
    ("too large", {"n": MAX_SAFE_INT + 1}),
    ("too small", {"n": [-MAX_SAFE_INT - 1]}),
    ("int64 overflow", {"n": 2**64}),
    ("str enum member", {"c": _Colour.RED}),
    ("str enum key", {_Colour.RED: 1}),
    ("StrEnum member", {"k": AuditKind.EXCHANGE}),
    ("IntEnum member", {"l": [_Level.HIGH]}),
    ("HTTPStatus", {"status": HTTPStatus.OK}),
    ("str subclass key", {_Key("k"): 1}),
    ("non-str key", {"d": {1: "x"}}),
    ("OrderedDict value", {"o": OrderedDict([("b", 1), ("a", 2)])}),
    ("MappingProxyType value", {"m": MappingProxyType({"b": 1, "a": 2})}),
    ("bytes", {"b": b"x"}),
    ("set", {"s": {1}}),
    ("datetime", {"t": datetime(2026, 1, 1, tzinfo=UTC)}),
    ("uuid", {"u": uuid.UUID(int=1)}),
    ("object", {"o": object()}),
]


@pytest.mark.parametrize(("name", "entry"), FALLBACKS, ids=[n for n, _ in FALLBACKS])
def test_fallback_triggers(fallbacks: list[object], name: str, entry: dict[str, object]) -> None:
    reference = _outcome(leaf_module._reference_leaf_bytes, entry)
    fallbacks.clear()
    assert _outcome(leaf_bytes, entry) == reference
    assert fallbacks == [entry], "expected the reference encoder to decide"


def test_fallback_keeps_the_reference_results() -> None:
    # What the reference path does with these, pinned (the log may already hold such leaves).
    assert leaf_bytes({"c": _Colour.RED}) == b'{"c":"_Colour.RED"}'  # str() of a (str, Enum)
    assert leaf_bytes({"k": AuditKind.EXCHANGE, "s": HTTPStatus.OK}) == (
        b'{"k":"exchange","s":200}'
    )
    assert leaf_bytes(OrderedDict([("b", 1), ("a", 2)])) == b'{"a":2,"b":1}'
    with pytest.raises(LeafEncodingError, match=r"\$\.a\[0\]\.b\[1\]: string is not valid"):
        leaf_bytes({"a": [{"b": ["ok", "x\udc00y"]}]})


@pytest.mark.parametrize("kind", ["dict", "list"])
def test_fallback_on_cycles_and_excess_depth(fallbacks: list[object], kind: str) -> None:
    cyclic: Any = {} if kind == "dict" else []
    if kind == "dict":
        cyclic["self"] = cyclic
    else:
        cyclic.append(cyclic)
    with pytest.raises(LeafEncodingError, match="nesting"):
        leaf_bytes({"c": cyclic})
    too_deep: object = []
    for _ in range(MAX_DEPTH):
        too_deep = [too_deep]
    with pytest.raises(LeafEncodingError, match="nesting"):
        leaf_bytes({"d": too_deep})
    assert len(fallbacks) == 2


def test_non_mapping_entries_are_refused() -> None:
    for entry in ([("a", 1)], "a", None, 1):
        with pytest.raises(LeafEncodingError, match=r"\$: entry must be a mapping"):
            leaf_bytes(entry)  # type: ignore[arg-type]


_ascii_key = st.text(st.characters(max_codepoint=0x7F), max_size=6)
_plain_json = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INT, MAX_SAFE_INT) | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(_ascii_key, children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None, database=None)
@given(entry=st.dictionaries(_ascii_key, _plain_json, max_size=8))
def test_fast_path_equals_rfc8785_on_its_subset(entry: dict[str, object]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(leaf_module, "_reference_leaf_bytes", _no_fallback)
        out = leaf_bytes(entry)
    assert out == rfc8785.dumps(entry)


def _no_fallback(entry: object) -> bytes:
    raise AssertionError(f"fell back for {entry!r:.200}")


# Anything at all: leaf_bytes must give what the reference path gives (bytes or error).
_any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=6)
_any_scalar = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-MAX_SAFE_INT - 2, -MAX_SAFE_INT + 2)
    | st.integers(MAX_SAFE_INT - 2, MAX_SAFE_INT + 2)
    | st.floats()
    | st.text()
    | _any_text
    | st.sampled_from([_Colour.RED, _Level.HIGH, HTTPStatus.OK, AuditKind.EXCHANGE, _Key("k")])
    | st.binary(max_size=2)
)
_any_key = (
    _ascii_key
    | _any_text
    | st.sampled_from(["é", "\ufb01", "\U0001f600", "\ud800", _Colour.RED, _Key("é"), 1, None])
)
_any_json = st.recursive(
    _any_scalar,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(_any_key, children, max_size=4)
        | st.dictionaries(_ascii_key, children, max_size=3).map(OrderedDict)
        | st.dictionaries(_ascii_key, children, max_size=3).map(MappingProxyType)
    ),
    max_leaves=20,
)


@settings(max_examples=600, deadline=None, database=None)
@given(entry=st.dictionaries(_any_key, _any_json, max_size=6))
def test_leaf_bytes_equals_reference_on_any_input(entry: dict[Any, object]) -> None:
    assert _outcome(leaf_bytes, entry) == _outcome(leaf_module._reference_leaf_bytes, entry)
