"""Format validators: GB 11643 citizen ID, 法院案号, police case number, ISO dates, divisions."""

from __future__ import annotations

from datetime import date

import pytest

from gateway.standard import (
    CaseNumber,
    PoliceCaseNumber,
    Standard,
    canonical_case_number,
    check_case_number,
    check_citizen_id,
    check_court_code,
    citizen_id_birth_date,
    citizen_id_check_char,
    court_code_division,
    is_iso_date,
    is_valid_case_number,
    is_valid_citizen_id,
    is_valid_division,
    is_valid_police_case_number,
    parse_case_number,
    parse_iso_date,
    parse_police_case_number,
)

# ---------------------------------------------------------------- citizen ID (GB 11643)


@pytest.mark.parametrize("value", ["11010519491231002X", "440524188001010014"])
def test_known_valid_citizen_ids(value: str) -> None:
    assert is_valid_citizen_id(value)
    assert check_citizen_id(value) is None


def test_check_char_computation() -> None:
    assert citizen_id_check_char("11010519491231002") == "X"
    assert citizen_id_check_char("44052418800101001") == "4"


@pytest.mark.parametrize("bad", ["1101051949123100", "1101051949123100２", "1101051949123100a", 17])
def test_check_char_rejects_non_digit_input(bad: object) -> None:
    with pytest.raises(ValueError, match="17 ASCII digits"):
        citizen_id_check_char(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    ["110105194912310021", "110105194912310029", "440524188001010015", "44052418800101001X"],
)
def test_wrong_check_char_rejected(value: str) -> None:
    assert check_citizen_id(value) == "citizen ID check character does not match"


def test_lowercase_x_rejected() -> None:
    assert not is_valid_citizen_id("11010519491231002x")


def _with_check(first17: str) -> str:
    return first17 + citizen_id_check_char(first17)


@pytest.mark.parametrize(
    "first17",
    [
        "11010519490230002",  # 30 February
        "11010519491301002",  # month 13
        "11010519490000002",  # month 00
        "11010520230229002",  # 2023 is not a leap year
    ],
)
def test_impossible_birth_date_rejected_even_with_correct_check_char(first17: str) -> None:
    value = _with_check(first17)
    assert check_citizen_id(value) == "birth date inside the citizen ID is not a real date"


def test_leap_day_birth_date_accepted() -> None:
    value = _with_check("64010420000229001")
    assert is_valid_citizen_id(value)
    assert citizen_id_birth_date(value) == date(2000, 2, 29)


def test_future_birth_date_rejected() -> None:
    value = _with_check("64010420300101001")
    assert not is_valid_citizen_id(value, today=date(2025, 1, 1))
    assert is_valid_citizen_id(value, today=date(2031, 1, 1))


@pytest.mark.parametrize(
    "value",
    [
        "",
        "11010519491231002",  # 17 characters
        "11010519491231002X1",  # 19 characters
        "01010519491231002X",  # address code cannot start with 0
        "１1010519491231002X",  # full-width digit
        "11010519491231002Y",
        " 11010519491231002X"[:18],
    ],
)
def test_malformed_citizen_ids_rejected(value: str) -> None:
    assert not is_valid_citizen_id(value)


def test_non_string_citizen_id_rejected() -> None:
    assert check_citizen_id(11010519491231002) == "expected a string"  # type: ignore[arg-type]


# ---------------------------------------------------------------- court case number 案号


def test_parse_case_number_ascii_parentheses() -> None:
    assert parse_case_number("(2021)宁0104刑初123号") == CaseNumber(2021, "宁0104", "刑初", 123)


def test_parse_case_number_full_width_parentheses() -> None:
    parsed = parse_case_number("（2021）宁01刑终7号")
    assert parsed == CaseNumber(2021, "宁01", "刑终", 7)
    assert str(parsed) == "(2021)宁01刑终7号"


@pytest.mark.parametrize(
    ("value", "court", "type_code"),
    [
        ("(2022)宁刑终3号", "宁", "刑终"),
        ("(2019)最高法刑核12345678号", "最高法", "刑核"),
        ("(2023)宁0302刑更456号", "宁0302", "刑更"),
    ],
)
def test_other_court_levels_and_type_codes(value: str, court: str, type_code: str) -> None:
    parsed = parse_case_number(value)
    assert (parsed.court_code, parsed.type_code) == (court, type_code)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("(２０２１)宁0104刑初123号", "non-ASCII digits"),
        ("(2021)宁0104刑初１２３号", "non-ASCII digits"),
        ("（2021）宁０１０４刑初123号", "non-ASCII digits"),
        ("(2021)宁0104民初123号", "unknown case type code"),
        ("(2021)宁0104刑123号", "unknown case type code"),
        ("(2021)宁0104刑初123", "must end with 号"),
        ("(2021)宁0104刑初号", "expected a case number"),
        ("(2021)宁0104刑初0123号", "expected a case number"),
        ("(2021）宁0104刑初123号", "expected a case number"),
        ("[2021]宁0104刑初123号", "expected a case number"),
        ("(21)宁0104刑初123号", "expected a case number"),
        ("(2021)宁010刑初123号", "expected a case number"),
        ("(2021)XX0104刑初123号", "expected a case number"),
        ("(2021)宁0104刑初123号 ", "must end with 号"),
        ("(1900)宁0104刑初123号", "year must be between"),
    ],
)
def test_invalid_case_numbers_rejected(value: str, reason: str) -> None:
    message = check_case_number(value)
    assert message is not None
    assert reason in message
    with pytest.raises(ValueError, match=reason):
        parse_case_number(value)


def test_case_type_codes_can_be_restricted() -> None:
    assert is_valid_case_number("(2021)宁0104刑初123号", type_codes={"刑初"})
    assert not is_valid_case_number("(2021)宁01刑终7号", type_codes={"刑初"})
    assert is_valid_case_number("(2021)宁0104民初1号", type_codes={"民初"})


# ---------------------------------------------------------------- police case number


def test_parse_police_case_number() -> None:
    assert parse_police_case_number("A6401040000002021030042") == PoliceCaseNumber(
        "640104000000", 2021, 3, 42
    )


@pytest.mark.parametrize(
    "value",
    [
        "A640104000000202103004",  # 22 characters
        "A64010400000020210300421",  # 24 characters
        "B6401040000002021030042",
        "a6401040000002021030042",
        "A6401040000002021130042",  # month 13
        "A6401040000002021000042",  # month 00
        "A6401040000002021030000",  # sequence 0000
        "A640104000000202103００42",  # full-width digits
        "A64010400000X2021030042",
    ],
)
def test_invalid_police_case_numbers_rejected(value: str) -> None:
    assert not is_valid_police_case_number(value)


# ---------------------------------------------------------------- dates and divisions


@pytest.mark.parametrize(
    ("value", "expected"), [("2021-03-01", date(2021, 3, 1)), ("2020-02-29", date(2020, 2, 29))]
)
def test_iso_dates(value: str, expected: date) -> None:
    assert parse_iso_date(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "2021-02-29",
        "2021-04-31",
        "2021-13-01",
        "2021-3-1",
        "20210301",
        "2021-03-01T00:00:00",
        "２021-03-01",
        "",
    ],
)
def test_invalid_iso_dates(value: str) -> None:
    assert not is_iso_date(value)
    with pytest.raises(ValueError, match=r"ISO date|calendar date"):
        parse_iso_date(value)


def test_division_check_uses_code_table(standard: Standard) -> None:
    divisions = standard.code_table("division")
    assert is_valid_division("640104", divisions)
    assert is_valid_division("640522", divisions)
    assert not is_valid_division("640199", divisions)  # well-formed but no division
    assert is_valid_division("110105", divisions)  # 北京市朝阳区: the table is national
    assert is_valid_division("620102", divisions)  # 兰州市城关区
    assert not is_valid_division("999999", divisions)
    assert not is_valid_division("６40104", {"６40104"})  # full-width digit never valid
    assert not is_valid_division("64010", {"64010"})


def test_court_codes_read_as_divisions(standard: Standard) -> None:
    divisions = standard.code_table("division")
    assert court_code_division("宁0104") == "640104"
    assert court_code_division("宁01") == "640100"
    assert court_code_division("宁") == "640000"
    assert court_code_division("京0105") == "110105"
    assert court_code_division("最高法") is None
    assert court_code_division("兵01") is None  # 兵团 courts have no GB/T 2260 division
    assert court_code_division("宁010") is None
    assert check_court_code("宁0104", divisions) is None
    assert check_court_code("最高法", divisions) is None
    assert check_court_code("宁9999", divisions) is not None
    assert check_court_code("兵01", divisions) is not None
    assert check_court_code("兵01", divisions, known={"兵01"}) is None


def test_case_numbers_have_one_canonical_form() -> None:
    assert canonical_case_number("（2021）宁0104刑初123号") == "(2021)宁0104刑初123号"
    assert canonical_case_number("(2021)宁0104刑初123号") == "(2021)宁0104刑初123号"
    with pytest.raises(ValueError, match="unknown case type code"):
        canonical_case_number("(2021)宁0104民初123号")
