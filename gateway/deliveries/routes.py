"""Delivery routes (协同办案, issue 15). Scope ``exchange`` (the key route is public).

Every exchange-scoped route reads ``X-Purpose``, ``X-Operator-Id`` and ``X-Case-Number`` as the
exchange routes do and is audited before it answers (:meth:`DeliveryService.handle`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import PlainTextResponse, Response

from gateway.auth.deps import audited_scope
from gateway.auth.scopes import Scope
from gateway.auth.tokens import Principal
from gateway.deliveries import queries
from gateway.deliveries.extensions import extend_delivery
from gateway.deliveries.service import DeliveryService
from gateway.errors import GatewayError, problem_responses
from gateway.exchange.request import ExchangeHeaders
from gateway.runtime import runtime_of

__all__ = ["router"]

router = APIRouter(tags=["deliveries"])

Caller = Annotated[Principal | GatewayError, Depends(audited_scope(Scope.EXCHANGE))]

_HEADERS: list[dict[str, Any]] = [
    {"name": "X-Purpose", "in": "header", "required": True, "schema": {"type": "string"}},
    {"name": "X-Operator-Id", "in": "header", "required": True, "schema": {"type": "string"}},
    {"name": "X-Case-Number", "in": "header", "required": False, "schema": {"type": "string"}},
]
_AUDIT: dict[str, Any] = {
    "X-Audit-Index": {
        "description": "index of this request's audit entry (your receipt)",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
}
_COMMON = {
    400: "missing or malformed header",
    403: "missing scope, or refused by policy",
    404: "no such delivery available to you",
    422: "malformed body or query, naming the field",
    429: "rate limited",
}


def _responses(extra: dict[int, str], ok: int = 200) -> dict[int | str, dict[str, Any]]:
    # As the exchange routes: a 401 whose token names no client has no entry of its own.
    return {
        ok: {"headers": _AUDIT},
        **problem_responses(
            {401: "invalid token (X-Audit-Index when the token names a client)"},
            headers={"X-Audit-Index": {**_AUDIT["X-Audit-Index"], "required": False}},
        ),
        **problem_responses({**_COMMON, **extra}, headers=_AUDIT),
        **problem_responses({503: "the audit log cannot record the request; nothing done"}),
    }


def _service(request: Request) -> DeliveryService:
    service: DeliveryService = runtime_of(request).deliveries
    return service


@router.post(
    "/v1/deliveries",
    summary="Send a delivery (送达) to another agency",
    status_code=201,
    responses=_responses(
        {
            409: "Idempotency-Key used with another body",
            413: "an attachment is too large",
            502: "the case's owner system failed",
            504: "the case's owner system did not answer in time",
        },
        ok=201,
    ),
    openapi_extra={
        "parameters": [
            *_HEADERS,
            {"name": "Idempotency-Key", "in": "header", "required": True, "schema": {}},
        ],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {}}}},
    },
)
async def create_delivery(request: Request, caller: Caller) -> Response:
    service = _service(request)
    body = await request.body()

    async def work(who: Principal, headers: ExchangeHeaders, draft: Any) -> Any:
        return await service.create(request, body, who, headers, draft)

    return await service.handle(request, caller, "create", work)


@router.get(
    "/v1/deliveries/key",
    summary="The receipt verifier key (C2SP signed-note verifier text), public",
    response_class=PlainTextResponse,
)
async def receipt_key(request: Request) -> Response:
    signer = _service(request).signer()
    return PlainTextResponse(signer.verifier_text() + "\n")


@router.get(
    "/v1/deliveries/stats",
    summary="Per recipient agency and kind: counts, time to answer, overdue, returned rate",
    responses=_responses({}),
    openapi_extra={"parameters": _HEADERS},
)
async def delivery_stats(request: Request, caller: Caller) -> Response:
    service = _service(request)

    async def work(who: Principal, headers: ExchangeHeaders, draft: Any) -> Any:
        return queries.stats(service, who, draft)

    return await service.handle(request, caller, "stats", work)


@router.get(
    "/v1/deliveries",
    summary="The caller's deliveries (role=inbound|outbound), keyset paged",
    responses=_responses({}),
    openapi_extra={"parameters": _HEADERS},
)
async def list_deliveries(request: Request, caller: Caller) -> Response:
    service = _service(request)
    query = dict(request.query_params)

    async def work(who: Principal, headers: ExchangeHeaders, draft: Any) -> Any:
        return queries.list_deliveries(service, query, who, draft)

    return await service.handle(request, caller, "list", work)


@router.get(
    "/v1/deliveries/{delivery_id}",
    summary="One delivery (sender and recipient only)",
    responses=_responses({}),
    openapi_extra={"parameters": _HEADERS},
)
async def get_delivery(request: Request, caller: Caller, delivery_id: str) -> Response:
    service = _service(request)

    async def work(who: Principal, headers: ExchangeHeaders, draft: Any) -> Any:
        return queries.get_delivery(service, delivery_id, who, draft)

    return await service.handle(request, caller, "read", work)


@router.post(
    "/v1/deliveries/{delivery_id}/receipt",
    summary="The recipient's answer (签收 accepted / 退回 returned), with its signed receipt",
    responses=_responses({409: "already answered"}),
    openapi_extra={
        "parameters": _HEADERS,
        "requestBody": {"required": True, "content": {"application/json": {"schema": {}}}},
    },
)
async def answer_delivery(request: Request, caller: Caller, delivery_id: str) -> Response:
    service = _service(request)
    body = await request.body()

    async def work(who: Principal, headers: ExchangeHeaders, draft: Any) -> Any:
        return await service.answer(delivery_id, body, who, draft)

    return await service.handle(request, caller, "answer", work)


@router.post(
    "/v1/deliveries/{delivery_id}/extensions",
    summary="Extend the statutory deadline by an extension the law allows (by the duty-bearer)",
    responses=_responses({409: "already answered"}),
    openapi_extra={
        "parameters": _HEADERS,
        "requestBody": {"required": True, "content": {"application/json": {"schema": {}}}},
    },
)
async def extend_deadline(request: Request, caller: Caller, delivery_id: str) -> Response:
    service = _service(request)
    body = await request.body()

    async def work(who: Principal, headers: ExchangeHeaders, draft: Any) -> Any:
        return extend_delivery(service, delivery_id, body, who, draft)

    return await service.handle(request, caller, "extend", work)
