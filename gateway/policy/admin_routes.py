"""Administration API of the lists (scope ``policy:admin``).

Every refusal of an identified caller (403 for a missing scope or maker-checker, 404, 409,
422, 429) is an audit entry of kind ``policy_admin`` too, whose problem carries
``X-Audit-Index``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from fastapi import APIRouter, Body, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from gateway.audit.entry import AuditKind
from gateway.audit.refusals import RefusalAuditedRoute, route_template
from gateway.auth.deps import PolicyAdmin, RuntimeDep
from gateway.errors import GatewayError, UnprocessableContent, problem_responses
from gateway.policy.admin import Actor, PolicyAdministration
from gateway.policy.render import request_from_json, request_to_json, subjects_from_json
from gateway.standard import Standard

__all__ = ["ExplainBody", "explain_as", "router"]


class AuditedAdminRoute(RefusalAuditedRoute):
    audit_kind: ClassVar[AuditKind] = AuditKind.POLICY_ADMIN

    def refusal_action(self, request: Request, exc: GatewayError) -> dict[str, Any]:
        return {"action": "refused", "route": route_template(request), "problem": exc.slug}


router = APIRouter(
    prefix="/v1/admin/policies", tags=["policy administration"], route_class=AuditedAdminRoute
)

VersionId = Annotated[str, Path(pattern=r"^sha256:[0-9a-f]{64}$")]

_REFUSAL_RECEIPT: dict[str, Any] = {
    "X-Audit-Index": {
        "description": "the refusal's audit entry (an identified caller's refusals are entries)",
        "schema": {"type": "integer", "minimum": 0},
    }
}
_PROBLEMS = {
    **problem_responses(
        {
            400: "a body that is not UTF-8 JSON",
            403: "missing scope, or reviewing your own candidate (maker-checker)",
            404: "no such version",
            409: "not a candidate / already in force / exists already / a proposal is pending; "
            "/problems/stale-candidate: its base is no longer the version in force",
            422: "invalid candidate (file:line:column problems), failing policy tests, or the "
            "evaluation exceeded its CPU or memory limit",
            429: "rate limited",
        },
        headers=_REFUSAL_RECEIPT,
    ),
    **problem_responses(
        {
            401: "invalid token",
            503: "the audit log cannot record the change; nothing changed",
        }
    ),
}


# Comments go to the database and the audit log: no control characters (NUL breaks
# PostgreSQL text), but line breaks and tabs are fine.
_PRINTABLE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


class CandidateBody(BaseModel):
    comment: str = Field(min_length=1, max_length=2000, pattern=_PRINTABLE)
    files: dict[str, str | None] = Field(
        description="bundle path → YAML text (permissions/NAME.yaml, negative_list/NAME.yaml, "
        "tests/NAME.yaml); with base, null deletes a file"
    )
    base: str | None = Field(
        default=None, description='"current" or a version id whose files the candidate edits'
    )


class ReviewBody(BaseModel):
    comment: str = Field(min_length=1, max_length=2000, pattern=_PRINTABLE)


class RollbackBody(BaseModel):
    version_id: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    comment: str = Field(min_length=1, max_length=2000, pattern=_PRINTABLE)


class FreezeBody(BaseModel):
    comment: str = Field(min_length=1, max_length=2000, pattern=_PRINTABLE)


class ExplainBody(BaseModel):
    request: dict[str, Any]
    records: list[dict[str, Any]] = Field(default_factory=list, max_length=1000)
    # The persons and cases the records refer to: {"person": [...], "case_persons": [...]}.
    subjects: dict[str, list[dict[str, Any]]] | None = None
    version: str = "current"


def _actor(caller: Any) -> Actor:
    return Actor(caller.client_id, caller.agency)


@router.get("/versions", summary="Versions, publications and the set in force", responses=_PROBLEMS)
async def list_versions(runtime: RuntimeDep, caller: PolicyAdmin) -> dict[str, Any]:
    await runtime.policy_admin.record_read(_actor(caller), "list_versions", {})
    return await run_in_threadpool(runtime.policy_admin.list_versions)


@router.get("/versions/{version_id}", summary="One version with its files", responses=_PROBLEMS)
async def get_version(
    runtime: RuntimeDep, caller: PolicyAdmin, version_id: VersionId
) -> dict[str, Any]:
    await runtime.policy_admin.record_read(
        _actor(caller), "get_version", {"version_id": version_id}
    )
    return await run_in_threadpool(runtime.policy_admin.get_version, version_id)


@router.get(
    "/versions/{version_id}/diff",
    summary="Rule changes against another version",
    responses=_PROBLEMS,
)
async def diff_version(
    runtime: RuntimeDep,
    caller: PolicyAdmin,
    version_id: VersionId,
    against: Annotated[str, Query(pattern=r"^(current|sha256:[0-9a-f]{64})$")] = "current",
) -> dict[str, Any]:
    await runtime.policy_admin.record_read(
        _actor(caller), "diff", {"version_id": version_id, "against": against}
    )
    return await run_in_threadpool(runtime.policy_admin.diff, version_id, against)


@router.post(
    "/candidates", status_code=201, summary="Submit a candidate policy set", responses=_PROBLEMS
)
async def submit_candidate(
    runtime: RuntimeDep, caller: PolicyAdmin, body: CandidateBody
) -> dict[str, Any]:
    if body.base is None and any(v is None for v in body.files.values()):
        raise UnprocessableContent(
            "null (delete) needs a base", [{"field": "files", "reason": "null without base"}]
        )
    files = (
        {k: v for k, v in body.files.items()}
        if body.base
        else {k: v for k, v in body.files.items() if v is not None}
    )
    return await runtime.policy_admin.submit(_actor(caller), files, body.comment, body.base)


@router.post(
    "/versions/{version_id}/approve",
    summary="Approve and publish (another admin)",
    responses=_PROBLEMS,
)
async def approve(
    runtime: RuntimeDep, caller: PolicyAdmin, version_id: VersionId, body: ReviewBody
) -> dict[str, Any]:
    return await runtime.policy_admin.review(
        _actor(caller), version_id, approve=True, comment=body.comment
    )


@router.post("/versions/{version_id}/reject", summary="Reject a candidate", responses=_PROBLEMS)
async def reject(
    runtime: RuntimeDep, caller: PolicyAdmin, version_id: VersionId, body: ReviewBody
) -> dict[str, Any]:
    return await runtime.policy_admin.review(
        _actor(caller), version_id, approve=False, comment=body.comment
    )


@router.post(
    "/rollback",
    status_code=201,
    summary="Propose an earlier approved version again (a candidate another admin approves)",
    responses=_PROBLEMS,
)
async def rollback(runtime: RuntimeDep, caller: PolicyAdmin, body: RollbackBody) -> dict[str, Any]:
    return await runtime.policy_admin.rollback(_actor(caller), body.version_id, body.comment)


@router.post(
    "/freeze",
    summary="Emergency freeze: the deny-all set in force at once (lifting it needs two people)",
    responses=_PROBLEMS,
)
async def freeze(runtime: RuntimeDep, caller: PolicyAdmin, body: FreezeBody) -> dict[str, Any]:
    return await runtime.policy_admin.freeze(_actor(caller), body.comment)


@router.post("/explain", summary="Dry-run a hypothetical request", responses=_PROBLEMS)
async def explain(
    runtime: RuntimeDep, caller: PolicyAdmin, body: Annotated[ExplainBody, Body()]
) -> dict[str, Any]:
    return await explain_as(runtime.policy_admin, runtime.standard, _actor(caller), body)


async def explain_as(
    admin: PolicyAdministration, standard: Standard, actor: Actor, body: ExplainBody
) -> dict[str, Any]:
    """The dry run, checked and audited: for this route and the web console's page."""
    version_id = admin.holder.current.version if body.version == "current" else body.version
    if body.version != "current":
        await run_in_threadpool(admin.store.version_or_404, version_id)
    try:
        request = request_from_json(body.request, standard)
    except ValueError as exc:
        raise UnprocessableContent(str(exc), [{"field": "request", "reason": str(exc)}]) from exc
    try:
        subjects_from_json(body.subjects, standard, request)
    except ValueError as exc:
        raise UnprocessableContent(str(exc), [{"field": "subjects", "reason": str(exc)}]) from exc
    # The parsed request, not the body: it is all strings (the audit log refuses floats,
    # deep nesting …), so a dry run is never refused for how its JSON was spelled.
    await admin.record_read(
        actor,
        "explain",
        {"version_id": version_id, "request": request_to_json(request)},
    )
    # Evaluated in the isolated process: the version's conditions meet the given records
    # (and the subjects they refer to, checked above for a clear 422).
    return await admin.explain(version_id, body.request, body.records, body.subjects)


@router.post(
    "/versions/{version_id}/impact",
    summary="Replay recent requests against a version",
    responses=_PROBLEMS,
)
async def impact(
    runtime: RuntimeDep,
    caller: PolicyAdmin,
    version_id: VersionId,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> dict[str, Any]:
    await runtime.policy_admin.record_read(
        _actor(caller), "impact", {"version_id": version_id, "limit": limit}
    )
    return await runtime.policy_admin.impact(version_id, limit)
