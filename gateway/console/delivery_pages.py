"""Deliveries (协同办案) of the reviewer's agency, read-only (scope ``sharing:review``), and the
figures every agency's regulators see (scope ``audit:read``).

Every read is :meth:`DeliveryService.handle` with the work of ``GET /v1/deliveries`` and
``GET /v1/deliveries/{id}`` (:mod:`gateway.deliveries.queries`): the same audit entry (kind
``delivery``) written before the page leaves, the same 503 when it cannot be written, the same
404 for a third party's delivery as for a missing one. The person is the caller
(``user:NAME`` of their agency) and the operator (``X-Operator-Id``); the purpose is the one
they chose on the page (``X-Purpose``). Answering stays with the agencies' systems (the API):
see docs/console.md, "Deliveries".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from gateway.audit.entry import AuditKind, EntryDraft
from gateway.auth.scopes import Scope
from gateway.auth.tokens import Principal
from gateway.console.guard import ConsoleRefusal, requires
from gateway.console.sessions import SignedIn
from gateway.console.sharing_pages import principal_of
from gateway.console.templating import render
from gateway.db import session_scope
from gateway.deliveries import queries
from gateway.deliveries.deadlines import is_overdue
from gateway.deliveries.service import Answer, DeliveryService
from gateway.deliveries.stats import delivery_stats
from gateway.exchange.request import ExchangeHeaders
from gateway.runtime import runtime_of

__all__ = ["overdue_chart", "oversight_figures", "router"]

router = APIRouter(prefix="/console/deliveries", include_in_schema=False)

Handler = Annotated[SignedIn, Depends(requires(Scope.SHARING_REVIEW, AuditKind.DELIVERY))]
Work = Callable[[Principal, ExchangeHeaders, EntryDraft], Awaitable[Answer]]

STATUSES = {
    "pending": "待送达",
    "delivered": "已送达待签收",
    "accepted": "已签收",
    "returned": "已退回",
    "failed": "送达失败",
}
# Event types of gateway/deliveries (repository, lifecycle, outbox); others show their code.
EVENTS = {
    "created": "发出",
    "push_attempt": "推送至接收方系统",
    "push_failed": "推送失败",
    "delivered": "已送达",
    "failed": "送达失败",
    "answered": "答复（签收或退回）",
    "extended": "延长期限",
}
ROLES = {"inbound": "收到的送达", "outbound": "发出的送达"}
# The exchange headers a console request could carry are dropped: the page sets its own.
_EXCHANGE = {b"x-purpose", b"x-operator-id", b"x-case-number", b"x-approval-reference"}
# Regulators read every agency's figures for oversight (政法委执法监督, purpose OVERSIGHT).
OVERSIGHT = "OVERSIGHT"


async def _handled(request: Request, found: SignedIn, purpose: str, event: str, work: Work) -> Any:
    """``work`` through :meth:`DeliveryService.handle` as the API's routes run it, with the
    person's purpose and id as ``X-Purpose`` and ``X-Operator-Id``; its JSON document, or the
    refusal as a page (with ``X-Audit-Index``)."""
    scope = dict(request.scope)
    scope["headers"] = [
        *(h for h in request.scope["headers"] if h[0] not in _EXCHANGE),
        (b"x-purpose", purpose.encode("ascii")),
        (b"x-operator-id", found.user.actor_id.encode("ascii")),
    ]
    service: DeliveryService = runtime_of(request).deliveries
    response = await service.handle(Request(scope, request.receive), principal_of(found),
                                    event, work)  # fmt: skip
    document = orjson.loads(response.body)
    if response.status_code == 200:
        return document
    index = response.headers.get("x-audit-index")  # none when the audit log was down (503)
    headers = {"X-Audit-Index": index} if index is not None else {}
    if response.status_code == 404:
        raise ConsoleRefusal(
            404, "没有这份送达", "没有这份送达，或它不属于本机构。", headers, audited=True
        )
    detail = str(document.get("detail"))
    # The service wrote the refusal's entry (or could not: 503, nothing to add).
    raise ConsoleRefusal(response.status_code, "无法查询", detail, headers, audited=True)


def _purposes(request: Request) -> dict[str, str]:
    standard = runtime_of(request).deliveries.standard
    return {p.code: p.name for p in standard.purposes}


def _kinds(request: Request) -> dict[str, str]:
    return {k.code: k.name for k in runtime_of(request).deliveries.standard.deliveries}


@router.get("")
async def listing(
    request: Request,
    found: Handler,
    role: str = "inbound",
    overdue: str = "",
    status: str = "",
    purpose: str = "",
    cursor: str = "",
) -> Response:
    purposes = _purposes(request)
    context: dict[str, Any] = {
        "signed_in": found,
        "roles": ROLES,
        "statuses": STATUSES,
        "kinds": _kinds(request),
        "purposes": purposes,
        "role": role if role in ROLES else "inbound",
        "overdue": overdue == "true",
        "status": status if status in STATUSES else "",
        "purpose": purpose if purpose in purposes else "",
        "deliveries": None,
    }
    if context["purpose"]:
        query = {"role": context["role"], "limit": "50"}
        if context["overdue"]:
            query["overdue"] = "true"
        if context["status"]:
            query["status"] = context["status"]
        if cursor:
            query["cursor"] = cursor
        service: DeliveryService = runtime_of(request).deliveries

        async def work(who: Principal, headers: ExchangeHeaders, draft: EntryDraft) -> Answer:
            return queries.list_deliveries(service, query, who, draft)

        page = await _handled(request, found, context["purpose"], "list", work)
        now = service.clock()
        for d in page["deliveries"]:
            due = datetime.fromisoformat(d["due_at"]) if d["due_at"] else None
            d["overdue"] = is_overdue(d["status"], due, now)
        context["deliveries"] = page["deliveries"]
        context["next_cursor"] = page["next_cursor"]
    return render(request, "deliveries.html", context)


@router.get("/{delivery_id}")
async def one(request: Request, found: Handler, delivery_id: str, purpose: str = "") -> Response:
    purposes = _purposes(request)
    if purpose not in purposes:
        raise ConsoleRefusal(422, "请选择用途", "查阅送达须说明用途（记入审计日志）。")
    service: DeliveryService = runtime_of(request).deliveries

    async def work(who: Principal, headers: ExchangeHeaders, draft: EntryDraft) -> Answer:
        return queries.get_delivery(service, delivery_id, who, draft)

    delivery = await _handled(request, found, purpose, "read", work)
    context = {
        "signed_in": found,
        "d": delivery,
        "statuses": STATUSES,
        "events": EVENTS,
        "kinds": _kinds(request),
        "purpose": purpose,
        "purposes": purposes,
    }
    return render(request, "delivery.html", context)


async def oversight_figures(request: Request, found: SignedIn) -> list[dict[str, Any]]:
    """Every agency's delivery figures for a regulator (``audit:read``), through the delivery
    service's audited path (purpose ``OVERSIGHT``), as ``GET /v1/deliveries/stats`` answers an
    agency its own."""
    service: DeliveryService = runtime_of(request).deliveries

    async def work(who: Principal, headers: ExchangeHeaders, draft: EntryDraft) -> Answer:
        draft.action = {"event": "stats", "agencies": "all"}
        with session_scope(service.factory) as session:
            rows = delivery_stats(session, now=service.clock(), agencies=None)
        return Answer(200, {"figures": rows})

    document = await _handled(request, found, OVERSIGHT, "stats", work)
    figures: list[dict[str, Any]] = document["figures"]
    names = _kinds(request)
    for row in figures:
        row["kind_name"] = names.get(row["kind"], row["kind"])
    return figures


def overdue_chart(figures: list[dict[str, Any]]) -> dict[str, Any]:
    """ECharts data: overdue deliveries per recipient agency, one stacked series per kind."""
    agencies = sorted({str(f["agency"]) for f in figures})
    kinds = sorted({str(f["kind_name"]) for f in figures if f["overdue"]})
    series = []
    for kind in kinds:
        points = {str(f["agency"]): int(f["overdue"]) for f in figures if f["kind_name"] == kind}
        series.append({"name": kind, "values": [points.get(a, 0) for a in agencies]})
    return {"labels": agencies, "series": series}
