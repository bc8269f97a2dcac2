"""Agency-system faults reach the caller as 502/504 problems naming the agency, audited,
with nothing partial released; the gateway recovers without a restart."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.server import serve_in_thread
from tests.conftest import Gateway
from tests.exchange.conftest import exchange_headers
from tests.exchange.test_exchange_api import CourtCase, _entry


class FaultProxy:
    """Forwards to a real sample system, adding ``X-Sandbox-Fault: <fault>`` when set."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.fault: str | None = None
        self.app = Starlette(routes=[Route("/{path:path}", self.forward)])

    async def forward(self, request: Request) -> Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        if self.fault:
            headers["X-Sandbox-Fault"] = self.fault
        async with httpx2.AsyncClient(base_url=self.upstream, timeout=60) as client:
            upstream = await client.get(
                request.url.path, params=request.query_params, headers=headers
            )
        return Response(
            upstream.content,
            status_code=upstream.status_code,
            media_type=upstream.headers.get("content-type"),
        )


@pytest.fixture(scope="module")
def police_proxy(agency_urls: dict[str, str]) -> Iterator[tuple[FaultProxy, str]]:
    proxy = FaultProxy(agency_urls["public_security"])
    with serve_in_thread(proxy.app) as url:  # type: ignore[arg-type]
        yield proxy, url


@pytest.fixture
def faulty(
    exchange_gateway: Callable[..., Gateway], police_proxy: tuple[FaultProxy, str]
) -> Iterator[tuple[Gateway, FaultProxy]]:
    proxy, url = police_proxy
    proxy.fault = None
    yield exchange_gateway(upstream_urls={"public_security": url}), proxy
    proxy.fault = None


def _get(gateway: Gateway) -> httpx2.Response:
    return gateway.client.get(
        "/v1/resources/case/C00000020",
        headers=exchange_headers(gateway, "court", "TRIAL", CourtCase),
    )


@pytest.mark.parametrize(
    ("fault", "status"),
    [("status=500", 502), ("garbage", 502), ("huge=8", 502), ("invalid", 502), ("slow=5000", 504)],
)
def test_upstream_faults_become_precise_problems(
    faulty: tuple[Gateway, FaultProxy], fault: str, status: int
) -> None:
    gateway, proxy = faulty
    assert _get(gateway).status_code == 200  # healthy first
    proxy.fault = fault
    started = time.monotonic()
    response = _get(gateway)
    elapsed = time.monotonic() - started
    assert response.status_code == status, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["agency"] == "public_security"
    assert "case_name" not in response.text  # nothing partial
    assert elapsed < 4.5  # the agency file's 3 s deadline, not the upstream's 5 s
    entry = _entry(gateway, response)
    assert entry["status"] == status
    assert entry["decision"] in {"error", "invalid"}
    assert entry["fields"]["released"] == []
    assert entry["body_sha256"] is None
    if fault == "invalid":
        assert problem["field"] == "case_category"
    proxy.fault = None
    assert _get(gateway).status_code == 200  # recovers without a restart


def test_agency_down_is_a_502_naming_it(exchange_gateway: Callable[..., Gateway]) -> None:
    gateway = exchange_gateway(upstream_urls={"public_security": "http://127.0.0.1:9"})
    response = _get(gateway)
    assert response.status_code == 502
    assert response.json()["agency"] == "public_security"
    assert "X-Audit-Index" in response.headers
