"""The version history with who did what, emergency freeze, and rollback candidates (scope
``policy:admin``), through the service the API's ``/rollback`` and ``/freeze`` call.

A freeze puts the deny-all set in force at once (one person may stop all sharing); lifting it
is a rollback: a candidate that puts an earlier approved version back, which a *second*
administrator approves on its version page, as any candidate.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from gateway.console.guard import checked_form
from gateway.console.policy_pages import Admin, actor_of, admin_of, refused, version_id_of
from gateway.console.templating import render
from gateway.errors import GatewayError, UnprocessableContent

__all__ = ["router"]

router = APIRouter(prefix="/console/policies", include_in_schema=False)

# Only reviewed versions come back (an import from files was never approved by a person).
RESTORABLE = {"approved"}


@router.get("/history")
async def history(request: Request, found: Admin) -> Response:
    admin = admin_of(request)
    await admin.record_read(actor_of(found), "list_versions", {})
    listing = await run_in_threadpool(admin.list_versions)
    versions = sorted(listing["versions"], key=lambda v: v["created_at"], reverse=True)
    context = {
        "signed_in": found,
        "versions": versions,
        "publications": listing["publications"],
        "in_force": listing["current"],
        "restorable": RESTORABLE,
    }
    return render(request, "history.html", context)


def _comment(form: Any) -> str | None:
    comment = str(form.get("comment", "")).strip()
    return comment if 1 <= len(comment) <= 2000 else None


def _done(request: Request, found: Admin, heading: str, message: str, link: str) -> Response:
    context = {
        "signed_in": found,
        "heading": heading,
        "message": message,
        "link": link,
        "link_text": "查看",
    }
    return render(request, "message.html", context)


def _refusal_page(request: Request, found: Admin, problem: dict[str, Any]) -> Response:
    context = {
        "signed_in": found,
        "heading": "操作被拒绝",
        "message": problem["detail"],
        "link": "/console/policies/history",
        "link_text": "返回版本历史",
    }
    return render(
        request, "message.html", context, status=problem["status"], headers=problem.get("headers")
    )


@router.post("/freeze")
async def freeze(request: Request, found: Admin) -> Response:
    form = await checked_form(request, found)
    comment = _comment(form)
    if comment is None:
        invalid = UnprocessableContent("请填写冻结原因（1-2000 字）。", [])
        return _refusal_page(request, found, await refused(request, invalid))
    try:
        result = await admin_of(request).freeze(actor_of(found), comment)
    except GatewayError as exc:
        return _refusal_page(request, found, await refused(request, exc))
    return _done(
        request,
        found,
        "已紧急冻结",
        f"拒绝一切的清单已生效（审计记录 #{result['audit_index']}）。解除冻结须提出回滚，"
        "并由另一位管理员批准。",
        "/console/policies/history",
    )


@router.post("/rollback")
async def rollback(request: Request, found: Admin) -> Response:
    form = await checked_form(request, found)
    version_id = version_id_of(str(form.get("version_id", "")))
    comment = _comment(form)
    if comment is None:
        invalid = UnprocessableContent("请填写回滚原因（1-2000 字）。", [])
        return _refusal_page(request, found, await refused(request, invalid))
    try:
        result = await admin_of(request).rollback(actor_of(found), version_id, comment)
    except GatewayError as exc:
        return _refusal_page(request, found, await refused(request, exc))
    return _done(
        request,
        found,
        "已提出回滚",
        f"恢复版本 {version_id[:19]}… 的提议已提交，须由另一位管理员在版本页面批准"
        f"（审计记录 #{result['audit_index']}）。",
        f"/console/policies/versions/{version_id}",
    )
