"""The regulators' audit API. Every query is itself an audit entry: the watchers are watched."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BeforeValidator
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from gateway.audit.alerts import find_alerts
from gateway.audit.cursor import decode_cursor, encode_cursor
from gateway.audit.entry import AuditKind, Decision, EntryDraft
from gateway.audit.refusals import RefusalAuditedRoute
from gateway.audit.repository import EntryFilter
from gateway.audit.schemas import (
    AlertsBody,
    AuditEntryBody,
    ConsistencyProof,
    EntriesPage,
    InclusionProof,
    StatsBody,
)
from gateway.audit.service import STATS_GROUPS
from gateway.audit.writer import AuditUnavailable
from gateway.auth.deps import AuditOrExchange, AuditReader, RuntimeDep
from gateway.auth.scopes import Scope
from gateway.auth.tokens import Principal
from gateway.errors import (
    Forbidden,
    GatewayError,
    NotFound,
    ServiceUnavailable,
    UnprocessableContent,
    problem_responses,
)
from gateway.observability.context import current_request_id
from gateway.responses import JSONResponse
from gateway.runtime import Runtime

__all__ = ["append_query_entry", "entry_filter", "router"]


class AuditedQueryRoute(RefusalAuditedRoute):
    """Refused queries of an identified caller are audit entries too.

    Successful queries record their entry in the endpoint (before the answer leaves).
    Here, a query refused after authentication (bad parameters, out of range, missing
    scope, an expired token) is recorded with its status, and its problem carries
    ``X-Audit-Index``. Anonymous refusals are counted in the aggregated entries
    (gateway/audit/refusals.py).
    """

    audit_kind: ClassVar[AuditKind] = AuditKind.AUDIT_QUERY

    def refusal_action(self, request: Request, exc: GatewayError) -> dict[str, Any]:
        return {"route": request.url.path, "query": str(request.url.query)}


async def append_query_entry(
    request: Request, client_id: str, agency: str | None, status: int, decision: Decision
) -> int:
    runtime: Runtime = request.app.state.runtime
    draft = EntryDraft(
        kind=AuditKind.AUDIT_QUERY,
        request_id=current_request_id(),
        requester_agency=agency,
        client_id=client_id,
        decision=decision,
        status=status,
        action={"route": request.url.path, "query": str(request.url.query)},
    )
    try:
        return await runtime.audit_writer.append(draft)
    except AuditUnavailable as exc:
        raise ServiceUnavailable("the audit log cannot record this query") from exc


router = APIRouter(prefix="/v1/audit", tags=["audit"], route_class=AuditedQueryRoute)

_RECEIPT: dict[str, Any] = {
    "X-Audit-Index": {
        "description": "index of this query's own audit entry",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
}
# Refusals of an authenticated caller are entries too (X-Audit-Index); 401 (no accountable
# caller) and 503 (the log cannot take the entry) are not.
_PROBLEMS: dict[int | str, dict[str, Any]] = {
    **problem_responses(
        {
            400: "out of range (index, tree size, from > to)",
            403: "missing scope",
            404: "no such entry",
            422: "malformed parameter",
            429: "rate limited",
        },
        headers=_RECEIPT,
    ),
    **problem_responses({401: "invalid token", 503: "the audit log cannot record this query"}),
}
_OK: dict[int | str, dict[str, Any]] = {
    200: {"description": "the answer (itself an audit entry)", "headers": _RECEIPT}
}


AgencyCode = Annotated[str | None, Query(pattern=r"^[A-Z]{2}\d{6}$")]
# No NUL: no audit value holds one, and PostgreSQL refuses it in a query parameter.
ShortText = Annotated[str | None, Query(min_length=1, max_length=128, pattern=r"^[^\x00]+$")]


class DecisionName(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    ERROR = "error"
    INVALID = "invalid"


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


class Interval(StrEnum):
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


def _iso_8601_only(value: Any) -> Any:
    # Pydantic would read a bare number as Unix seconds: since=2024 would mean 1970-01-01
    # 00:33:44 and quietly select nearly everything.
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+(\.\d*)?\s*", value):
        raise ValueError("an ISO 8601 date-time with a time zone, not a number")
    return value


Instant = Annotated[datetime | None, BeforeValidator(_iso_8601_only)]


async def entry_filter(  # async: no thread-pool hand-off
    since: Annotated[Instant, Query(description="ISO 8601, inclusive")] = None,
    until: Annotated[Instant, Query(description="ISO 8601, exclusive")] = None,
    requester_agency: AgencyCode = None,
    owner_agency: Annotated[str | None, Query(pattern=r"^[a-z_]{2,32}$")] = None,
    resource: Annotated[str | None, Query(pattern=r"^[a-z_]{2,64}$")] = None,
    case_number: ShortText = None,
    operator_id: ShortText = None,
    purpose: Annotated[str | None, Query(pattern=r"^[A-Z_]{2,64}$")] = None,
    decision: DecisionName | None = None,
    rule_id: ShortText = None,
) -> EntryFilter:
    for name, moment in (("since", since), ("until", until)):
        if moment is None:
            continue
        if moment.tzinfo is None:
            raise UnprocessableContent(
                f"{name} needs a time zone", [{"field": name, "reason": "naive datetime"}]
            )
        try:
            moment.astimezone(UTC)  # what the database is asked: years 1-9999 in UTC
        except OverflowError:
            raise UnprocessableContent(
                f"{name} is out of range", [{"field": name, "reason": "not a year 1-9999 in UTC"}]
            ) from None
    return EntryFilter(
        since=since,
        until=until,
        requester_agency=requester_agency,
        owner_agency=owner_agency,
        resource=resource,
        case_number=case_number,
        operator_id=operator_id,
        purpose=purpose,
        decision=decision.value if decision else None,
        rule_id=rule_id,
    )


Filters = Annotated[EntryFilter, Depends(entry_filter)]


def _b64_hashes(hashes: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode("ascii") for h in hashes]


async def _record_query(
    runtime: Runtime, request: Request, caller: Principal, response: Response
) -> Response:
    """Write the query's own audit entry before answering; 503 if it cannot be written."""
    index = await append_query_entry(
        request, caller.client_id, caller.agency, response.status_code, Decision.ALLOW
    )
    response.headers["X-Audit-Index"] = str(index)
    return response


@router.get(
    "/key",
    summary="The checkpoint verifier key (public)",
    response_class=PlainTextResponse,
    responses=problem_responses({503: "no checkpoint signing key is configured"}),
)
async def verifier_key(runtime: RuntimeDep) -> PlainTextResponse:
    signer = runtime.checkpoint_signer
    if signer is None:
        raise ServiceUnavailable("the checkpoint signing key is not configured")
    return PlainTextResponse(signer.verifier_text() + "\n")


@router.get(
    "/checkpoint",
    summary="The latest signed checkpoint (C2SP tlog-checkpoint)",
    response_class=PlainTextResponse,
    responses={**_OK, **_PROBLEMS},
)
async def latest_checkpoint(
    request: Request, runtime: RuntimeDep, caller: AuditOrExchange
) -> Response:
    note = await run_in_threadpool(runtime.audit_service.latest_checkpoint_note)
    return await _record_query(runtime, request, caller, PlainTextResponse(note))


@router.get(
    "/entries/{index}",
    summary="One entry with its exact leaf bytes",
    response_model=AuditEntryBody,
    responses={**_OK, **_PROBLEMS},
)
async def get_entry(
    request: Request,
    runtime: RuntimeDep,
    caller: AuditReader,
    index: Annotated[int, Path(ge=0, le=2**62)],
) -> Response:
    view = await run_in_threadpool(runtime.audit_service.entry, index)
    return await _record_query(runtime, request, caller, JSONResponse(view.as_json()))


@router.get(
    "/proofs/inclusion",
    summary="RFC 9162 inclusion proof",
    response_model=InclusionProof,
    responses={**_OK, **_PROBLEMS},
)
async def inclusion(
    request: Request,
    runtime: RuntimeDep,
    caller: AuditOrExchange,
    index: Annotated[int, Query(ge=0, le=2**62)],
    tree_size: Annotated[int, Query(ge=1, le=2**62)],
) -> Response:
    if Scope.AUDIT_READ not in caller.scopes:
        # An agency system may check its own receipts, and only those.
        try:
            view = await run_in_threadpool(runtime.audit_service.entry, index)
        except NotFound:
            raise Forbidden("you may fetch proofs of your own entries only") from None
        if view.client_id != caller.client_id:
            raise Forbidden("you may fetch proofs of your own entries only")
    hashes = await run_in_threadpool(runtime.audit_service.inclusion, index, tree_size)
    body = {
        "index": index,
        "tree_size": tree_size,
        "hashes": _b64_hashes(hashes),
    }
    return await _record_query(runtime, request, caller, JSONResponse(body))


@router.get(
    "/proofs/consistency",
    summary="RFC 9162 consistency proof",
    response_model=ConsistencyProof,
    responses={**_OK, **_PROBLEMS},
)
async def consistency(
    request: Request,
    runtime: RuntimeDep,
    caller: AuditReader,
    first: Annotated[int, Query(alias="from", ge=1, le=2**62)],
    second: Annotated[int, Query(alias="to", ge=1, le=2**62)],
) -> Response:
    hashes = await run_in_threadpool(runtime.audit_service.consistency, first, second)
    body = {
        "from": first,
        "to": second,
        "hashes": _b64_hashes(hashes),
    }
    return await _record_query(runtime, request, caller, JSONResponse(body))


@router.get(
    "/entries",
    summary="Entries by filter, in index order",
    response_model=EntriesPage,
    responses={**_OK, **_PROBLEMS},
)
async def list_entries(
    request: Request,
    runtime: RuntimeDep,
    caller: AuditReader,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    after = None
    if cursor is not None:
        after = decode_cursor(cursor, kind="audit").get("a")
        # bool is an int to Python (and True would page from entry 1): refuse it, and bound
        # the index like the path parameters so the database never sees an overflow.
        if not isinstance(after, int) or isinstance(after, bool) or not -1 <= after <= 2**62:
            raise UnprocessableContent("bad cursor", [{"field": "cursor", "reason": "bad index"}])
    views, next_after = await run_in_threadpool(
        lambda: runtime.audit_service.entries(filters, after=after, limit=limit)
    )
    body = {
        "entries": [view.as_json() for view in views],
        "next_cursor": encode_cursor({"k": "audit", "a": next_after})
        if next_after is not None
        else None,
    }
    return await _record_query(runtime, request, caller, JSONResponse(body))


@router.get(
    "/export",
    summary="A filtered range as streamed JSON Lines or CSV",
    response_class=Response,
    responses={
        200: {
            "description": "one entry per line (format=jsonl) or CSV with a header row",
            "headers": _RECEIPT,
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        },
        **_PROBLEMS,
    },
)
async def export(
    request: Request,
    runtime: RuntimeDep,
    caller: AuditReader,
    filters: Filters,
    format: ExportFormat = ExportFormat.JSONL,
) -> Response:
    lines: Iterator[bytes] = runtime.audit_service.export_lines(filters, format.value)
    media = "application/x-ndjson" if format is ExportFormat.JSONL else "text/csv; charset=utf-8"
    response = StreamingResponse(
        iterate_in_threadpool(lines),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="audit.{format.value}"'},
    )
    return await _record_query(runtime, request, caller, response)


@router.get(
    "/stats",
    summary="Counts, denials and latency percentiles",
    response_model=StatsBody,
    responses={**_OK, **_PROBLEMS},
)
async def stats(
    request: Request,
    runtime: RuntimeDep,
    caller: AuditReader,
    filters: Filters,
    group_by: Annotated[str, Query(description="comma-separated: " + ",".join(STATS_GROUPS))] = (
        "requester,owner,resource,decision"
    ),
    interval: Interval | None = None,
) -> Response:
    groups = [g.strip() for g in group_by.split(",") if g.strip()]
    unknown = [g for g in groups if g not in STATS_GROUPS]
    if unknown or len(set(groups)) != len(groups):
        raise UnprocessableContent(
            f"group_by takes distinct names from: {', '.join(STATS_GROUPS)}",
            [{"field": "group_by", "reason": f"unknown or repeated: {unknown or groups}"}],
        )
    rows = await run_in_threadpool(
        runtime.audit_service.stats, filters, groups, interval.value if interval else None
    )
    body = {"group_by": groups, "interval": interval.value if interval else None, "rows": rows}
    return await _record_query(runtime, request, caller, JSONResponse(body))


@router.get(
    "/alerts",
    summary="Callers whose refused or empty-result rate crosses a threshold",
    response_model=AlertsBody,
    responses={**_OK, **_PROBLEMS},
)
async def alerts(
    request: Request,
    runtime: RuntimeDep,
    caller: AuditReader,
    since: Annotated[Instant, Query(description="ISO 8601, inclusive; default: 24 h ago")] = None,
    until: Annotated[Instant, Query(description="ISO 8601, exclusive; default: now")] = None,
    threshold: Annotated[float, Query(ge=0, le=1, description="refused + empty share")] = 0.5,
    min_requests: Annotated[int, Query(ge=1, le=1_000_000)] = 20,
) -> Response:
    window = await entry_filter(since=since, until=until)  # the same checks as every filter
    start = window.since or datetime.now(UTC) - timedelta(hours=24)
    found = await run_in_threadpool(
        lambda: find_alerts(
            runtime.engine,
            since=start,
            until=window.until,
            threshold=threshold,
            min_requests=min_requests,
        )
    )
    body = {
        "since": start.astimezone(UTC).isoformat(),
        "until": window.until.astimezone(UTC).isoformat() if window.until else None,
        "threshold": threshold,
        "min_requests": min_requests,
        "alerts": found,
    }
    return await _record_query(runtime, request, caller, JSONResponse(body))
