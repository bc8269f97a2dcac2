"""The exchange data routes' GET, served ahead of FastAPI's router (gateway/exchange/asgi.py),
answers exactly as the declared FastAPI routes do: same status, headers, problem and body.

Each request is sent twice: through the lean endpoint, and with it stepped over, so that
FastAPI's router, dependency and exception handlers answer. Only the request id and the
receipt (a new audit entry each time) may differ.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy.exc import OperationalError
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from gateway.exchange import asgi
from gateway.exchange.asgi import ExchangeEndpoints
from gateway.exchange.routes import data_routes
from gateway.observability.middleware import GatewayMiddleware
from tests.conftest import Gateway
from tests.exchange.conftest import exchange_headers

COURT_CASE = quote("(2024)宁0104刑初465号", safe="()")  # C00000020, FY640104 handles it


@pytest.fixture
def gw(shared_exchange_gateway: Gateway) -> Gateway:
    return shared_exchange_gateway


@pytest.fixture
def served() -> Iterator[list[str]]:
    """The paths the lean endpoint served itself (it stays in place)."""
    paths: list[str] = []
    original = ExchangeEndpoints._serve

    async def spy(self: ExchangeEndpoints, route: Any, params: dict[str, str], scope: Scope,
                  receive: Receive, send: Send) -> None:  # fmt: skip
        paths.append(scope["path"])
        await original(self, route, params, scope, receive, send)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ExchangeEndpoints, "_serve", spy)
        yield paths


def _through_fastapi() -> pytest.MonkeyPatch:
    """The lean endpoint stepped over: every request goes on to FastAPI."""
    patch = pytest.MonkeyPatch()

    async def forward(self: ExchangeEndpoints, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    patch.setattr(ExchangeEndpoints, "__call__", forward)
    return patch


def _answer(response: Any) -> tuple[int, dict[str, str], Any]:
    headers = {k: v for k, v in response.headers.items() if k not in {"x-request-id", "date"}}
    if "x-audit-index" in headers:
        headers["x-audit-index"] = "<receipt>"
    body: Any = response.content
    if response.headers.get("content-type", "").endswith("json"):
        body = response.json()
        if isinstance(body, dict):
            if body.get("next_cursor"):
                body["next_cursor"] = "<sealed: a new nonce each time>"
            assert (
                body.pop("request_id", response.headers["x-request-id"])
                == (response.headers["x-request-id"])
            )
    return response.status_code, headers, body


def _get(gw: Gateway, path: str, headers: dict[str, str]) -> Any:
    return gw.client.get(path, headers=headers, follow_redirects=False)


def _requests(gw: Gateway) -> list[tuple[str, dict[str, str]]]:
    court = exchange_headers(gw, "court", "TRIAL", None)
    with_case = {**court, "X-Case-Number": COURT_CASE}
    no_operator = {k: v for k, v in with_case.items() if k != "X-Operator-Id"}
    return [
        ("/v1/resources/person/P0000002001", with_case),  # allowed
        ("/v1/resources/case/C00000020?fields=case_id,stage", with_case),
        ("/v1/resources/person?case_id=C00000020&limit=1", with_case),  # search
        ("/v1/resources/person/P0000002001?fields=nope", with_case),  # 422
        ("/v1/resources/person?limit=0", with_case),  # 422
        ("/v1/resources/nothing/X1", with_case),  # unknown resource: 404
        ("/v1/resources/person/P9999999999", with_case),  # no such record
        ("/v1/resources/person/P0000002001", court),  # no case: policy refuses
        ("/v1/resources/person/P0000002001", {**with_case, "X-Purpose": "bad purpose"}),
        ("/v1/resources/person/P0000002001", no_operator),
        ("/v1/resources/person/P0000002001", {}),  # no token: anonymous 401
        ("/v1/resources/person/P0000002001", {"Authorization": "Basic eDp5"}),
        ("/v1/resources/person/P0000002001", {"Authorization": "Bearer not-a-token"}),
        ("/v1/resources/person/P0000002001", {**with_case, **gw.auth("regulator")}),  # scope: 403
        ("/v1/resources/person/P0000002001/", with_case),  # not a data route's path: 307
        ("/v1/resources/", with_case),
    ]  # fmt: skip


def test_answers_are_fastapis(gw: Gateway, served: list[str]) -> None:
    requests = _requests(gw)
    lean = [_answer(_get(gw, path, headers)) for path, headers in requests]
    assert len(served) == len(requests) - 2  # the last two are not data routes' paths
    patch = _through_fastapi()
    try:
        declared = [_answer(_get(gw, path, headers)) for path, headers in requests]
    finally:
        patch.undo()
    assert len(served) == len(requests) - 2
    for (path, _), mine, fastapis in zip(requests, lean, declared, strict=True):
        assert mine == fastapis, path
    statuses = [status for status, _, _ in lean]
    assert statuses == [200, 200, 200, 422, 422, 404, 404, 403, 400, 400, 401, 401, 401, 403,
                        307, 404]  # fmt: skip


def test_other_methods_go_to_fastapi(gw: Gateway, served: list[str]) -> None:
    headers = {**exchange_headers(gw, "court", "TRIAL", None), "X-Case-Number": COURT_CASE}
    for method in ("HEAD", "POST", "PUT", "DELETE", "OPTIONS"):
        response = gw.client.request(method, "/v1/resources/person/P0000002001", headers=headers)
        assert response.status_code == 405, method
        assert "x-audit-index" in response.headers  # a refusal of an identified caller
    assert served == []


def test_metrics_name_the_route_template(gw: Gateway, served: list[str]) -> None:
    headers = {**exchange_headers(gw, "court", "TRIAL", None), "X-Case-Number": COURT_CASE}
    assert gw.client.get("/v1/resources/person/P0000002001", headers=headers).status_code == 200
    search = "/v1/resources/person?case_id=C00000020&limit=1"
    assert gw.client.get(search, headers=headers).status_code == 200
    assert served == ["/v1/resources/person/P0000002001", "/v1/resources/person"]
    metrics = gw.client.app.state.runtime.metrics  # type: ignore[attr-defined]
    routes = {
        sample.labels["route"]
        for family in metrics.requests.collect()
        for sample in family.samples
        if sample.labels.get("route", "").startswith("/v1/resources")
    }
    assert routes == {"/v1/resources/{resource}/{record_id}", "/v1/resources/{resource}"}
    # (The anonymous refusals' aggregate names it too: test_exchange_api, test_injection.)


def test_the_lean_endpoint_sits_inside_the_gateway_middleware_and_serves_only_data_routes(
    gw: Gateway,
) -> None:
    app: Any = gw.client.app
    layers = [m.cls for m in app.user_middleware]
    assert layers == [GatewayMiddleware, ExchangeEndpoints]
    lean = next(m for m in app.user_middleware if m.cls is ExchangeEndpoints)
    assert [r.path for r in lean.kwargs["routes"]] == [r.path for r in data_routes()]
    assert {r.path for r in data_routes()} == {
        "/v1/resources/{resource}/{record_id}",
        "/v1/resources/{resource}",
    }
    # Its one way to data is the choke point, after the audited authentication.
    source = inspect.getsource(asgi.ExchangeEndpoints._serve)
    assert "exchange.handle(" in source
    assert "audited_caller(request, AuthScope.EXCHANGE, token)" in source


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (RuntimeError("a bug"), 500),
        (OperationalError("SELECT 1", {}, Exception("the database is down")), 503),
    ],
)
def test_an_error_in_the_choke_point_answers_as_fastapi_does(
    gw: Gateway, error: Exception, status: int, served: list[str]
) -> None:
    runtime = gw.client.app.state.runtime  # type: ignore[attr-defined]

    async def failing(*args: Any, **kwargs: Any) -> Any:
        raise error

    client = TestClient(gw.client.app, raise_server_exceptions=False)
    headers = {**exchange_headers(gw, "court", "TRIAL", None), "X-Case-Number": COURT_CASE}
    path = "/v1/resources/person/P0000002001"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runtime.exchange, "handle", failing)
        lean = _answer(client.get(path, headers=headers))
        stepped_over = _through_fastapi()
        try:
            declared = _answer(client.get(path, headers=headers))
        finally:
            stepped_over.undo()
    assert served == [path]
    assert lean == declared
    assert lean[0] == status
    assert lean[2]["type"] in ("/problems/internal-error", "/problems/service-unavailable")
