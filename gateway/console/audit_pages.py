"""Pages of the regulators (scope ``audit:read``): the audit trail with the API's filters, and
an entry whose inclusion proof the *browser* verifies against the signed checkpoint.

The pages call the audit service the API calls (:class:`~gateway.audit.service.AuditService`)
and write the same query entries (:func:`gateway.audit.routes.append_query_entry`: kind
``audit_query``, the route and query): the watchers are watched here too. The proof page
fetches the leaf, the inclusion proof, the latest signed checkpoint and the verifier key as
JSON; ``static/proof.js`` checks the Ed25519 signature and the RFC 9162 path with WebCrypto,
so a gateway that lied about either would be caught by the regulator's own browser.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from gateway.audit.checkpoint import parse_checkpoint_body
from gateway.audit.cursor import decode_cursor, encode_cursor
from gateway.audit.entry import AuditKind, Decision
from gateway.audit.repository import EntryFilter
from gateway.audit.routes import append_query_entry, entry_filter
from gateway.auth.scopes import Scope
from gateway.console.guard import ConsoleRefusal, refuse, requires
from gateway.console.sessions import SignedIn
from gateway.console.templating import render
from gateway.errors import GatewayError, UnprocessableContent
from gateway.responses import JSONResponse
from gateway.runtime import runtime_of

__all__ = ["FILTER_NAMES", "Regulator", "filters_of", "record_query", "router"]

router = APIRouter(prefix="/console/audit", include_in_schema=False)

Regulator = Annotated[SignedIn, Depends(requires(Scope.AUDIT_READ, AuditKind.AUDIT_QUERY))]
# The console's date-time fields carry no zone: they are Beijing time, as the users read them.
BEIJING = timezone(timedelta(hours=8), "CST")
PAGE_SIZE = 50


class ConsoleFilters(BaseModel):
    """The API's filters (gateway/audit/routes.py ``entry_filter``), as the form sends them."""

    since: datetime | None = None
    until: datetime | None = None
    requester_agency: str | None = Field(default=None, pattern=r"^[A-Z]{2}\d{6}$")
    owner_agency: str | None = Field(default=None, pattern=r"^[a-z_]{2,32}$")
    resource: str | None = Field(default=None, pattern=r"^[a-z_]{2,64}$")
    case_number: str | None = Field(default=None, max_length=128, pattern=r"^[^\x00]+$")
    operator_id: str | None = Field(default=None, max_length=128, pattern=r"^[^\x00]+$")
    purpose: str | None = Field(default=None, pattern=r"^[A-Z_]{2,64}$")
    decision: Decision | None = None
    rule_id: str | None = Field(default=None, max_length=128, pattern=r"^[^\x00]+$")


FILTER_NAMES = list(ConsoleFilters.model_fields)


def _in_beijing(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=BEIJING)
    return moment


async def filters_of(form: dict[str, str]) -> EntryFilter:
    values = {k: v.strip() for k, v in form.items() if k in FILTER_NAMES and v.strip()}
    try:
        parsed = ConsoleFilters.model_validate(values)
    except ValidationError as exc:
        fields = sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]})
        errors = [{"field": f, "reason": "格式不正确"} for f in fields]
        raise UnprocessableContent(f"筛选条件格式不正确：{'、'.join(fields)}", errors) from None
    return await entry_filter(
        since=_in_beijing(parsed.since),
        until=_in_beijing(parsed.until),
        requester_agency=parsed.requester_agency,
        owner_agency=parsed.owner_agency,
        resource=parsed.resource,
        case_number=parsed.case_number,
        operator_id=parsed.operator_id,
        purpose=parsed.purpose,
        decision=parsed.decision,  # type: ignore[arg-type]
        rule_id=parsed.rule_id,
    )


async def record_query(request: Request, found: SignedIn) -> int:
    return await append_query_entry(
        request, found.user.actor_id, found.user.agency, 200, Decision.ALLOW
    )


@router.get("")
async def trail(request: Request, found: Regulator) -> Response:
    form = {k: v for k, v in request.query_params.items() if k in (*FILTER_NAMES, "cursor")}
    context: dict[str, Any] = {"signed_in": found, "form": form, "entries": None}
    if not any(form.get(k) for k in FILTER_NAMES) and "search" not in request.query_params:
        return render(request, "audit.html", context)
    try:
        filters = await filters_of(form)
        after = None
        if form.get("cursor"):
            after = decode_cursor(form["cursor"][:512], kind="audit").get("a")
            if not isinstance(after, int) or isinstance(after, bool) or not -1 <= after <= 2**62:
                raise UnprocessableContent("翻页参数无效", [{"field": "cursor", "reason": "bad"}])
    except GatewayError as exc:
        await refuse(request, exc, AuditKind.AUDIT_QUERY, "查询条件有误")
        raise  # refuse() raises; this keeps mypy informed
    runtime = runtime_of(request)
    views, next_after = await run_in_threadpool(
        lambda: runtime.audit_service.entries(filters, after=after, limit=PAGE_SIZE)
    )
    context["audit_index"] = await record_query(request, found)
    context["entries"] = [v.as_json() for v in views]
    context["export_query"] = {k: v for k, v in form.items() if k in FILTER_NAMES and v}
    if next_after is not None:
        context["next_query"] = {
            **{k: v for k, v in form.items() if k != "cursor"},
            "cursor": encode_cursor({"k": "audit", "a": next_after}),
        }
    return render(request, "audit.html", context)


def _index(value: str) -> int:
    if not value.isdigit() or len(value) > 18:
        raise ConsoleRefusal(404, "没有这条记录", "审计序号应为非负整数。")
    return int(value)


@router.get("/entries/{index}")
async def entry_page(request: Request, found: Regulator, index: str) -> Response:
    number = _index(index)
    runtime = runtime_of(request)
    try:
        view = await run_in_threadpool(runtime.audit_service.entry, number)
    except GatewayError as exc:
        await refuse(request, exc, AuditKind.AUDIT_QUERY, "没有这条记录")
        raise
    await record_query(request, found)
    context = {"signed_in": found, "entry": view.as_json(), "index": number}
    return render(request, "entry.html", context)


@router.get("/entries/{index}/proof")
async def proof(request: Request, found: Regulator, index: str) -> Response:
    """What the browser verifies: the leaf, its inclusion proof up to the latest signed
    checkpoint, that checkpoint and the verifier key."""
    number = _index(index)
    runtime = runtime_of(request)
    signer = runtime.checkpoint_signer
    try:
        view = await run_in_threadpool(runtime.audit_service.entry, number)
        note = await run_in_threadpool(runtime.audit_service.latest_checkpoint_note)
        body = note.split("\n\n", 1)[0] + "\n"
        _, size, _, _ = parse_checkpoint_body(body)
        if number >= size:
            raise UnprocessableContent(
                f"第 {number} 条尚未纳入最新检查点（树大小 {size}），请稍后再试",
                [{"field": "index", "reason": "not checkpointed yet"}],
            )
        hashes = await run_in_threadpool(runtime.audit_service.inclusion, number, size)
    except GatewayError as exc:
        await refuse(request, exc, AuditKind.AUDIT_QUERY, "无法取得证明")
        raise
    await record_query(request, found)
    return JSONResponse(
        {
            "index": number,
            "tree_size": size,
            "leaf": base64.b64encode(view.leaf).decode("ascii"),
            "hashes": [base64.b64encode(h).decode("ascii") for h in hashes],
            "checkpoint": note,
            "verifier_key": signer.verifier_text() if signer else None,
        },
        headers={"Cache-Control": "no-store"},
    )
