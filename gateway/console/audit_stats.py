"""Regulators' statistics (requests per agency and purpose over time, denials, concealments) as
ECharts charts, and the export of a filtered range: the audit service's ``stats`` and
``export_lines``, as ``GET /v1/audit/stats`` and ``/v1/audit/export`` call them, and the same
query entry before anything is answered."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.responses import Response, StreamingResponse

from gateway.audit.alerts import find_alerts
from gateway.audit.entry import AuditKind
from gateway.console.audit_pages import FILTER_NAMES, Regulator, filters_of, record_query
from gateway.console.delivery_pages import overdue_chart, oversight_figures
from gateway.console.guard import refuse
from gateway.console.sharing_pages import principal_of
from gateway.console.templating import render
from gateway.errors import GatewayError, UnprocessableContent
from gateway.runtime import runtime_of
from gateway.sharing import reads

__all__ = ["router"]

_DEFAULT_WINDOW = timedelta(hours=24)

router = APIRouter(prefix="/console/audit", include_in_schema=False)

GROUPS = {"requester": "请求机构", "purpose": "用途", "resource": "资源", "owner": "数据所属机构"}
INTERVALS = {"day": "按日", "hour": "按小时", "month": "按月"}
_MAX_SERIES = 12


def _name(value: object) -> str:
    return "（无）" if value is None else str(value)


def _chart(rows: list[dict[str, Any]], group: str, value: str) -> dict[str, Any]:
    """ECharts data: one series per group value (the busiest first), one point per period."""
    periods = sorted({str(r["period"]) for r in rows})
    totals: dict[str, int] = {}
    for r in rows:
        totals[_name(r[group])] = totals.get(_name(r[group]), 0) + int(r["count"])
    names = sorted(totals, key=lambda n: -totals[n])[:_MAX_SERIES]
    series = []
    for name in names:
        points = {str(r["period"]): int(r[value]) for r in rows if _name(r[group]) == name}
        series.append({"name": name, "values": [points.get(p, 0) for p in periods]})
    return {"labels": periods, "series": series}


@router.get("/stats")
async def stats(request: Request, found: Regulator) -> Response:
    form = {
        k: v for k, v in request.query_params.items() if k in (*FILTER_NAMES, "group", "interval")
    }
    group = form.get("group") or "requester"
    interval = form.get("interval") or "day"
    context: dict[str, Any] = {
        "signed_in": found,
        "form": form,
        "groups": GROUPS,
        "intervals": INTERVALS,
        "group": group,
        "interval": interval,
    }
    try:
        if group not in GROUPS or interval not in INTERVALS:
            raise UnprocessableContent(
                "分组或时间粒度不正确", [{"field": "group", "reason": "unknown"}]
            )
        filters = await filters_of(form)
    except GatewayError as exc:
        await refuse(request, exc, AuditKind.AUDIT_QUERY, "查询条件有误")
        raise
    service = runtime_of(request).audit_service
    rows = await run_in_threadpool(service.stats, filters, [group], interval)
    context["audit_index"] = await record_query(request, found)
    context["rows"] = rows
    context["requests_chart"] = _chart(rows, group, "count")
    context["denials_chart"] = _chart(rows, group, "denied")
    context["concealments_chart"] = _chart(rows, group, "concealed")
    context["export_query"] = {k: v for k, v in form.items() if k in FILTER_NAMES and v}
    sharing = runtime_of(request).sharing
    if sharing is not None:
        # Conditional sharing by owning agency (answers, overdue, refusals), as
        # GET /v1/sharing/stats answers a regulator: every agency, an audit entry of its own.
        context["sharing"], _ = await reads.read_stats(sharing, principal_of(found))
    # Deliveries per recipient agency and kind (overdue ones charted): every agency's, for
    # oversight, through the delivery service's audited path (an entry of kind delivery).
    context["deliveries"] = await oversight_figures(request, found)
    context["overdue_chart"] = overdue_chart(context["deliveries"])
    return render(request, "stats.html", context)


@router.get("/export")
async def export(request: Request, found: Regulator) -> Response:
    form = {k: v for k, v in request.query_params.items() if k in (*FILTER_NAMES, "format")}
    fmt = form.get("format", "csv")
    try:
        if fmt not in ("csv", "jsonl"):
            raise UnprocessableContent(
                "导出格式为 csv 或 jsonl", [{"field": "format", "reason": fmt}]
            )
        filters = await filters_of(form)
    except GatewayError as exc:
        await refuse(request, exc, AuditKind.AUDIT_QUERY, "查询条件有误")
        raise
    lines: Iterator[bytes] = runtime_of(request).audit_service.export_lines(filters, fmt)
    await record_query(request, found)  # before a byte of the answer leaves
    media = "application/x-ndjson" if fmt == "jsonl" else "text/csv; charset=utf-8"
    return StreamingResponse(
        iterate_in_threadpool(lines),
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="audit.{fmt}"',
            "Cache-Control": "no-store",
        },
    )


def _threshold(form: dict[str, str]) -> tuple[float, int]:
    try:
        threshold = float(form.get("threshold") or 0.5)
        min_requests = int(form.get("min_requests") or 20)
    except ValueError:
        threshold, min_requests = -1.0, 0
    if not (0 <= threshold <= 1 and 1 <= min_requests <= 1_000_000):
        raise UnprocessableContent(
            "阈值为 0 到 1，最少请求数为 1 到 1000000",
            [{"field": "threshold", "reason": "out of range"}],
        )
    return threshold, min_requests


@router.get("/alerts")
async def alerts(request: Request, found: Regulator) -> Response:
    """Callers whose refused or empty-result share crosses a threshold (probing), as
    ``GET /v1/audit/alerts`` finds them (default: the last 24 hours)."""
    names = ("since", "until", "threshold", "min_requests")
    form = {k: v for k, v in request.query_params.items() if k in names}
    try:
        threshold, min_requests = _threshold(form)
        window = await filters_of({k: v for k, v in form.items() if k in ("since", "until")})
    except GatewayError as exc:
        await refuse(request, exc, AuditKind.AUDIT_QUERY, "查询条件有误")
        raise
    start = window.since or datetime.now(UTC) - _DEFAULT_WINDOW
    engine = runtime_of(request).engine
    found_alerts = await run_in_threadpool(
        lambda: find_alerts(
            engine,
            since=start,
            until=window.until,
            threshold=threshold,
            min_requests=min_requests,
        )
    )
    context = {
        "signed_in": found,
        "form": form,
        "alerts": found_alerts,
        "since": start,
        "threshold": threshold,
        "min_requests": min_requests,
        "audit_index": await record_query(request, found),
    }
    return render(request, "alerts.html", context)
