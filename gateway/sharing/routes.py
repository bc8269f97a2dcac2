"""Conditional-sharing routes (``/v1/sharing``).

Applicants hold ``exchange``; the owning agency's reviewers hold ``sharing:review`` (never
with ``exchange``); regulators (``audit:read``) see every application and every agency's
statistics, a reviewer its own agency's. Every read and every step is an audit entry of kind
``sharing`` written before the answer (``gateway.sharing.reads``), and so is every refusal of
an identified caller; answers and problems carry ``X-Audit-Index``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from gateway.audit.entry import AuditKind
from gateway.audit.refusals import RefusalAuditedRoute, route_template
from gateway.auth.deps import RuntimeDep, require_any_scope, require_scope
from gateway.auth.scopes import Scope, never_combined
from gateway.auth.tokens import Principal
from gateway.errors import Forbidden, GatewayError, ServiceUnavailable, problem_responses
from gateway.exchange.request import parse_headers
from gateway.responses import JSONResponse
from gateway.runtime import Runtime
from gateway.sharing import reads
from gateway.sharing.documents import ApplyBody, ApproveBody, RefuseBody, RevokeBody
from gateway.sharing.service import SharingService

__all__ = ["router"]


class SharingAuditedRoute(RefusalAuditedRoute):
    audit_kind: ClassVar[AuditKind] = AuditKind.SHARING

    def refusal_action(self, request: Request, exc: GatewayError) -> dict[str, Any]:
        action: dict[str, Any] = {
            "action": "refused",
            "route": route_template(request),
            "problem": exc.slug,
        }
        errors = exc.extra.get("errors")
        if isinstance(errors, list):
            action["fields"] = [
                e["field"] for e in errors[:64] if isinstance(e, dict) and "field" in e
            ]
        return action


router = APIRouter(
    prefix="/v1/sharing", tags=["conditional sharing"], route_class=SharingAuditedRoute
)

_PROBLEMS = problem_responses(
    {
        400: "missing or malformed X-Purpose, X-Operator-Id or X-Case-Number",
        401: "invalid token",
        403: "missing scope, not the owning agency's reviewer, self-review, or denied by policy",
        404: "no such application (or case, or resource) available to you",
        409: "the application is not pending / the grant is not live",
        422: "invalid body; a field that is 不予共享, on the negative list, or already released "
        "(errors[].field names it)",
        429: "rate limited",
        503: "the audit log cannot record the step; nothing changed",
    }
)
AppId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")]


def _unmixed(principal: Principal) -> Principal:
    if never_combined(principal.scopes):
        raise Forbidden("a client holding exchange and sharing:review together is refused")
    return principal


async def _applicant(
    principal: Annotated[Principal, Depends(require_scope(Scope.EXCHANGE))],
) -> Principal:
    return _unmixed(principal)


async def _reviewer(
    principal: Annotated[Principal, Depends(require_scope(Scope.SHARING_REVIEW))],
) -> Principal:
    return _unmixed(principal)


async def _reader(
    principal: Annotated[
        Principal,
        Depends(require_any_scope(Scope.EXCHANGE, Scope.SHARING_REVIEW, Scope.AUDIT_READ)),
    ],
) -> Principal:
    return _unmixed(principal)


async def _overseer(
    principal: Annotated[
        Principal, Depends(require_any_scope(Scope.AUDIT_READ, Scope.SHARING_REVIEW))
    ],
) -> Principal:
    return _unmixed(principal)


Applicant = Annotated[Principal, Depends(_applicant)]
Reviewer = Annotated[Principal, Depends(_reviewer)]
Reader = Annotated[Principal, Depends(_reader)]
Overseer = Annotated[Principal, Depends(_overseer)]


def _service(runtime: Runtime) -> SharingService:
    if runtime.sharing is None:
        raise ServiceUnavailable("conditional sharing is not running on this worker")
    return runtime.sharing


@router.post(
    "/applications", status_code=201, summary="Apply for 有条件 fields", responses=_PROBLEMS
)
async def apply(
    request: Request, runtime: RuntimeDep, caller: Applicant, body: ApplyBody
) -> Response:
    service = _service(runtime)
    headers = parse_headers(request.headers, service.standard)
    document, index = await service.apply(caller, headers, body)
    return JSONResponse(document, status_code=201, headers={"X-Audit-Index": str(index)})


@router.get("/applications", summary="Applications: mine, or to review", responses=_PROBLEMS)
async def list_applications(
    runtime: RuntimeDep,
    caller: Reader,
    role: Literal["mine", "review"],
    status: Annotated[
        Literal["pending", "approved", "refused", "revoked", "expired", "overdue"] | None,
        Query(),
    ] = None,
) -> Response:
    document, index = await reads.list_applications(_service(runtime), caller, role, status)
    return JSONResponse(document, headers={"X-Audit-Index": str(index)})


@router.get("/applications/{app_id}", summary="One application", responses=_PROBLEMS)
async def get_application(runtime: RuntimeDep, caller: Reader, app_id: AppId) -> Response:
    document, index = await reads.read_application(_service(runtime), caller, app_id)
    return JSONResponse(document, headers={"X-Audit-Index": str(index)})


@router.post("/applications/{app_id}/approve", summary="Approve: a grant", responses=_PROBLEMS)
async def approve(
    runtime: RuntimeDep, caller: Reviewer, app_id: AppId, body: ApproveBody
) -> dict[str, Any]:
    return await _service(runtime).approve(caller, app_id, body.comment, body.days)


@router.post("/applications/{app_id}/refuse", summary="Refuse, with reasons", responses=_PROBLEMS)
async def refuse(
    runtime: RuntimeDep, caller: Reviewer, app_id: AppId, body: RefuseBody
) -> dict[str, Any]:
    return await _service(runtime).refuse(caller, app_id, body.reason)


@router.post("/applications/{app_id}/revoke", summary="End the grant now", responses=_PROBLEMS)
async def revoke(
    runtime: RuntimeDep, caller: Reviewer, app_id: AppId, body: RevokeBody | None = None
) -> dict[str, Any]:
    return await _service(runtime).revoke(caller, app_id, body.reason if body else "")


@router.get(
    "/stats",
    summary="Per owning agency (a reviewer: its own): counts, answer times, overdue, refusals",
    responses=_PROBLEMS,
)
async def stats(runtime: RuntimeDep, caller: Overseer) -> Response:
    document, index = await reads.read_stats(_service(runtime), caller)
    return JSONResponse(document, headers={"X-Audit-Index": str(index)})
