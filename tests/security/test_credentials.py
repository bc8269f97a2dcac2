"""Attack matrix, rows K1-K5: the token endpoint under a flood, on SQLite and PostgreSQL
(docs/security.md). Each test failed before issue 12's fix: 400 wrong secrets in 8 s got
no 429 and no audit entry, and each one cost an scrypt hash in the shared thread pool.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.auth import passwords
from gateway.auth.passwords import SecretChecker, TokenEndpointBusy, hash_secret
from tests.auth.helpers import bearer, claims_for, sign, signing_key
from tests.conftest import Gateway
from tests.security.helpers import aggregated_entries, audit_entry, one_interval

TOKEN = "/oauth/token"
FORM = {"grant_type": "client_credentials"}


def _wrong(client: TestClient, client_id: str) -> Any:
    return client.post(TOKEN, data=FORM, auth=(client_id, "wrong-secret-0123456789"))


def _token_entries(gw: Gateway) -> list[dict[str, Any]]:
    return [e for e in aggregated_entries(gw, "token_failures") if e["kind"] == "token"]


# K1
def test_k01_wrong_secrets_for_one_client_are_throttled_and_audited_in_aggregate(
    make_gateway: Callable[..., Gateway], database_url: str
) -> None:
    gw = make_gateway(database_url, token_rate_limit_per_second=0.5, token_rate_limit_burst=3)
    one_interval(gw)
    court = gw.clients["court"]
    statuses = [_wrong(gw.client, court.client_id).status_code for _ in range(40)]
    assert statuses[:3] == [401] * 3
    assert set(statuses[3:]) == {429}
    throttled = _wrong(gw.client, court.client_id)
    assert throttled.headers["content-type"] == "application/problem+json"
    assert int(throttled.headers["Retry-After"]) >= 1
    assert throttled.headers["Cache-Control"] == "no-store"
    # the right secret is throttled too FROM THIS ADDRESS while its budget is spent
    assert (
        gw.client.post(TOKEN, data=FORM, auth=(court.client_id, court.client_secret)).status_code
        == 429
    )
    # another client is not affected
    police = gw.clients["police"]
    assert (
        gw.client.post(TOKEN, data=FORM, auth=(police.client_id, police.client_secret)).status_code
        == 200
    )
    [entry] = [e for e in _token_entries(gw) if e["requester"]["client_id"] == court.client_id]
    assert entry["requester"]["agency"] == "FY640104"
    assert (entry["decision"], entry["status"]) == ("deny", 429)
    aggregate = entry["aggregate"]
    assert aggregate["count"] == 42  # 41 wrong secrets, 1 right one throttled: one entry
    assert aggregate["outcomes"] == {"invalid_client": 3, "rate_limited": 39}
    assert (aggregate["source"], aggregate["route"]) == ("testclient", "POST /oauth/token")


# K1b
def test_k01b_wrong_secrets_from_one_address_do_not_lock_the_client_out_elsewhere(
    make_gateway: Callable[..., Gateway], database_url: str
) -> None:
    # Before: the budget was the client id's, over every address: one guesser at 5/s kept the
    # court's system from getting a token (429) for as long as it kept guessing.
    gw = make_gateway(database_url, token_rate_limit_per_second=0.5, token_rate_limit_burst=3)
    court = gw.clients["court"]
    guesser = TestClient(gw.client.app, client=("203.0.113.9", 41000))
    statuses = [_wrong(guesser, court.client_id).status_code for _ in range(20)]
    assert statuses[:3] == [401] * 3
    assert set(statuses[3:]) == {429}  # the guesser is still throttled
    agency_system = TestClient(gw.client.app, client=("198.51.100.20", 42000))
    answer = agency_system.post(TOKEN, data=FORM, auth=(court.client_id, court.client_secret))
    assert answer.status_code == 200, answer.text
    assert answer.json()["access_token"]


# K2
def test_k02_one_source_spraying_client_ids_is_throttled_other_sources_are_not(
    make_gateway: Callable[..., Gateway], database_url: str
) -> None:
    gw = make_gateway(
        database_url, token_source_rate_limit_per_second=0.5, token_source_rate_limit_burst=5
    )
    one_interval(gw)
    statuses = [_wrong(gw.client, f"gw-guess-{n:04d}").status_code for n in range(30)]
    assert statuses[:5] == [401] * 5
    assert set(statuses[5:]) == {429}
    elsewhere = TestClient(gw.client.app, client=("198.51.100.7", 40000))
    court = gw.clients["court"]
    granted = elsewhere.post(TOKEN, data=FORM, auth=(court.client_id, court.client_secret))
    assert granted.status_code == 200, granted.text
    [entry] = [e for e in _token_entries(gw) if e["aggregate"]["source"] == "testclient"]
    assert entry["requester"]["client_id"] is None  # the ids were never registered
    aggregate = entry["aggregate"]
    assert aggregate["count"] == 30
    assert aggregate["distinct_claimed_client_ids"] == 30
    assert len(aggregate["claimed_client_ids"]) == 5  # a few examples, not every guess


# K3
def test_k03_the_log_grows_by_keys_not_by_requests(
    make_gateway: Callable[..., Gateway], database_url: str
) -> None:
    gw = make_gateway(database_url, aggregate_max_keys=3)
    one_interval(gw)
    before = _size(gw)
    for source in range(10):
        other = TestClient(gw.client.app, client=(f"203.0.113.{source}", 40000))
        for _ in range(5):
            assert _wrong(other, gw.clients["court"].client_id).status_code == 401
    entries = _token_entries(gw)
    assert len(entries) == 4  # three keys, then everything else under one
    assert sum(e["aggregate"]["count"] for e in entries) == 50
    assert {e["aggregate"]["source"] for e in entries} >= {"(other sources)"}
    assert _size(gw) - before == 4


def _size(gw: Gateway) -> int:
    engine = gw.client.app.state.runtime.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT size FROM audit_tree_head").scalar_one())


# K4
def test_k04_scrypt_runs_in_a_bounded_pool_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    running, most = [0], [0]
    lock = threading.Lock()
    release = threading.Event()

    def slow_check(secret: str, stored: str | None) -> bool:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        release.wait(5)
        with lock:
            running[0] -= 1
        return False

    monkeypatch.setattr(passwords, "_check", slow_check)
    checker = SecretChecker(workers=2, queue=3)
    stored = hash_secret("x")

    async def flood() -> list[str]:
        import asyncio

        async def one() -> str:
            try:
                await checker.verify("guess", stored)
            except TokenEndpointBusy:
                return "busy"
            return "checked"

        tasks = [asyncio.create_task(one()) for _ in range(12)]
        await asyncio.sleep(0.2)
        release.set()
        return list(await asyncio.gather(*tasks))

    import asyncio

    outcomes = asyncio.run(flood())
    checker.close()
    assert outcomes.count("checked") == 5  # two at once, three waiting
    assert outcomes.count("busy") == 7  # refused at once, not queued without bound
    assert most[0] == 2


def test_k04b_a_saturated_pool_answers_429_at_once(
    make_gateway: Callable[..., Gateway], monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = make_gateway(scrypt_workers=1, scrypt_queue=0)
    one_interval(gw)
    release = threading.Event()
    monkeypatch.setattr(passwords, "_check", lambda secret, stored: release.wait(10) and False)
    court = gw.clients["court"]
    with ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(_wrong, gw.client, court.client_id)
        time.sleep(0.3)
        started = time.perf_counter()
        busy = _wrong(gw.client, court.client_id)
        elapsed = time.perf_counter() - started
        release.set()
        assert stuck.result(timeout=10).status_code == 401
    assert busy.status_code == 429
    assert busy.headers["Retry-After"] == "1"
    assert elapsed < 1.0
    [entry] = _token_entries(gw)
    assert entry["aggregate"]["outcomes"] == {"busy": 1, "invalid_client": 1}


# K5
@pytest.mark.parametrize(
    "lifetime",
    [
        {"iat": 0, "exp": 2 * 86_400},  # signed by us, valid for two days
        {"iat": None, "nbf": None, "exp": 7_200},  # no iat: two hours from now
    ],
    ids=["two-days", "no-iat-two-hours"],
)
def test_k05_a_signed_token_that_lives_too_long_is_refused_and_names_its_client(
    make_gateway: Callable[..., Gateway], database_url: str, lifetime: dict[str, Any]
) -> None:
    gw = make_gateway(database_url, token_max_lifetime_seconds=3600)
    now = int(time.time())
    claims = claims_for(
        gw.settings,
        gw.clients["court"].client_id,
        **{k: (None if v is None else now + v) for k, v in lifetime.items()},
    )
    token = sign(claims, signing_key(gw.settings))
    refused = gw.client.get("/v1/me", headers=bearer(token))
    assert refused.status_code == 401
    assert "lifetime exceeds the maximum of 3600 s" in refused.json()["detail"]
    entry = audit_entry(gw, refused)  # a signed token names its client
    assert entry["requester"]["client_id"] == gw.clients["court"].client_id
    # the control: within the maximum, the same token is fine
    fine = claims_for(gw.settings, gw.clients["court"].client_id, exp=now + 3000)
    assert (
        gw.client.get("/v1/me", headers=bearer(sign(fine, signing_key(gw.settings)))).status_code
        == 200
    )
