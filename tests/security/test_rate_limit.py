"""Attack matrix, rate limiting (R1-R4): per client, not per token, with Retry-After."""

from __future__ import annotations

import re
import time

import httpx2

from tests.conftest import Gateway
from tests.exchange.conftest import exchange_headers
from tests.security.conftest import COURT_CASE, fresh_name, register
from tests.security.helpers import audit_entry

CASE_FILE = "/v1/resources/case/C00000020"


def _limited(sec: Gateway, rate: float, burst: int, scopes: list[str] | None = None) -> str:
    name = fresh_name("limited")
    register(
        sec,
        name,
        "FY640104",
        scopes or ["exchange"],
        rate_limit_per_second=rate,
        rate_limit_burst=burst,
    )
    return name


def _assert_429(response: httpx2.Response) -> int:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    retry_after = response.headers["Retry-After"]
    assert re.fullmatch(r"[0-9]+", retry_after), retry_after
    assert int(retry_after) >= 1
    assert "case_name" not in response.text
    return int(retry_after)


# R1
def test_r01_exchange_requests_over_the_limit_get_429_and_are_audited(sec: Gateway) -> None:
    name = _limited(sec, rate=0.2, burst=2)
    headers = exchange_headers(sec, name, "TRIAL", COURT_CASE)
    for _ in range(2):
        assert sec.client.get(CASE_FILE, headers=headers).status_code == 200
    refused = sec.client.get(CASE_FILE, headers=headers)
    assert _assert_429(refused) == 5  # one request per 5 s
    entry = audit_entry(sec, refused)  # recorded (who it was: see P7)
    assert (entry["status"], entry["upstream"]["status"]) == (429, None)


# R2
def test_r02_a_fresh_token_does_not_reset_the_budget(sec: Gateway) -> None:
    name = _limited(sec, rate=0.2, burst=2)
    first, second = sec.token(name), sec.token(name, scope="exchange")
    assert first != second
    for token in (first, second):
        assert (
            sec.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code
            == 200
        )
    for token in (first, second):
        _assert_429(sec.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}))


# R3
def test_r03_limits_are_per_client_and_cover_every_protected_route(sec: Gateway) -> None:
    regulator = _limited(sec, rate=0.2, burst=1, scopes=["audit:read"])
    assert (
        sec.client.get("/v1/audit/entries?limit=1", headers=sec.auth(regulator)).status_code == 200
    )
    _assert_429(sec.client.get("/v1/audit/entries?limit=1", headers=sec.auth(regulator)))
    _assert_429(sec.client.get("/v1/audit/checkpoint", headers=sec.auth(regulator)))
    # another client with the same agency and scope is not affected
    for _ in range(3):
        assert (
            sec.client.get("/v1/audit/entries?limit=1", headers=sec.auth("regulator")).status_code
            == 200
        )


# R4
def test_r04_retry_after_is_honest(sec: Gateway) -> None:
    name = _limited(sec, rate=2, burst=1)
    headers = sec.auth(name)
    assert sec.client.get("/v1/me", headers=headers).status_code == 200
    wait = _assert_429(sec.client.get("/v1/me", headers=headers))
    time.sleep(wait + 0.05)
    assert sec.client.get("/v1/me", headers=headers).status_code == 200
