"""Masks: redact, keep, hash (a pseudonym), year_only; the strongest one wins."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.policy.masks import REDACTED, mask_function, stronger
from gateway.policy.model import Mask, MaskKind


def _mask(**kw: object) -> Mask:
    return Mask.model_validate(kw)


@pytest.mark.parametrize(
    ("mask", "value", "expected"),
    [
        ({"kind": "redact"}, "银川市兴庆区", REDACTED),
        ({"kind": "redact"}, 42, REDACTED),
        ({"kind": "keep", "first": 6, "last": 4}, "11010519491231002X", "110105********002X"),
        ({"kind": "keep", "first": 1}, "张三丰", "张**"),
        ({"kind": "keep", "last": 4}, "13800001234", "*******1234"),
        ({"kind": "keep", "first": 6, "last": 4}, "123456789", "*********"),
        ({"kind": "year_only"}, "1949-12-31", "1949"),
        ({"kind": "year_only"}, "not a date", REDACTED),
        ({"kind": "redact"}, ["a", None, "b"], [REDACTED, None, REDACTED]),
        ({"kind": "redact"}, None, None),
    ],
)
def test_masks(mask: dict[str, object], value: object, expected: object) -> None:
    assert mask_function(_mask(**mask))(value) == expected


def test_hash_is_a_sha256_prefix_pseudonym() -> None:
    digest = hashlib.sha256(b"11010519491231002X").hexdigest()
    assert mask_function(_mask(kind="hash"))("11010519491231002X") == digest[:16]
    assert mask_function(_mask(kind="hash", length=32))("11010519491231002X") == digest[:32]


@given(st.text(max_size=40), st.integers(0, 10), st.integers(0, 10))
def test_keep_preserves_length_and_never_reveals_more(text: str, first: int, last: int) -> None:
    if first == 0 and last == 0:
        return
    out = mask_function(_mask(kind="keep", first=first, last=last))(text)
    assert len(out) == len(text)
    revealed = sum(1 for a, b in zip(text, out, strict=True) if a == b and b != "*")
    assert revealed <= first + last


def test_stronger_order() -> None:
    redact, hashed = _mask(kind="redact"), _mask(kind="hash")
    year, keep = _mask(kind="year_only"), _mask(kind="keep", first=6, last=4)
    assert stronger(keep, redact) is redact
    assert stronger(hashed, year) is hashed
    assert stronger(keep, year) is year
    narrow = _mask(kind="keep", first=3)
    assert stronger(keep, narrow) is narrow
    assert stronger(_mask(kind="hash", length=32), hashed) is hashed
    assert [k.value for k in MaskKind] == ["redact", "hash", "year_only", "keep"]
