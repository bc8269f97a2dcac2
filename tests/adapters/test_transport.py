"""The upstream HTTP client: deadline, size cap, retries, circuit breaker, upstream auth.

Everything here runs on ``httpx2.MockTransport`` except the connection-refused case, which
uses the production transport against a closed loopback port.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import pytest
from pydantic import TypeAdapter

from adapters.base import UpstreamProtocolError, UpstreamTimeout, UpstreamUnavailable
from adapters.config import AgencyConfigError, AuthConfig, ConnectionConfig, NoAuth
from adapters.transports.circuit import CircuitBreaker, CircuitState
from adapters.transports.http import UpstreamHttp

AGENCY = "test_agency"
OK = b'{"code":0}'


def connection(**changes: Any) -> ConnectionConfig:
    values: dict[str, Any] = {
        "base_url": "http://agency.test",
        "timeout_seconds": 2.0,
        "retry_backoff_seconds": 0.0,
        "max_body_bytes": 4096,
    }
    values.update(changes)
    return ConnectionConfig.model_validate(values)


Upstream = Callable[..., tuple[UpstreamHttp, Any]]


@pytest.fixture
async def upstream(mock_upstream: Callable[[Any], Any]) -> AsyncIterator[Upstream]:
    """Factory: ``upstream(handler, auth=…, secrets=…, **connection)`` → (client, transport)."""
    made: list[UpstreamHttp] = []

    def factory(
        handler: Any,
        auth: dict[str, Any] | None = None,
        secrets: dict[str, str] | None = None,
        **changes: Any,
    ) -> tuple[UpstreamHttp, Any]:
        transport = mock_upstream(handler)
        auth_config: AuthConfig = TypeAdapter(AuthConfig).validate_python(auth or {"kind": "none"})
        http = UpstreamHttp(
            AGENCY,
            connection(**changes),
            auth_config,
            secrets if secrets is not None else {"agency": "s3cret"},
            transport=transport,
        )
        made.append(http)
        return http, transport

    yield factory
    for http in made:
        await http.aclose()


def ok(_: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(200, content=OK)


def refused(request: httpx2.Request) -> httpx2.Response:
    raise httpx2.ConnectError("Connection refused", request=request)


# --- failures ---------------------------------------------------------------------------------


async def test_connection_refused_is_unavailable_after_retries(upstream: Upstream) -> None:
    http, transport = upstream(refused, retries=2)
    with pytest.raises(UpstreamUnavailable) as caught:
        await http.get("/x")
    assert caught.value.agency == AGENCY
    assert transport.calls == 3  # the first try and two retries


async def test_connection_refused_over_real_loopback() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    http = UpstreamHttp(
        AGENCY,
        connection(base_url=f"http://127.0.0.1:{port}", retries=1),
        NoAuth(),
        {},
    )
    started = time.perf_counter()
    try:
        with pytest.raises(UpstreamUnavailable, match="cannot reach"):
            await http.get("/health")
    finally:
        await http.aclose()
    assert time.perf_counter() - started < 2


async def test_hang_is_a_timeout_within_the_deadline(upstream: Upstream) -> None:
    async def hang(_: httpx2.Request) -> httpx2.Response:
        await asyncio.sleep(30)
        return httpx2.Response(200, content=OK)

    http, _ = upstream(hang, timeout_seconds=0.2)
    started = time.perf_counter()
    with pytest.raises(UpstreamTimeout) as caught:
        await http.get("/x")
    assert time.perf_counter() - started < 1.0
    assert caught.value.agency == AGENCY


async def test_a_body_that_stalls_midway_is_a_timeout(upstream: Upstream) -> None:
    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"code":'
        await asyncio.sleep(30)
        yield b"0}"

    http, _ = upstream(lambda _: httpx2.Response(200, content=trickle()), timeout_seconds=0.2)
    with pytest.raises(UpstreamTimeout):
        await http.get("/x")


async def test_retries_503_then_succeeds(upstream: Upstream) -> None:
    answers = iter([503, 502, 200])

    def flaky(_: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(next(answers), content=OK)

    http, transport = upstream(flaky, retries=2)
    response = await http.get("/x")
    assert response.status == 200
    assert transport.calls == 3
    assert http.circuit_state is CircuitState.CLOSED


async def test_503_beyond_the_retries_is_returned_and_counted_as_a_failure(
    upstream: Upstream,
) -> None:
    http, transport = upstream(lambda _: httpx2.Response(503), retries=1)
    response = await http.get("/x")
    assert response.status == 503
    assert transport.calls == 2
    assert http.breaker._failures == 1


async def test_500_is_not_retried(upstream: Upstream) -> None:
    http, transport = upstream(lambda _: httpx2.Response(500), retries=2)
    assert (await http.get("/x")).status == 500
    assert transport.calls == 1


async def test_huge_streamed_body_without_content_length_is_refused(upstream: Upstream) -> None:
    async def endless() -> AsyncIterator[bytes]:
        for _ in range(1000):
            yield b"x" * 1024

    def handler(_: httpx2.Request) -> httpx2.Response:
        response = httpx2.Response(200, content=endless())
        assert "content-length" not in response.headers
        return response

    http, _ = upstream(handler, max_body_bytes=8192)
    with pytest.raises(UpstreamProtocolError, match="8192-byte limit"):
        await http.get("/x")


async def test_declared_content_length_above_the_cap_is_refused_before_reading(
    upstream: Upstream,
) -> None:
    read: list[bytes] = []

    class Watched(httpx2.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            read.append(b"chunk")
            yield b"x" * 10

    def handler(_: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"Content-Length": "100000000"}, stream=Watched())

    http, _ = upstream(handler, max_body_bytes=8192)
    with pytest.raises(UpstreamProtocolError, match="100000000 bytes"):
        await http.get("/x")
    assert read == []


# --- circuit breaker --------------------------------------------------------------------------


async def test_circuit_opens_fails_fast_half_opens_and_closes(upstream: Upstream) -> None:
    state = {"status": 500}
    http, transport = upstream(
        lambda _: httpx2.Response(state["status"]),
        retries=0,
        circuit={"failure_threshold": 3, "reset_seconds": 0.2},
    )
    for _ in range(3):
        assert (await http.get("/x")).status == 500
    assert http.circuit_state is CircuitState.OPEN
    started = time.perf_counter()
    with pytest.raises(UpstreamUnavailable, match="circuit open"):
        await http.get("/x")
    assert time.perf_counter() - started < 0.05
    assert transport.calls == 3  # failing fast never reached the agency

    await asyncio.sleep(0.25)
    assert str(http.circuit_state) == "half-open"
    assert (await http.get("/x")).status == 500  # the trial fails: open again
    assert http.circuit_state is CircuitState.OPEN
    with pytest.raises(UpstreamUnavailable):
        await http.get("/x")

    await asyncio.sleep(0.25)
    state["status"] = 200
    assert (await http.get("/x")).status == 200  # the trial succeeds: closed
    assert str(http.circuit_state) == "closed"
    assert transport.calls == 5


async def test_circuit_counts_timeouts_and_refusals(upstream: Upstream) -> None:
    http, _ = upstream(refused, retries=0, circuit={"failure_threshold": 2, "reset_seconds": 60})
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable, match="cannot reach"):
            await http.get("/x")
    with pytest.raises(UpstreamUnavailable, match="circuit open"):
        await http.get("/x")


async def test_a_cancelled_half_open_trial_does_not_wedge_the_circuit(upstream: Upstream) -> None:
    gate = asyncio.Event()

    async def slow(_: httpx2.Request) -> httpx2.Response:
        await gate.wait()
        return httpx2.Response(200, content=OK)

    http, _ = upstream(slow, retries=0, circuit={"failure_threshold": 1, "reset_seconds": 0.05})
    http.breaker.record_failure()
    await asyncio.sleep(0.06)
    trial = asyncio.create_task(http.get("/x"))
    await asyncio.sleep(0.01)
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    gate.set()
    assert (await http.get("/x")).status == 200  # a new trial was allowed
    assert http.circuit_state is CircuitState.CLOSED


def test_breaker_success_resets_the_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, reset_seconds=60)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is CircuitState.CLOSED
    breaker.record_failure()
    assert str(breaker.state) == "open"
    assert not breaker.allow()


# --- upstream authentication ------------------------------------------------------------------


async def test_api_key_in_the_configured_header(upstream: Upstream) -> None:
    http, transport = upstream(
        ok, auth={"kind": "api_key", "header": "X-Court-Key", "secret": "agency"}
    )
    await http.get("/x")
    assert transport.requests[0].headers["X-Court-Key"] == "s3cret"


async def test_basic_auth(upstream: Upstream) -> None:
    http, transport = upstream(
        ok, auth={"kind": "basic", "username": "gateway", "secret": "agency"}
    )
    await http.get("/x")
    expected = base64.b64encode(b"gateway:s3cret").decode()
    assert transport.requests[0].headers["Authorization"] == f"Basic {expected}"


def test_a_missing_credential_names_the_secret(upstream: Upstream) -> None:
    with pytest.raises(AgencyConfigError, match="'court'"):
        upstream(ok, auth={"kind": "api_key", "secret": "court"}, secrets={})


class TokenServer:
    """A token endpoint and a data endpoint that accepts only the newest token."""

    def __init__(self) -> None:
        self.issued = 0
        self.valid: str | None = None
        self.reject_all = False

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/oauth/token":
            expected = base64.b64encode(b"gateway:s3cret").decode()
            assert request.headers["Authorization"] == f"Basic {expected}"
            assert b"grant_type=client_credentials" in request.content
            self.issued += 1
            self.valid = f"token-{self.issued}"
            body = {"access_token": self.valid, "token_type": "Bearer", "expires_in": 600}
            return httpx2.Response(200, json=body)
        if self.reject_all or request.headers.get("Authorization") != f"Bearer {self.valid}":
            return httpx2.Response(401, json={"title": "Unauthorized"})
        return httpx2.Response(200, content=OK)


OAUTH = {
    "kind": "oauth2_client_credentials",
    "token_url": "/oauth/token",
    "client_id": "gateway",
    "secret": "agency",
}


async def test_oauth2_fetches_a_token_once_and_reuses_it(upstream: Upstream) -> None:
    server = TokenServer()
    http, transport = upstream(server, auth=OAUTH)
    for _ in range(3):
        assert (await http.get("/data")).status == 200
    assert server.issued == 1
    assert transport.calls == 4


async def test_oauth2_refetches_once_on_401(upstream: Upstream) -> None:
    server = TokenServer()
    http, _ = upstream(server, auth=OAUTH)
    assert (await http.get("/data")).status == 200
    server.valid = "revoked-by-a-restart"
    assert (await http.get("/data")).status == 200
    assert server.issued == 2

    server.reject_all = True  # a token that never works: one refetch, then the 401 stands
    assert (await http.get("/data")).status == 401
    assert server.issued == 3


async def test_oauth2_refused_client_is_a_protocol_error(upstream: Upstream) -> None:
    http, _ = upstream(lambda _: httpx2.Response(401, json={"error": "invalid_client"}), auth=OAUTH)
    with pytest.raises(UpstreamProtocolError, match="invalid_client"):
        await http.get("/data")


@pytest.mark.parametrize(
    "answer",
    [
        httpx2.Response(502, content=b"<html>bad gateway</html>"),
        httpx2.Response(200, content=b"not json"),
        httpx2.Response(200, json=["not", "an", "object"]),
    ],
)
async def test_oauth2_unusable_token_answer_is_a_protocol_error(
    upstream: Upstream, answer: httpx2.Response
) -> None:
    http, _ = upstream(lambda _: answer, auth=OAUTH)
    with pytest.raises(UpstreamProtocolError) as caught:
        await http.get("/data")
    assert caught.value.agency == AGENCY
    assert http.breaker._failures == 1


# --- transport quirks -------------------------------------------------------------------------


class Chunks(httpx2.AsyncByteStream):
    """A streamed (not pre-read) body, as a real transport hands it over."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


async def test_compressed_bodies_are_decoded_and_capped_decoded(upstream: Upstream) -> None:
    body = gzip.compress(b'{"code":0,"data":"' + b"x" * 100 + b'"}')
    http, _ = upstream(
        lambda _: httpx2.Response(200, headers={"Content-Encoding": "gzip"}, stream=Chunks(body))
    )
    assert (await http.get("/x")).body.startswith(b'{"code":0')

    bomb = gzip.compress(b" " * 1_000_000)  # ~1 KiB on the wire, 1 MB decoded
    http, _ = upstream(
        lambda _: httpx2.Response(200, headers={"Content-Encoding": "gzip"}, stream=Chunks(bomb)),
        max_body_bytes=65536,
    )
    with pytest.raises(UpstreamProtocolError, match="65536-byte limit"):
        await http.get("/x")


async def test_aiohttp_connection_errors_reported_as_connect_timeouts_are_retried(
    upstream: Upstream,
) -> None:
    """httpx-aiohttp maps refused/reset/disconnected connections to ConnectTimeout."""

    def reset(request: httpx2.Request) -> httpx2.Response:
        try:
            raise ConnectionResetError("Server disconnected")
        except ConnectionResetError as cause:
            raise httpx2.ConnectTimeout("Server disconnected", request=request) from cause

    http, transport = upstream(reset, retries=2)
    with pytest.raises(UpstreamUnavailable, match="cannot reach"):
        await http.get("/x")
    assert transport.calls == 3

    def timed_out(request: httpx2.Request) -> httpx2.Response:
        try:
            raise TimeoutError("connect timed out")
        except TimeoutError as cause:
            raise httpx2.ConnectTimeout("Connection timeout", request=request) from cause

    http, transport = upstream(timed_out, retries=2)
    with pytest.raises(UpstreamTimeout):
        await http.get("/x")
    assert transport.calls == 1
