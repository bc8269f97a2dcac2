"""Per-client rate limits (GCRA): 429 with Retry-After, in memory and shared through Redis."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator

import pytest
import redis
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.auth.ratelimit import MemoryRateLimiter, RedisRateLimiter, gcra, retry_after_header
from tests.auth.fixtures import fresh_name
from tests.auth.helpers import assert_problem, bearer
from tests.conftest import IN_CI, Gateway

REDIS_URL = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        message = f"Redis at {REDIS_URL} is unreachable: {exc}"
        if IN_CI:
            pytest.fail(message + " (CI=true: Redis tests must run)")
        pytest.skip(message)
    return REDIS_URL


def _assert_rate_limited(response: object) -> int:
    body = assert_problem(response, 429, "rate-limited")  # type: ignore[arg-type]
    retry_after = response.headers["retry-after"]  # type: ignore[attr-defined]
    assert retry_after.isdigit(), retry_after
    assert int(retry_after) >= 1
    assert retry_after in body["detail"]
    return int(retry_after)


# --- the arithmetic --------------------------------------------------------------------------


def test_gcra_allows_the_burst_then_the_rate() -> None:
    rate, burst, now, tat = 2.0, 3, 100.0, 0.0
    for _ in range(burst):
        retry, tat = gcra(tat, now, rate, burst)
        assert retry is None
    retry, tat_after_refusal = gcra(tat, now, rate, burst)
    assert retry == pytest.approx(0.5)
    assert tat_after_refusal == tat  # a refused request costs nothing
    assert gcra(tat, now + 0.49, rate, burst)[0] is not None
    assert gcra(tat, now + 0.5, rate, burst)[0] is None
    # After a long pause the full burst is back, not more.
    tat_later = tat
    for _ in range(burst):
        retry, tat_later = gcra(tat_later, now + 60, rate, burst)
        assert retry is None
    assert gcra(tat_later, now + 60, rate, burst)[0] is not None


def test_retry_after_header_is_a_whole_number_of_seconds() -> None:
    assert retry_after_header(0.001) == 1
    assert retry_after_header(1.0) == 1
    assert retry_after_header(1.2) == 2
    assert retry_after_header(59.9) == 60


async def test_memory_limiter_counts_each_key_apart() -> None:
    limiter = MemoryRateLimiter()
    assert await limiter.hit("a", 1.0, 1) is None
    assert await limiter.hit("a", 1.0, 1) is not None
    assert await limiter.hit("b", 1.0, 1) is None
    await limiter.close()


# --- through the app -------------------------------------------------------------------------


def test_per_client_limit_gives_429_with_retry_after(shared_gateway: Gateway) -> None:
    gateway = shared_gateway
    name = fresh_name("slow")
    gateway.register(name, "GA640104", ["exchange"], rate_limit_per_second=1, rate_limit_burst=2)
    headers = gateway.auth(name)
    assert gateway.client.get("/v1/me", headers=headers).status_code == 200
    assert gateway.client.get("/v1/me", headers=headers).status_code == 200
    retry_after = _assert_rate_limited(gateway.client.get("/v1/me", headers=headers))
    assert retry_after == 1
    # Other clients have their own budget (the default, 200/s).
    for _ in range(5):
        assert gateway.client.get("/v1/me", headers=gateway.auth("court")).status_code == 200


def test_settings_default_limit_applies_to_clients_without_their_own(
    make_gateway: Callable[..., Gateway],
) -> None:
    gateway = make_gateway(rate_limit_per_second=0.1, rate_limit_burst=1)
    headers = gateway.auth("court")
    assert gateway.client.get("/v1/me", headers=headers).status_code == 200
    assert _assert_rate_limited(gateway.client.get("/v1/me", headers=headers)) == 10


def test_refused_tokens_do_not_spend_a_clients_budget(shared_gateway: Gateway) -> None:
    gateway = shared_gateway
    name = fresh_name("slow")
    gateway.register(name, "GA640104", ["exchange"], rate_limit_per_second=1, rate_limit_burst=1)
    token = gateway.token(name)
    for _ in range(3):
        assert gateway.client.get("/v1/me").status_code == 401
        forged = bearer(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))
        assert gateway.client.get("/v1/me", headers=forged).status_code == 401
    assert gateway.client.get("/v1/me", headers=bearer(token)).status_code == 200


# --- Redis: one limit across several workers -------------------------------------------------


async def test_two_redis_limiters_share_one_limit(redis_url: str) -> None:
    prefix = f"gateway-test:{secrets.token_hex(6)}:"
    worker_a = RedisRateLimiter(redis_url, prefix=prefix)
    worker_b = RedisRateLimiter(redis_url, prefix=prefix)
    try:
        results = [
            await (worker_a if i % 2 == 0 else worker_b).hit("client-1", 1.0, 3) for i in range(6)
        ]
        assert results[:3] == [None, None, None]
        for retry in results[3:]:
            assert retry is not None
            assert 0 < retry <= 1.0
        # Another client's budget is separate, on either worker.
        assert await worker_b.hit("client-2", 1.0, 1) is None
        assert await worker_a.hit("client-2", 1.0, 1) is not None
        # The key expires by itself (no unbounded growth in Redis).
        ttl_ms = await worker_a._redis.pttl(prefix + "client-1")
        assert 0 < ttl_ms <= 5_000
    finally:
        await worker_a._redis.delete(prefix + "client-1", prefix + "client-2")
        await worker_a.close()
        await worker_b.close()


async def test_separate_prefixes_do_not_interfere(redis_url: str) -> None:
    a = RedisRateLimiter(redis_url, prefix=f"gateway-test:{secrets.token_hex(6)}:")
    b = RedisRateLimiter(redis_url, prefix=f"gateway-test:{secrets.token_hex(6)}:")
    try:
        assert await a.hit("same", 1.0, 1) is None
        assert await b.hit("same", 1.0, 1) is None
    finally:
        await a.close()
        await b.close()


@pytest.fixture
def two_workers(
    make_gateway: Callable[..., Gateway], redis_url: str
) -> Iterator[tuple[Gateway, TestClient]]:
    gateway = make_gateway(redis_url=redis_url)
    with TestClient(create_app(gateway.settings)) as second:
        yield gateway, second


def test_limit_holds_across_two_app_workers(two_workers: tuple[Gateway, TestClient]) -> None:
    gateway, second = two_workers
    name = fresh_name("shared")
    gateway.register(name, "GA640104", ["exchange"], rate_limit_per_second=1, rate_limit_burst=2)
    headers = gateway.auth(name)
    assert gateway.client.get("/v1/me", headers=headers).status_code == 200
    assert second.get("/v1/me", headers=headers).status_code == 200
    _assert_rate_limited(gateway.client.get("/v1/me", headers=headers))
    _assert_rate_limited(second.get("/v1/me", headers=headers))


async def test_memory_limiter_forgets_keys_whose_time_has_passed() -> None:
    """Keys chosen by callers (addresses, claimed client ids) do not grow memory forever."""
    limiter = MemoryRateLimiter()
    limiter.PRUNE_AT = 100
    for n in range(100):
        assert await limiter.hit(f"spent-{n}", 1_000_000.0, 1) is None  # passes at once
    assert await limiter.hit("held", 0.001, 1) is None  # its next slot is 1000 s away
    assert await limiter.hit("another", 1.0, 5) is None
    assert set(limiter._tat) <= {"held", "another"} | {f"spent-{n}" for n in range(100)}
    assert len(limiter._tat) < 100
    assert await limiter.hit("held", 0.001, 1) is not None  # a held budget is not forgotten
