"""Every error is RFC 9457 problem+json with a request id, and never a stack trace."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Query
from pydantic import BaseModel
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    GatewayError,
    InsufficientScope,
    InvalidHeader,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    Unauthorized,
    UnprocessableContent,
    UpstreamError,
    UpstreamTimeout,
)
from gateway.observability.logging import configure_logging
from tests.auth.fixtures import started_gateway
from tests.auth.helpers import assert_problem, logging_restored
from tests.conftest import Gateway

SECRET_DETAIL = "db password is hunter2 at /srv/internal/config.py"


class Item(BaseModel):
    name: str
    count: int


RAISED: dict[str, GatewayError] = {
    "bad-request": BadRequest("the thing is wrong"),
    "invalid-header": InvalidHeader("X-Purpose", "X-Purpose must be a purpose code"),
    "unauthorized": Unauthorized('token "x" is bad'),
    "forbidden": Forbidden("not for you"),
    "insufficient-scope": InsufficientScope("exchange"),
    "not-found": NotFound("no such case"),
    "conflict": Conflict("already there"),
    "too-large": PayloadTooLarge("too big"),
    "unprocessable": UnprocessableContent(
        "bad fields", [{"field": "case_no", "reason": "required"}]
    ),
    "rate-limited": RateLimited(7),
    "unavailable": ServiceUnavailable("down for maintenance"),
    "upstream": UpstreamError("court", "connection refused", attempt=2),
    "upstream-timeout": UpstreamTimeout("prison", "no answer in 5 s"),
}


def _test_app(gateway: Gateway) -> FastAPI:
    app = create_app(gateway.settings)

    @app.get("/_test/boom")
    async def boom() -> None:
        raise RuntimeError(SECRET_DETAIL)

    @app.get("/_test/raise/{name}")
    async def raise_named(name: str) -> None:
        raise RAISED[name]

    @app.post("/_test/items")
    async def items(item: Item, limit: int = Query(ge=1, le=100)) -> dict[str, Any]:
        return {"item": item.model_dump(), "limit": limit}

    return app


@pytest.fixture(scope="module")
def module_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with started_gateway(tmp_path_factory.mktemp("errors")) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def test_client(module_gateway: Gateway) -> Iterator[TestClient]:
    """The gateway app with routes that fail in each way, on the shared gateway's data."""
    with TestClient(_test_app(module_gateway), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def shared_client(module_gateway: Gateway) -> TestClient:
    return module_gateway.client


# --- 404, 405, request ids -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/v1/nope/deeper", "/oauth/token/extra", "/%E4%B8%AD"])
def test_unknown_route_is_a_404_problem(shared_client: TestClient, path: str) -> None:
    body = assert_problem(shared_client.get(path), 404, "not-found")
    assert body["title"] == "Not found"


def test_method_not_allowed(shared_client: TestClient) -> None:
    response = shared_client.delete("/v1/me")
    assert_problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "GET"


def test_every_response_has_a_fresh_request_id(shared_client: TestClient) -> None:
    ids = {shared_client.get("/healthz").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5
    for request_id in ids:
        assert len(request_id) == 24
        int(request_id, 16)


@pytest.mark.parametrize(
    "incoming",
    ["abcdefgh", "req-2026.11.29:0001", "A" * 64, "550e8400-e29b-41d4-a716-446655440000"],
)
def test_safe_caller_request_id_is_echoed(shared_client: TestClient, incoming: str) -> None:
    response = shared_client.get("/nope", headers={"X-Request-Id": incoming})
    assert response.headers["x-request-id"] == incoming
    assert assert_problem(response, 404)["request_id"] == incoming


@pytest.mark.parametrize(
    "incoming",
    [
        "short",
        "A" * 65,
        "has space here",
        "semi;colon;id",
        "<script>x</script>",
        "中文请求编号一二三",
        "",
    ],
)
def test_unsafe_caller_request_id_is_replaced(shared_client: TestClient, incoming: str) -> None:
    response = shared_client.get("/nope", headers={"X-Request-Id": incoming.encode()})
    request_id = response.headers["x-request-id"]
    assert request_id != incoming
    assert len(request_id) == 24
    assert assert_problem(response, 404)["request_id"] == request_id


# --- bodies too large ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_body_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with started_gateway(tmp_path_factory.mktemp("small-body"), max_body_bytes=2048) as gateway:
        yield gateway


def test_413_by_content_length(small_body_gateway: Gateway) -> None:
    cred = small_body_gateway.clients["court"]
    response = small_body_gateway.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "pad": "x" * 4096},
        auth=(cred.client_id, cred.client_secret),
    )
    body = assert_problem(response, 413, "payload-too-large")
    assert "2048" in body["detail"]


def test_413_by_chunked_body_without_content_length(small_body_gateway: Gateway) -> None:
    cred = small_body_gateway.clients["court"]
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        yield b"grant_type=client_credentials&pad="
        for _ in range(10):
            sent.append(512)
            yield b"x" * 512

    response = small_body_gateway.client.post(
        "/oauth/token",
        content=chunks(),
        headers={"content-type": "application/x-www-form-urlencoded"},
        auth=(cred.client_id, cred.client_secret),
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload-too-large")


def test_chunked_body_under_the_limit_is_fine(small_body_gateway: Gateway) -> None:
    cred = small_body_gateway.clients["court"]

    def chunks() -> Iterator[bytes]:
        yield b"grant_type="
        yield b"client_credentials"

    response = small_body_gateway.client.post(
        "/oauth/token",
        content=chunks(),
        headers={"content-type": "application/x-www-form-urlencoded"},
        auth=(cred.client_id, cred.client_secret),
    )
    assert response.status_code == 200, response.text


def test_malformed_content_length_is_a_400(shared_client: TestClient) -> None:
    response = shared_client.post(
        "/oauth/token", headers={"content-length": "lots", "content-type": "text/plain"}
    )
    assert_problem(response, 400, "bad-request")


# --- validation errors, raised domain errors, unexpected errors ------------------------------


def test_validation_errors_list_the_fields(test_client: TestClient) -> None:
    response = test_client.post("/_test/items?limit=1000", json={"name": 5})
    body = assert_problem(response, 422, "validation-error")
    fields = {error["field"] for error in body["errors"]}
    assert {"query.limit", "body.name", "body.count"} <= fields
    for error in body["errors"]:
        assert error["reason"]
    assert "query.limit" in body["detail"]


@pytest.mark.parametrize(
    "content", [b"{not json", b"", b"[1, 2", '{"name": "\ud800"}'.encode("utf-8", "surrogatepass")]
)
def test_malformed_json_is_a_4xx_problem(test_client: TestClient, content: bytes) -> None:
    response = test_client.post(
        "/_test/items?limit=1", content=content, headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    assert_problem(response, response.status_code)


@pytest.mark.parametrize("name", sorted(RAISED))
def test_domain_errors_render_as_problems(test_client: TestClient, name: str) -> None:
    error = RAISED[name]
    response = test_client.get(f"/_test/raise/{name}")
    body = assert_problem(response, error.status, error.slug)
    assert body["title"] == error.title
    assert body["detail"] == error.detail
    for header, value in error.headers.items():
        assert response.headers[header] == value
    for key, value in error.extra.items():
        assert body[key] == value


def test_domain_error_details(test_client: TestClient) -> None:
    limited = test_client.get("/_test/raise/rate-limited")
    assert limited.headers["retry-after"] == "7"
    upstream = test_client.get("/_test/raise/upstream").json()
    assert upstream["agency"] == "court"
    assert upstream["attempt"] == 2
    assert upstream["status"] == 502
    assert test_client.get("/_test/raise/upstream-timeout").status_code == 504
    # A quote in the detail cannot break out of the WWW-Authenticate parameter.
    challenge = test_client.get("/_test/raise/unauthorized").headers["www-authenticate"]
    assert challenge == 'Bearer error="invalid_token", error_description="token \'x\' is bad"'
    header = test_client.get("/_test/raise/invalid-header").json()
    assert header["header"] == "X-Purpose"


def test_unexpected_exception_is_a_bare_500_problem(
    test_client: TestClient, module_gateway: Gateway, capfd: pytest.CaptureFixture[str]
) -> None:
    with logging_restored(module_gateway.settings.log_level):
        configure_logging(module_gateway.settings.log_level)  # log to the captured stderr
        _check_bare_500(test_client, capfd)


def _check_bare_500(test_client: TestClient, capfd: pytest.CaptureFixture[str]) -> None:
    response = test_client.get("/_test/boom", headers={"X-Request-Id": "trace-me-12345"})
    body = assert_problem(response, 500, "internal-error")
    assert body["request_id"] == "trace-me-12345"
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    assert "config.py" not in response.text
    assert set(body) == {"type", "title", "status", "detail", "instance", "request_id"}
    # The operators get the details, under the same request id.
    err = capfd.readouterr().err
    assert "trace-me-12345" in err
    assert "RuntimeError" in err


def test_unexpected_exception_propagates_to_the_server_too(module_gateway: Gateway) -> None:
    """Starlette's contract: the server (and a raising test client) still sees the error."""
    with TestClient(_test_app(module_gateway)) as client, pytest.raises(RuntimeError):
        client.get("/_test/boom")
