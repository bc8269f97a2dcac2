"""Header and query parsing of exchange requests, against the shipped standard."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import Headers, QueryParams

from gateway.errors import InvalidHeader, UnprocessableContent
from gateway.exchange.cursor import CursorSealer
from gateway.exchange.request import (
    SearchQuery,
    decode_case_number,
    parse_fetch_query,
    parse_headers,
    parse_search_query,
)
from gateway.settings import REPO_ROOT
from gateway.standard import Standard, load_standard

COURT_CASE = "(2021)宁0104刑初123号"
POLICE_CASE = "A6401040000002021010001"


@pytest.fixture(scope="module")
def standard() -> Standard:
    return load_standard(Path(REPO_ROOT / "policies" / "standard"))


SEALER = CursorSealer(bytes(range(32)))


def _search(standard: Standard, resource: str, query: str, client: str = "c1") -> SearchQuery:
    return parse_search_query(
        standard,
        standard.resource(resource),
        QueryParams(query),
        cursors=SEALER,
        client_id=client,
        agency="FY640104",
    )


def _headers(**values: str) -> Headers:
    raw = [(k.lower().replace("_", "-").encode(), v.encode("latin-1")) for k, v in values.items()]
    return Headers(raw=raw)


def test_percent_encoded_case_number_decodes() -> None:
    assert decode_case_number(quote(COURT_CASE, safe="()")) == COURT_CASE
    assert decode_case_number(quote(COURT_CASE)) == COURT_CASE
    assert decode_case_number(POLICE_CASE) == POLICE_CASE


def test_raw_utf8_case_number_is_refused() -> None:
    # What a server sees when curl sends raw UTF-8: the bytes read as Latin-1.
    mojibake = COURT_CASE.encode("utf-8").decode("latin-1")
    with pytest.raises(InvalidHeader, match="percent-encoded"):
        decode_case_number(mojibake)


@pytest.mark.parametrize(
    "value",
    [
        quote("（2021）宁０１０４刑初123号"),  # full-width digits
        quote("(2021)宁0104刑初123"),  # no 号
        "%E5%AE",  # truncated UTF-8
        "%FF%FE",  # not UTF-8
        "hello",
        "",
    ],
)
def test_malformed_case_numbers_are_refused(value: str) -> None:
    with pytest.raises(InvalidHeader):
        decode_case_number(value)


def test_headers_parse(standard: Standard) -> None:
    parsed = parse_headers(
        _headers(x_purpose="TRIAL", x_operator_id="FY-0042", x_case_number=quote(COURT_CASE)),
        standard,
    )
    assert parsed.purpose == "TRIAL"
    assert parsed.operator_id == "FY-0042"
    assert parsed.case_number == COURT_CASE


@pytest.mark.parametrize(
    ("headers", "header"),
    [
        ({"x_operator_id": "op1"}, "X-Purpose"),
        ({"x_purpose": "NOT_A_PURPOSE", "x_operator_id": "op1"}, "X-Purpose"),
        ({"x_purpose": "TRIAL"}, "X-Operator-Id"),
        ({"x_purpose": "TRIAL", "x_operator_id": "bad id with spaces"}, "X-Operator-Id"),
        ({"x_purpose": "TRIAL", "x_operator_id": "o" * 65}, "X-Operator-Id"),
    ],
)
def test_missing_or_bad_headers(standard: Standard, headers: dict[str, str], header: str) -> None:
    with pytest.raises(InvalidHeader) as caught:
        parse_headers(_headers(**headers), standard)
    assert caught.value.extra["header"] == header
    assert caught.value.status == 400


def test_search_query(standard: Standard) -> None:
    query = _search(standard, "judgment", f"court_case_number={quote(COURT_CASE)}&limit=5")
    assert query.filters == {"court_case_number": COURT_CASE}
    assert query.limit == 5
    assert query.after is None
    cursor = SEALER.seal("JD0000000101", query.binding)
    again = _search(standard, "judgment", f"court_case_number={quote(COURT_CASE)}&cursor={cursor}")
    assert again.after == "JD0000000101"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("", "filters"),
        ("limit=5", "filters"),
        ("court_case_number=nonsense", "court_case_number"),
        ("summary=x", "summary"),
        ("no_such_field=1", "no_such_field"),
        (f"court_case_number={quote(COURT_CASE)}&limit=0", "limit"),
        (f"court_case_number={quote(COURT_CASE)}&limit=101", "limit"),
        (f"court_case_number={quote(COURT_CASE)}&limit=ten", "limit"),
        (f"court_case_number={quote(COURT_CASE)}&cursor=%%%", "cursor"),
        (f"court_case_number={quote(COURT_CASE)}&fields=nope", "fields"),
        (f"court_case_number={quote(COURT_CASE)}&court_case_number=x", "court_case_number"),
    ],
)
def test_bad_search_queries_name_the_field(standard: Standard, query: str, field: str) -> None:
    with pytest.raises(UnprocessableContent) as caught:
        _search(standard, "judgment", query)
    assert field in {e["field"] for e in caught.value.extra["errors"]}


def test_cursor_of_another_search_is_refused(standard: Standard) -> None:
    first = _search(standard, "judgment", "case_id=C00000001")
    cursor = SEALER.seal("JD0000000101", first.binding)
    with pytest.raises(UnprocessableContent, match="not valid for this search"):
        _search(standard, "judgment", f"case_id=C00000002&cursor={cursor}")
    with pytest.raises(UnprocessableContent, match="not valid for this search"):
        _search(standard, "judgment", f"case_id=C00000001&cursor={cursor}", client="c2")
    assert _search(standard, "judgment", f"case_id=C00000001&cursor={cursor}").after


def test_a_sealed_position_outside_the_id_alphabet_is_refused(standard: Standard) -> None:
    first = _search(standard, "judgment", "case_id=C00000001")
    cursor = SEALER.seal("../../admin", first.binding)
    with pytest.raises(UnprocessableContent, match="not valid for this search"):
        _search(standard, "judgment", f"case_id=C00000001&cursor={cursor}")


def test_fetch_takes_fields_only(standard: Standard) -> None:
    person = standard.resource("person")
    assert parse_fetch_query(person, QueryParams("fields=name,sex")) == {"name", "sex"}
    assert parse_fetch_query(person, QueryParams("")) is None
    with pytest.raises(UnprocessableContent):
        parse_fetch_query(person, QueryParams("limit=3"))
    with pytest.raises(UnprocessableContent):
        parse_fetch_query(person, QueryParams("fields="))


def _unused_standard() -> Standard:
    """The shipped standard with nothing derived from it yet. ``load_standard`` answers the
    same files with the same (shared) Standard; a copy starts with an empty memory."""
    return load_standard(Path(REPO_ROOT / "policies" / "standard")).model_copy()


def test_the_case_number_check_is_built_once_per_standard(
    standard: Standard, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building it (the standard's court and division codes) cost ~75 µs per request."""
    from gateway.exchange import request as module

    built: list[Standard] = []
    original = module.parsed_case_number_check

    def counting(given: Standard) -> object:
        built.append(given)
        return original(given)

    monkeypatch.setattr(module, "parsed_case_number_check", counting)
    fresh = _unused_standard()
    for _ in range(3):
        assert decode_case_number(quote(COURT_CASE), fresh) == COURT_CASE
        with pytest.raises(InvalidHeader, match="X-Case-Number"):
            decode_case_number(quote("(2021)宁9999刑初123号"), fresh)  # no such court
    assert built == [fresh]


def _narrowed(standard: Standard) -> Standard:
    """The standard with one 案号 type code (刑初) in its table ``court_case_type``."""
    data = standard.model_dump(by_alias=True)
    for table in data["code_tables"]:
        if table["id"] == "court_case_type":
            table["codes"] = {"刑初": table["codes"]["刑初"]}
    return Standard.model_validate(data)


@pytest.mark.parametrize(
    "value",
    [
        COURT_CASE,
        "（2021）宁0104刑初123号",  # full-width parentheses
        "(2021)宁9999刑初123号",  # no such court
        "(2021)宁0104刑终7号",  # a type code the narrowed standard does not have
        "(2021)最高法刑核1号",
        "(2021)京0105刑初9号",  # a court outside the sample's divisions
    ],
)
def test_the_header_is_parsed_once_with_the_same_reasons(standard: Standard, value: str) -> None:
    """``X-Case-Number`` is parsed once (form, then codes, then canonical text), as before."""
    from gateway.standard import canonical_case_number, case_number_check, parse_case_number
    from gateway.standard.records import parsed_case_number_check

    for std in (standard, _narrowed(standard)):
        expected = case_number_check(std)(value)
        assert parsed_case_number_check(std)(parse_case_number(value)) == expected
        if expected is None:
            assert decode_case_number(quote(value), std) == canonical_case_number(value)
        else:
            with pytest.raises(InvalidHeader) as caught:
                decode_case_number(quote(value), std)
            assert caught.value.detail == f"X-Case-Number: {expected}"
    narrowed = case_number_check(_narrowed(standard))
    assert narrowed("(2021)宁0104刑终7号") == "unknown case type code '刑终'"


def test_the_header_is_parsed_once(standard: Standard, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.exchange import request as module

    calls: list[str] = []
    original = module.parse_case_number

    def counting(value: str, **kwargs: object) -> object:
        calls.append(value)
        return original(value, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(module, "parse_case_number", counting)
    fresh = _unused_standard()
    assert decode_case_number(quote(COURT_CASE), fresh) == COURT_CASE
    assert calls == [COURT_CASE]
    assert decode_case_number(quote(COURT_CASE), fresh) == COURT_CASE
    assert calls == [COURT_CASE]  # the same header value again: remembered


_CASE_VALUES = st.one_of(
    st.sampled_from(
        [
            quote(COURT_CASE),
            quote("（2021）宁0104刑初123号"),
            quote("(2021)宁9999刑初123号"),
            POLICE_CASE,
            "A640104",
            "%FF%FE",
            "caf\u00e9",
            "",
        ]
    ),
    st.text(max_size=12),
)


@functools.cache
def _shipped_standard() -> Standard:
    return _unused_standard()


@settings(max_examples=300, deadline=None)
@given(values=st.lists(_CASE_VALUES, min_size=1, max_size=30))
def test_remembered_case_numbers_answer_as_a_fresh_decode(values: list[str]) -> None:
    """Oracle: the decode itself, uncached. Refusals are never remembered; a full memory is
    emptied (the bound lowered to 4 here) and answers stay the same."""
    from gateway.exchange import request as module

    standard = _shipped_standard()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "DECODED_CASE_NUMBERS_MAX", 4)
        _decode_all_twice(module, standard, values)


def _decode_all_twice(module: Any, standard: Standard, values: list[str]) -> None:
    for value in values * 2:
        try:
            expected: str | Exception = module._decode_case_number(value, standard)
        except InvalidHeader as exc:
            expected = exc
        if isinstance(expected, InvalidHeader):
            with pytest.raises(InvalidHeader) as caught:
                decode_case_number(value, standard)
            assert caught.value.detail == expected.detail
        else:
            assert decode_case_number(value, standard) == expected
        known = standard.derived(module._DECODED_CASE_NUMBERS, dict)
        assert len(known) <= 4
