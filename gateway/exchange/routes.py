"""Exchange routes. Each one hands the whole request to ``ExchangeService.handle``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.responses import Response

from gateway.auth.deps import BEARER_SECURITY, ExchangeClient, RuntimeDep, flat_audited_scope
from gateway.auth.scopes import Scope
from gateway.auth.tokens import Principal
from gateway.errors import GatewayError, problem_responses
from gateway.responses import JSONResponse
from gateway.runtime import runtime_of

__all__ = ["data_routes", "router"]

router = APIRouter(tags=["exchange"])

AuditedExchangeCaller = Annotated[
    Principal | GatewayError, Depends(flat_audited_scope(Scope.EXCHANGE))
]

_HEADERS_DOC: list[dict[str, Any]] = [
    {
        "name": "X-Purpose",
        "in": "header",
        "required": True,
        "description": "purpose code of the standard (GET /v1/catalog), e.g. TRIAL",
        "schema": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"},
    },
    {
        "name": "X-Operator-Id",
        "in": "header",
        "required": True,
        "description": "the acting officer's id",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"},
    },
    {
        "name": "X-Case-Number",
        "in": "header",
        "required": False,
        "description": "the case served, percent-encoded UTF-8, e.g. "
        "(2021)%E5%AE%810104%E5%88%91%E5%88%9D123%E5%8F%B7",
        "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,256}$"},
    },
    {
        "name": "fields",
        "in": "query",
        "required": False,
        "description": "comma-separated standard field names (minimum necessary)",
        "schema": {"type": "string"},
    },
]

_AUDIT_HEADER: dict[str, Any] = {
    "X-Audit-Index": {
        "description": "index of this request's audit entry (your receipt)",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
}
# Fail closed: a 503 means no entry could be written, so it carries no receipt either. A 401
# whose token names no client is counted in an aggregated entry (docs/operations.md): no
# receipt of its own; a token that does (expired, its client disabled) gets one.
_RESPONSES: dict[int | str, dict[str, Any]] = {
    **problem_responses(
        {401: "invalid token (X-Audit-Index when the token names a client)"},
        headers={"X-Audit-Index": {**_AUDIT_HEADER["X-Audit-Index"], "required": False}},
    ),
    **problem_responses(
        {
            400: "missing or malformed X-Purpose, X-Operator-Id or X-Case-Number",
            403: "denied by policy, or missing scope",
            404: "unknown resource type, or no such record available to you",
            422: "malformed id, fields, filter, limit or cursor",
            429: "rate limited",
            502: "the owning agency's system failed or sent a record that breaks the standard",
            504: "the owning agency's system did not answer in time",
        },
        headers=_AUDIT_HEADER,
    ),
    **problem_responses({503: "the audit log cannot record the request; nothing released"}),
}


class RecordResponse(BaseModel):
    """One record in standard form, filtered by policy."""

    resource: str
    id: str
    record: dict[str, Any]
    withheld: list[str]
    masked: list[str]
    policy_version: str


class SearchResponse(BaseModel):
    """One page of a search, filtered by policy."""

    resource: str
    records: list[dict[str, Any]]
    withheld: list[str]
    masked: list[str]
    next_cursor: str | None
    policy_version: str


@router.get(
    "/v1/catalog",
    summary="The unified sharing standard (统一标准)",
    response_model=dict[str, Any],
    responses=problem_responses(
        {401: "invalid token", 403: "missing scope (exchange)", 429: "rate limited"}
    ),
)
async def catalog(runtime: RuntimeDep, caller: ExchangeClient) -> Response:
    return JSONResponse(runtime.catalog)


@router.get(
    "/v1/resources/{resource}/{record_id}",
    summary="One record, in standard form, filtered by policy",
    response_model=RecordResponse,
    responses={200: {"headers": _AUDIT_HEADER}, **_RESPONSES},
    openapi_extra={"parameters": _HEADERS_DOC, "security": BEARER_SECURITY},
)
async def fetch_record(
    request: Request,
    caller: AuditedExchangeCaller,
    resource: str,
    record_id: str,
) -> Response:
    return await runtime_of(request).exchange.handle(request, caller, resource, record_id)


@router.get(
    "/v1/resources/{resource}",
    summary="Search records by standard filters (keyset pagination)",
    description="Query parameters: one or more filters of the resource (see GET /v1/catalog), "
    "`fields`, `limit` (1-100, default 20) and `cursor` (the previous page's next_cursor).",
    response_model=SearchResponse,
    responses={200: {"headers": _AUDIT_HEADER}, **_RESPONSES},
    openapi_extra={
        "parameters": [
            *_HEADERS_DOC,
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": 100},
            },
            {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
        ],
        "security": BEARER_SECURITY,
    },
)
async def search_records(
    request: Request,
    caller: AuditedExchangeCaller,
    resource: str,
) -> Response:
    # The runtime is not a dependency (RuntimeDep) of the two exchange routes: one
    # dependency fewer to resolve on every exchange request.
    return await runtime_of(request).exchange.handle(request, caller, resource, None)


def data_routes() -> list[APIRoute]:
    """The two data routes, whose GET :class:`~gateway.exchange.asgi.ExchangeEndpoints` serves
    without FastAPI's router (their declarations here stay the OpenAPI document's)."""
    endpoints = (fetch_record, search_records)
    return [r for r in router.routes if isinstance(r, APIRoute) and r.endpoint in endpoints]
