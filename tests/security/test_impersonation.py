"""Attack matrix, impersonation (I1-I4): naming another agency anywhere but in the token.

The prison (JY640001) asks for the court's trial case file. The court (FY640104) may read
it, the prison may not. Whatever the prison claims in headers, query or body, the gateway
decides and audits as the prison: the token's agency, nothing else.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Gateway
from tests.exchange.conftest import exchange_headers
from tests.security.conftest import COURT_CASE
from tests.security.helpers import audit_entry, jwt_parts

CASE_FILE = "/v1/resources/case/C00000020"

IMPERSONATION_HEADERS = {
    "X-Agency": "FY640104",
    "X-Agency-Code": "FY640104",
    "X-Requester-Agency": "FY640104",
    "X-Client-Id": "court",
    "X-Forwarded-User": "court",
    "X-Remote-User": "court",
    "X-Forwarded-For": "10.64.1.4",
    "Forwarded": "for=10.64.1.4;by=court",
    "X-Original-Agency": "FY640104",
}


def _assert_recorded_as_prison(sec: Gateway, response: Any) -> None:
    entry = audit_entry(sec, response)
    assert entry["requester"]["agency"] == "JY640001"
    assert entry["requester"]["client_id"] == sec.clients["prison"].client_id
    assert "FY640104" not in str(entry["requester"])


def test_control_the_court_may_read_the_case_file(sec: Gateway) -> None:
    response = sec.client.get(
        CASE_FILE, headers=exchange_headers(sec, "court", "TRIAL", COURT_CASE)
    )
    assert response.status_code == 200, response.text


# I1
@pytest.mark.parametrize("name", sorted(IMPERSONATION_HEADERS))
def test_i01_agency_named_in_headers_is_ignored(sec: Gateway, name: str) -> None:
    plain = sec.client.get(CASE_FILE, headers=exchange_headers(sec, "prison", "TRIAL", COURT_CASE))
    assert plain.status_code in (403, 404), plain.text
    headers = {
        **exchange_headers(sec, "prison", "TRIAL", COURT_CASE),
        name: IMPERSONATION_HEADERS[name],
    }
    response = sec.client.get(CASE_FILE, headers=headers)
    assert response.status_code == plain.status_code
    assert "case_name" not in response.text
    _assert_recorded_as_prison(sec, response)
    me = sec.client.get("/v1/me", headers=headers).json()
    assert (me["agency"], me["client_id"]) == ("JY640001", sec.clients["prison"].client_id)


# I2
@pytest.mark.parametrize("param", ["requester_agency", "agency", "client_id", "as", "on_behalf_of"])
def test_i02_agency_named_in_the_query_is_refused(sec: Gateway, param: str) -> None:
    headers = exchange_headers(sec, "prison", "TRIAL", COURT_CASE)
    fetch = sec.client.get(CASE_FILE, params={param: "FY640104"}, headers=headers)
    assert fetch.status_code == 422
    assert param in {e["field"] for e in fetch.json()["errors"]}
    _assert_recorded_as_prison(sec, fetch)
    search = sec.client.get(
        "/v1/resources/person",
        params={"case_id": "C00000020", param: "FY640104"},
        headers=headers,
    )
    assert search.status_code == 422
    _assert_recorded_as_prison(sec, search)


# I3
@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"requester_agency": "FY640104", "agency": "FY640104", "client_id": "court"}', "json"),
        (b"requester_agency=FY640104&agency=FY640104", "x-www-form-urlencoded"),
    ],
    ids=["json", "form"],
)
def test_i03_agency_named_in_a_body_is_ignored(
    sec: Gateway, content: bytes, content_type: str
) -> None:
    headers = {
        **exchange_headers(sec, "prison", "TRIAL", COURT_CASE),
        "Content-Type": f"application/{content_type}",
    }
    response = sec.client.request("GET", CASE_FILE, content=content, headers=headers)
    assert response.status_code in (403, 404), response.text
    assert "case_name" not in response.text
    _assert_recorded_as_prison(sec, response)


# I4
def test_i04_token_endpoint_ignores_agency_fields(sec: Gateway) -> None:
    prison = sec.clients["prison"]
    response = sec.client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "agency": "FY640104",
            "sub": sec.clients["court"].client_id,
            "requester_agency": "FY640104",
        },
        auth=(prison.client_id, prison.client_secret),
    )
    assert response.status_code == 200, response.text
    _, claims, _ = jwt_parts(response.json()["access_token"])
    assert (claims["agency"], claims["sub"]) == ("JY640001", prison.client_id)
    # naming the court's client id next to the prison's credentials is refused
    mixed = sec.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": sec.clients["court"].client_id},
        auth=(prison.client_id, prison.client_secret),
    )
    assert mixed.status_code == 400
    assert "access_token" not in mixed.json()
