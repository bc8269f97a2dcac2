"""The reviewers' conditional-sharing inbox (scope ``sharing:review``): the applications to
the reviewer's agency with their deadlines, and approve or refuse with a reason.

The page calls :mod:`gateway.sharing.reads` (``list_applications``, audited) and
:class:`~gateway.sharing.service.SharingService` (``approve``, ``refuse``) as the API's
``/v1/sharing/applications`` routes do, with the person as the caller
(``user:NAME`` of their agency): the owning-agency and self-review rules are the service's,
and every answer and refusal is an audit entry (kind ``sharing``) as through the API.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from starlette.responses import Response

from gateway.audit.entry import AuditKind
from gateway.audit.refusals import record_refusal, route_template
from gateway.auth.scopes import Scope
from gateway.auth.tokens import Principal
from gateway.console.guard import ConsoleRefusal, checked_form, requires
from gateway.console.sessions import SignedIn
from gateway.console.templating import render
from gateway.errors import GatewayError
from gateway.runtime import runtime_of
from gateway.sharing import reads
from gateway.sharing.documents import ApproveBody, RefuseBody, RevokeBody
from gateway.sharing.service import SharingService

__all__ = ["principal_of", "router"]

router = APIRouter(prefix="/console/sharing", include_in_schema=False)

Reviewer = Annotated[SignedIn, Depends(requires(Scope.SHARING_REVIEW, AuditKind.SHARING))]
_APP_ID = re.compile(r"^[0-9a-f-]{36}$")
STATUSES = {
    "pending": "待审核",
    "overdue": "已超期",
    "approved": "已批准",
    "refused": "已拒绝",
    "revoked": "已撤销",
    "expired": "已到期",
}


def principal_of(found: SignedIn) -> Principal:
    """The person as the sharing service's caller (no token: a console session)."""
    user = found.user
    return Principal(user.actor_id, user.agency, user.scopes, "console", 0, "", user.username)


def _service(request: Request) -> SharingService:
    sharing = runtime_of(request).sharing
    if sharing is None:
        raise ConsoleRefusal(503, "暂不可用", "本工作进程未运行有条件共享服务。")
    return sharing


async def _refused(request: Request, exc: GatewayError) -> Response:
    await record_refusal(
        request,
        exc,
        AuditKind.SHARING,
        {"action": "refused", "route": route_template(request), "problem": exc.slug},
    )
    context = {"heading": "操作被拒绝", "message": exc.detail, "link": "/console/sharing",
               "link_text": "返回待审列表"}  # fmt: skip
    return render(request, "message.html", context, status=exc.status, headers=exc.headers)


@router.get("")
async def inbox(request: Request, found: Reviewer, status: str = "pending") -> Response:
    chosen = status if status in STATUSES else "pending"
    # As GET /v1/sharing/applications?role=review: the listing is an audit entry naming the
    # applications shown, written before the page leaves.
    listing, _ = await reads.list_applications(
        _service(request), principal_of(found), "review", chosen
    )
    context = {
        "signed_in": found,
        "applications": listing["applications"],
        "status": chosen,
        "statuses": STATUSES,
    }
    return render(request, "sharing.html", context)


def _app_id(value: str) -> str:
    if not _APP_ID.fullmatch(value):
        raise ConsoleRefusal(404, "没有这个申请", "申请编号格式不正确。")
    return value


@router.post("/{app_id}/answer")
async def answer(request: Request, found: Reviewer, app_id: str) -> Response:
    form = await checked_form(request, found)
    app_id = _app_id(app_id)
    verdict = str(form.get("verdict", ""))
    service = _service(request)
    try:
        if verdict == "approve":
            body: Any = ApproveBody(
                comment=str(form.get("reason", "")), days=int(str(form.get("days", "0")) or 0)
            )
            result = await service.approve(principal_of(found), app_id, body.comment, body.days)
        elif verdict == "revoke":
            body = RevokeBody(reason=str(form.get("reason", "")))
            result = await service.revoke(principal_of(found), app_id, body.reason)
        elif verdict == "refuse":
            body = RefuseBody(reason=str(form.get("reason", "")))
            result = await service.refuse(principal_of(found), app_id, body.reason)
        else:
            raise ConsoleRefusal(422, "无法审核", "请选择批准或拒绝。")
    except (ValueError, ValidationError):
        raise ConsoleRefusal(
            422, "无法审核", "请填写理由，批准时填写期限（1-366 天，不超过申请的天数）。"
        ) from None
    except GatewayError as exc:
        return await _refused(request, exc)
    label = STATUSES.get(result["status"], result["status"])
    context = {
        "signed_in": found,
        "heading": "已审核",
        "message": f"申请 {app_id} {label}。",
        "link": "/console/sharing",
        "link_text": "返回待审列表",
    }
    return render(request, "message.html", context)
