"""Attack matrix, Unicode (U1-U6): lookalikes and full-width digits never match anything.

The standard's ids, case numbers and ID numbers are ASCII digits and letters (a 案号 adds
CJK characters and full-width parentheses). A lookalike - full-width digits, Cyrillic or
full-width letters, other scripts' digits - is refused (400/422) before any call for data,
never normalised into a match for a record the caller did not name.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx2
import pytest

from tests.conftest import Gateway
from tests.exchange.conftest import exchange_headers
from tests.security.conftest import COURT_CASE
from tests.security.helpers import audit_entry

CASE_FILE = "/v1/resources/case/C00000020"


def _court(sec: Gateway, case_number: str | None = COURT_CASE) -> dict[str, str]:
    return exchange_headers(sec, "court", "TRIAL", case_number)


def _refused(sec: Gateway, response: httpx2.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert "case_name" not in response.text
    entry = audit_entry(sec, response)
    assert entry["decision"] == "invalid"
    assert entry["upstream"]["status"] is None


def test_control_the_ascii_forms_match(sec: Gateway) -> None:
    assert sec.client.get(CASE_FILE, headers=_court(sec)).status_code == 200


# U1
@pytest.mark.parametrize(
    "case_number",
    [
        "（２０２４）宁０１０４刑初４６５号",  # full-width everything
        "(２０２４)宁0104刑初465号",  # full-width year
        "(2024)宁0104刑初46５号",  # one full-width digit
        "(2024)宁0104刑初٤٦٥号",  # Arabic-Indic digits
        "(2024)宁0104刑初४६५号",  # Devanagari digits
        "(2024)宁𝟎𝟏𝟎𝟒刑初465号",  # mathematical digits
        "(2024)宁0104刑初465号\u200b",  # zero-width space
        "(2024)\u202e宁0104刑初465号",  # right-to-left override
        "(2024)寧0104刑初465号",  # traditional 寧 for 宁
        "(2024)宁0104刑初465號",  # traditional 號 for 号
        "(2024)宁0104刑初0465号",  # leading zero
    ],
)
def test_u01_lookalike_case_numbers(sec: Gateway, case_number: str) -> None:
    response = sec.client.get(CASE_FILE, headers=_court(sec, case_number))
    assert response.status_code in (400, 403), response.text
    assert "case_name" not in response.text
    if response.status_code == 400:
        assert response.json()["header"] == "X-Case-Number"
    else:  # a well-formed number of no known case: the case binding finds nothing
        assert "not found" in response.json()["detail"]


# U2
@pytest.mark.parametrize(
    "case_number",
    [
        "А6401040000002024078396",  # Cyrillic А
        "Ａ6401040000002024078396",  # full-width Ａ
        "A６401040000002024078396",  # one full-width digit
        "a6401040000002024078396",  # lower case
    ],
)
def test_u02_lookalike_police_case_numbers(sec: Gateway, case_number: str) -> None:
    headers = exchange_headers(sec, "procuratorate", "ARREST_REVIEW", case_number)
    response = sec.client.get(CASE_FILE, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["header"] == "X-Case-Number"


def test_u03_raw_utf8_and_latin1_case_numbers_are_refused(sec: Gateway) -> None:
    """Only percent-encoded UTF-8: raw bytes would be read as Latin-1 mojibake."""
    for raw in (COURT_CASE.encode("utf-8"), "(2024)Ã¥Â®Â0104".encode("latin-1")):
        headers: dict[str, str | bytes] = {**_court(sec, None), "X-Case-Number": raw}
        response = sec.client.get(CASE_FILE, headers=headers)
        _refused(sec, response, 400)


# U4
@pytest.mark.parametrize(
    "record_id",
    [
        "С00000020",  # Cyrillic С
        "Ｃ００００００２０",  # full-width
        "C0000002０",  # one full-width digit
        "C0000002٠",  # Arabic-Indic zero
        "C𝟎𝟎𝟎𝟎𝟎𝟎𝟐𝟎",  # mathematical digits
        "C00000020\u200b",  # zero-width space
        "C00000020\u0301",  # combining accent
        "Ϲ00000020",  # Greek lunate sigma
        "ⅽ00000020",  # small roman numeral one hundred
    ],
)
def test_u04_lookalike_record_ids(sec: Gateway, record_id: str) -> None:
    response = sec.client.get(f"/v1/resources/case/{quote(record_id)}", headers=_court(sec))
    _refused(sec, response, 422)
    assert response.json()["errors"][0]["field"] == "record_id"


# U5
@pytest.mark.parametrize(
    ("resource", "field", "value"),
    [
        ("person", "id_number", "６４０５２２１９８５１０３０００７２"),  # full-width digits
        ("person", "id_number", "64052219851030007２"),  # one full-width digit
        ("person", "id_number", "64052219851030007x"),  # lower-case check character
        ("person", "id_number", "64052219851030007Ｘ"),  # full-width X
        ("person", "id_number", "٦٤٠٥٢٢١٩٨٥١٠٣٠٠٠٧٢"),  # Arabic-Indic digits
        ("person", "case_id", "С00000020"),  # Cyrillic С
        ("person", "case_id", "C0000002０"),
        ("judgment", "court_case_number", "（２０２４）宁０１０４刑初４６５号"),
        ("judgment", "court_case_number", "(2024)宁0104刑初46５号"),
        ("judgment", "defendant_id", "Р0000002001"),  # Cyrillic Р
    ],
)
def test_u05_lookalikes_as_search_filters(
    sec: Gateway, resource: str, field: str, value: str
) -> None:
    response = sec.client.get(
        f"/v1/resources/{resource}", params={field: value}, headers=_court(sec)
    )
    _refused(sec, response, 422)
    assert field in {e["field"] for e in response.json()["errors"]}


# U6
@pytest.mark.parametrize("limit", ["²", "１０", "١٠", "𝟓"])
def test_u06_non_ascii_digits_in_limit(sec: Gateway, limit: str) -> None:
    response = sec.client.get(
        "/v1/resources/person", params={"case_id": "C00000020", "limit": limit}, headers=_court(sec)
    )
    _refused(sec, response, 422)


# U7
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Purpose", "ＴＲＩＡＬ"),
        ("X-Purpose", "TRІAL"),  # Cyrillic І
        ("X-Operator-Id", "оfficer-7"),  # Cyrillic о
        ("X-Operator-Id", "officer-７"),
    ],
)
def test_u07_lookalikes_in_purpose_and_operator(sec: Gateway, name: str, value: str) -> None:
    headers: dict[str, str | bytes] = {**_court(sec), name: value.encode("utf-8")}
    response = sec.client.get(CASE_FILE, headers=headers)
    _refused(sec, response, 400)
    assert response.json()["header"] == name
