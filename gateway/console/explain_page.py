"""Explain a hypothetical request (scope ``policy:admin``): the dry run of
``POST /v1/admin/policies/explain``, through the same :func:`~gateway.policy.admin_routes.
explain_as` (checked, audited as a read, evaluated in the isolated process)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from gateway.console.guard import checked_form
from gateway.console.policy_pages import Admin, actor_of, admin_of, refused
from gateway.console.templating import render
from gateway.errors import GatewayError, UnprocessableContent
from gateway.policy.admin_routes import ExplainBody, explain_as
from gateway.runtime import runtime_of

__all__ = ["router"]

router = APIRouter(prefix="/console/policies", include_in_schema=False)

# The example of docs/policies.md: a court's prior-record check of a judgment in another case.
EXAMPLE = {
    "request": {
        "requester_agency": "FY640104",
        "resource": "judgment",
        "purpose": "PRIOR_RECORD_CHECK",
        "case": {
            "case_id": "C-2025-001",
            "handling_agencies": ["FY640104"],
            "secrecy_mark": "NONE",
            "stage": "TRIAL",
        },
        "filters": {"defendant_id": "P-001"},
    },
    "records": [
        {
            "judgment_id": "J-1",
            "case_id": "C-2019-050",
            "defendant_id": "P-001",
            "verdict": "GUILTY",
        }
    ],
}


def _pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


@router.get("/explain")
async def explain_form(request: Request, found: Admin) -> Response:
    context = {
        "signed_in": found,
        "request_text": _pretty(EXAMPLE["request"]),
        "records_text": _pretty(EXAMPLE["records"]),
        "subjects_text": "",
        "version": "current",
    }
    return render(request, "explain.html", context)


@router.post("/explain")
async def explain(request: Request, found: Admin) -> Response:
    form = await checked_form(request, found)
    texts = {k: str(form.get(k, "")) for k in ("request", "records", "subjects", "version")}
    context: dict[str, Any] = {
        "signed_in": found,
        "request_text": texts["request"],
        "records_text": texts["records"],
        "subjects_text": texts["subjects"],
        "version": texts["version"].strip() or "current",
    }
    try:
        body = ExplainBody(
            request=json.loads(texts["request"]),
            records=json.loads(texts["records"] or "[]"),
            subjects=json.loads(texts["subjects"]) if texts["subjects"].strip() else None,
            version=context["version"],
        )
    except (ValueError, ValidationError) as exc:
        reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        invalid = UnprocessableContent(f"JSON 不正确：{reason}", [])
        context["problem"] = await refused(request, invalid)
        return render(request, "explain.html", context, status=422, headers=invalid.headers)
    runtime = runtime_of(request)
    try:
        result = await explain_as(admin_of(request), runtime.standard, actor_of(found), body)
    except GatewayError as exc:
        context["problem"] = await refused(request, exc)
        return render(
            request,
            "explain.html",
            context,
            status=exc.status,
            headers=context["problem"]["headers"],
        )
    context["result"] = _pretty(result)
    return render(request, "explain.html", context)
