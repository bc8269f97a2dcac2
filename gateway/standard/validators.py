"""Format validators for the identifiers used by the unified sharing standard.

Contracts common to every function here:

* Input must be a ``str``; anything else is invalid (never coerced).
* Only ASCII digits ``0-9`` count as digits. Full-width (``０-９``) and other Unicode digits are
  rejected, never normalised.
* ``check_*`` functions return ``None`` when the value is valid, else a short English reason that
  never repeats the value (at most a non-identifying fragment such as a 案号 type code), so it
  is safe to log. ``is_valid_*`` functions return a ``bool``.
  ``parse_*`` functions return a structured value or raise ``ValueError`` with the reason.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Collection, Container
from dataclasses import dataclass
from datetime import date

__all__ = [
    "AGENCY_CODE_PATTERN",
    "CRIMINAL_CASE_TYPE_CODES",
    "DIVISION_CODE_PATTERN",
    "PROVINCE_OF_ABBREVIATION",
    "CaseNumber",
    "PoliceCaseNumber",
    "canonical_case_number",
    "check_case_number",
    "check_citizen_id",
    "check_court_code",
    "check_iso_date",
    "check_police_case_number",
    "citizen_id_birth_date",
    "citizen_id_check_char",
    "court_code_division",
    "is_iso_date",
    "is_valid_case_number",
    "is_valid_citizen_id",
    "is_valid_division",
    "is_valid_police_case_number",
    "parse_case_number",
    "parse_iso_date",
    "parse_police_case_number",
]

#: Agency code: 2-letter kind prefix + 6 ASCII digits, e.g. ``GA640104``.
AGENCY_CODE_PATTERN = re.compile(r"[A-Z]{2}[0-9]{6}")
#: GB/T 2260 division code shape: 6 ASCII digits, first digit 1-8.
DIVISION_CODE_PATTERN = re.compile(r"[1-8][0-9]{5}")

# --------------------------------------------------------------------------------------------
# ISO dates
# --------------------------------------------------------------------------------------------

_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")


def parse_iso_date(s: str) -> date:
    """Parse ``YYYY-MM-DD`` (exactly that form, ASCII digits) into a real calendar date.

    Raises ``ValueError`` for any other form (``20210101``, ``2021-1-1``, a time part, ...) and
    for impossible dates such as ``2021-02-29``.
    """
    if not isinstance(s, str):
        raise ValueError("expected a string")
    m = _ISO_DATE.fullmatch(s)
    if m is None:
        raise ValueError("expected an ISO date YYYY-MM-DD")
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise ValueError("not a real calendar date") from None


def check_iso_date(s: str) -> str | None:
    """Reason why ``s`` is not an ISO ``YYYY-MM-DD`` calendar date, or ``None``."""
    try:
        parse_iso_date(s)
    except ValueError as exc:
        return str(exc)
    return None


def is_iso_date(s: str) -> bool:
    """True if ``s`` is an ISO ``YYYY-MM-DD`` real calendar date."""
    return check_iso_date(s) is None


# --------------------------------------------------------------------------------------------
# Citizen ID number (GB 11643-1999)
# --------------------------------------------------------------------------------------------

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK_CHARS = "10X98765432"
_ID_FIRST17 = re.compile(r"[0-9]{17}")
_ID_FULL = re.compile(r"([1-9][0-9]{5})([0-9]{8})([0-9]{3})([0-9X])")


def citizen_id_check_char(first17: str) -> str:
    """GB 11643 check character (``0``-``9`` or ``X``) for the first 17 digits of an ID number.

    Weighted sum of the 17 digits (weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2) mod 11, mapped
    through ``1 0 X 9 8 7 6 5 4 3 2``. Raises ``ValueError`` unless ``first17`` is exactly 17
    ASCII digits.
    """
    if not isinstance(first17, str) or _ID_FIRST17.fullmatch(first17) is None:
        raise ValueError("expected exactly 17 ASCII digits")
    return _check_char(first17)


def _check_char(first17: str) -> str:
    # 17 ASCII digits, already checked. map() keeps the loop in C (checked on every ID
    # number of every record released).
    return _ID_CHECK_CHARS[sum(map(operator.mul, map(int, first17), _ID_WEIGHTS)) % 11]


def check_citizen_id(s: str, *, today: date | None = None) -> str | None:
    """Reason why ``s`` is not a valid 18-character citizen ID number, or ``None``.

    Checks: 6-digit address code (first digit 1-9), an 8-digit birth date that is a real
    calendar date not after ``today`` (default: the current date), a 3-digit sequence, and the
    GB 11643 check character. The check character must be an upper-case ``X``.
    """
    if not isinstance(s, str):
        return "expected a string"
    if len(s) != 18:
        return "citizen ID must have 18 characters"
    m = _ID_FULL.fullmatch(s)
    if m is None:
        return (
            "citizen ID must be a 6-digit address code, 8-digit birth date, "
            "3-digit sequence and a check character 0-9 or X"
        )
    birth = m[2]
    try:
        born = date(int(birth[:4]), int(birth[4:6]), int(birth[6:]))
    except ValueError:
        return "birth date inside the citizen ID is not a real date"
    if born > (today or date.today()):
        return "birth date inside the citizen ID is in the future"
    if _check_char(s[:17]) != s[17]:
        return "citizen ID check character does not match"
    return None


def is_valid_citizen_id(s: str, *, today: date | None = None) -> bool:
    """True if ``s`` is a valid GB 11643 citizen ID number (see ``check_citizen_id``)."""
    return check_citizen_id(s, today=today) is None


def citizen_id_birth_date(s: str) -> date:
    """Birth date embedded in a valid citizen ID number; ``ValueError`` if ``s`` is invalid."""
    reason = check_citizen_id(s)
    if reason is not None:
        raise ValueError(reason)
    return date(int(s[6:10]), int(s[10:12]), int(s[12:14]))


# --------------------------------------------------------------------------------------------
# Court case number 法院案号
# --------------------------------------------------------------------------------------------

#: Criminal case type codes (类型代字) accepted by default; mirrors code table ``court_case_type``.
CRIMINAL_CASE_TYPE_CODES: frozenset[str] = frozenset(
    {"刑初", "刑终", "刑监", "刑申", "刑抗", "刑再", "刑核", "刑更", "刑医", "刑没", "刑他"}
)

# Court codes: 最高法, or a high-court abbreviation optionally followed by 2 (intermediate) or
# 4 (basic-level) digits, e.g. 宁, 宁01, 宁0104.
_PROVINCE_CHARS = "京津冀晋内辽吉黑沪苏浙皖闽赣鲁豫鄂湘粤桂琼渝川黔云藏陕甘青宁新兵"
_CASE_NUMBER = re.compile(
    r"(?:\((?P<y1>[0-9]{4})\)|（(?P<y2>[0-9]{4})）)"
    rf"(?P<court>最高法|[{_PROVINCE_CHARS}](?:[0-9]{{4}}|[0-9]{{2}})?)"
    r"(?P<type>[\u4e00-\u9fff]{1,4}?)"
    r"(?P<seq>[1-9][0-9]{0,8})号"
)
_MIN_YEAR = 1949
_MAX_YEAR = 2099


@dataclass(frozen=True, slots=True)
class CaseNumber:
    """Parts of a court case number such as ``(2021)宁0104刑初123号``."""

    year: int
    court_code: str
    type_code: str
    sequence: int

    def __str__(self) -> str:
        return f"({self.year}){self.court_code}{self.type_code}{self.sequence}号"


def _has_non_ascii_digit(s: str) -> bool:
    return any(ch.isdigit() and not ("0" <= ch <= "9") for ch in s)


def parse_case_number(
    s: str, *, type_codes: Collection[str] = CRIMINAL_CASE_TYPE_CODES
) -> CaseNumber:
    """Parse a court case number ``(YYYY)<court code><type code><sequence>号``.

    The year is in ASCII ``()`` or full-width ``（）`` parentheses (a matching pair). The court
    code is ``最高法`` or a high-court abbreviation (``宁``) optionally followed by 2 or 4 ASCII
    digits (``宁01``, ``宁0104``). The type code must be in ``type_codes`` (default: criminal
    codes, ``CRIMINAL_CASE_TYPE_CODES``). The sequence is a positive integer without leading
    zeros. Full-width digits are rejected. Raises ``ValueError`` with the reason.
    """
    if not isinstance(s, str):
        raise ValueError("expected a string")
    if _has_non_ascii_digit(s):
        raise ValueError("case number contains non-ASCII digits")
    if not s.endswith("号"):
        raise ValueError("case number must end with 号")
    m = _CASE_NUMBER.fullmatch(s)
    if m is None:
        raise ValueError("expected a case number of the form (YYYY)<court><type><sequence>号")
    year = int(m["y1"] or m["y2"])
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        raise ValueError(f"case number year must be between {_MIN_YEAR} and {_MAX_YEAR}")
    type_code = m["type"]
    if type_code not in type_codes:
        raise ValueError(f"unknown case type code {type_code!r}")
    return CaseNumber(year, m["court"], type_code, int(m["seq"]))


def check_case_number(
    s: str, *, type_codes: Collection[str] = CRIMINAL_CASE_TYPE_CODES
) -> str | None:
    """Reason why ``s`` is not a valid court case number, or ``None`` (``parse_case_number``)."""
    try:
        parse_case_number(s, type_codes=type_codes)
    except ValueError as exc:
        return str(exc)
    return None


def is_valid_case_number(s: str, *, type_codes: Collection[str] = CRIMINAL_CASE_TYPE_CODES) -> bool:
    """True if ``s`` is a valid court case number (see ``parse_case_number``)."""
    return check_case_number(s, type_codes=type_codes) is None


#: Province-level abbreviations of court codes (法院代字) and their GB/T 2260 province codes.
#: ``兵`` (新疆生产建设兵团) courts have no GB/T 2260 division of their own.
PROVINCE_OF_ABBREVIATION: dict[str, str] = {
    "京": "11", "津": "12", "冀": "13", "晋": "14", "内": "15", "辽": "21", "吉": "22",
    "黑": "23", "沪": "31", "苏": "32", "浙": "33", "皖": "34", "闽": "35", "赣": "36",
    "鲁": "37", "豫": "41", "鄂": "42", "湘": "43", "粤": "44", "桂": "45", "琼": "46",
    "渝": "50", "川": "51", "黔": "52", "云": "53", "藏": "54", "陕": "61", "甘": "62",
    "青": "63", "宁": "64", "新": "65",
}  # fmt: skip


def canonical_case_number(s: str, *, type_codes: Collection[str] = CRIMINAL_CASE_TYPE_CODES) -> str:
    """The canonical form of a valid 案号: ASCII parentheses (``（2021）`` → ``(2021)``).

    Full-width and ASCII parentheses name the same case; the standard's records and lookups
    use the ASCII form. Raises ``ValueError`` (as :func:`parse_case_number`) if invalid.
    """
    return str(parse_case_number(s, type_codes=type_codes))


def court_code_division(court_code: str) -> str | None:
    """The GB/T 2260 division a court code is read from, or ``None`` if it has none.

    ``宁`` → ``640000`` (high court), ``宁01`` → ``640100`` (intermediate court), ``宁0104`` →
    ``640104`` (basic-level court). ``最高法``, ``兵…`` and unknown abbreviations: ``None``.
    Reading the digits as division digits follows the case-number rules' practice; special
    courts (铁路运输、海事 …) do not follow it and must be declared as agencies.
    """
    province = PROVINCE_OF_ABBREVIATION.get(court_code[:1])
    digits = court_code[1:]
    if province is None or len(digits) not in (0, 2, 4) or not digits.isascii():
        return None
    if digits and not digits.isdigit():
        return None
    return (province + digits).ljust(6, "0")


def check_court_code(
    court_code: str, divisions: Container[str], known: Container[str] = ()
) -> str | None:
    """Reason why a 案号's court code names no court, or ``None``.

    A court code exists when it is ``最高法``, a court code of ``known`` (the standard's courts),
    or read from a GB/T 2260 division that exists in ``divisions``.
    """
    if court_code == "最高法" or court_code in known:
        return None
    division = court_code_division(court_code)
    if division is None or division not in divisions:
        return "the court code names no known court (GB/T 2260 division or declared court)"
    return None


# --------------------------------------------------------------------------------------------
# Police case number (sample format)
# --------------------------------------------------------------------------------------------

_POLICE_CASE_NUMBER = re.compile(r"A([0-9]{12})([0-9]{4})([0-9]{2})([0-9]{4})")


@dataclass(frozen=True, slots=True)
class PoliceCaseNumber:
    """Parts of a police case number: ``A`` + 12-digit unit code + ``yyyymm`` + 4-digit sequence."""

    unit_code: str
    year: int
    month: int
    sequence: int


def parse_police_case_number(s: str) -> PoliceCaseNumber:
    """Parse a police case number in the sample format used by this project.

    Format (23 characters): ``A`` + 12-digit public-security unit code + filing year and month
    ``yyyymm`` + 4-digit sequence (``0001``-``9999``), e.g. ``A6401040000002021030042``.
    This is the sample police system's format, not a national standard. Raises ``ValueError``.
    """
    if not isinstance(s, str):
        raise ValueError("expected a string")
    if len(s) != 23:
        raise ValueError("police case number must have 23 characters")
    m = _POLICE_CASE_NUMBER.fullmatch(s)
    if m is None:
        raise ValueError("police case number must be A + 12-digit unit code + yyyymm + 4 digits")
    year, month, seq = int(m[2]), int(m[3]), int(m[4])
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        raise ValueError(f"police case number year must be between {_MIN_YEAR} and {_MAX_YEAR}")
    if not 1 <= month <= 12:
        raise ValueError("police case number month must be 01-12")
    if seq == 0:
        raise ValueError("police case number sequence must not be 0000")
    return PoliceCaseNumber(m[1], year, month, seq)


def check_police_case_number(s: str) -> str | None:
    """Reason why ``s`` is not a valid police case number, or ``None``."""
    try:
        parse_police_case_number(s)
    except ValueError as exc:
        return str(exc)
    return None


def is_valid_police_case_number(s: str) -> bool:
    """True if ``s`` is a valid police case number (see ``parse_police_case_number``)."""
    return check_police_case_number(s) is None


# --------------------------------------------------------------------------------------------
# Divisions
# --------------------------------------------------------------------------------------------


def is_valid_division(code: str, known: Container[str]) -> bool:
    """True if ``code`` is a 6-ASCII-digit GB/T 2260 code present in ``known``.

    ``known`` is normally the ``division`` code table's codes (``standard.code_table("division")``
    supports ``in``).
    """
    return (
        isinstance(code, str)
        and DIVISION_CODE_PATTERN.fullmatch(code) is not None
        and code in known
    )
