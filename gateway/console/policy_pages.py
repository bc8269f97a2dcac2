"""Pages of the policy administrators (scope ``policy:admin``).

Every page calls the service the API routes call (:class:`~gateway.policy.admin.
PolicyAdministration`: ``record_read``, ``submit``, ``review``, ``diff``, ``impact``) with the
person as the actor (``user:NAME``), so reads and changes are audited the same way, and the
maker-checker rule (a second person approves) is the service's, not the page's. A refusal of
the service is recorded as the API records it (kind ``policy_admin``) and shown on the page.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from gateway.audit.entry import AuditKind
from gateway.audit.refusals import record_refusal, route_template
from gateway.auth.scopes import Scope
from gateway.console.guard import ConsoleRefusal, checked_form, requires
from gateway.console.sessions import SignedIn
from gateway.console.templating import render
from gateway.errors import GatewayError, UnprocessableContent
from gateway.policy.admin import Actor, PolicyAdministration
from gateway.runtime import runtime_of

__all__ = ["Admin", "actor_of", "admin_of", "refused", "router", "version_id_of"]

router = APIRouter(prefix="/console/policies", include_in_schema=False)

Admin = Annotated[SignedIn, Depends(requires(Scope.POLICY_ADMIN, AuditKind.POLICY_ADMIN))]
_VERSION = re.compile(r"^sha256:[0-9a-f]{64}$")
_FILE = re.compile(r"^(permissions|negative_list|tests)/[a-z0-9_-]{1,64}\.yaml$")


def actor_of(found: SignedIn) -> Actor:
    return Actor(found.user.actor_id, found.user.agency)


def admin_of(request: Request) -> PolicyAdministration:
    return runtime_of(request).policy_admin


async def refused(request: Request, exc: GatewayError) -> dict[str, Any]:
    """Record the service's refusal as the API route class does; what the page shows."""
    await record_refusal(
        request,
        exc,
        AuditKind.POLICY_ADMIN,
        {"action": "refused", "route": route_template(request), "problem": exc.slug},
    )
    errors = exc.extra.get("errors", []) if isinstance(exc.extra, dict) else []
    return {"status": exc.status, "detail": exc.detail, "errors": errors, "headers": exc.headers}


def version_id_of(value: str) -> str:
    if not _VERSION.fullmatch(value):
        raise ConsoleRefusal(404, "没有这个版本", "版本号的格式应为 sha256:（64 位十六进制）。")
    return value


@router.get("")
async def lists_in_force(request: Request, found: Admin) -> Response:
    admin = admin_of(request)
    engine = admin.holder.current
    await admin.record_read(actor_of(found), "get_version", {"version_id": engine.version})
    await admin.record_read(actor_of(found), "list_versions", {})
    listing = await run_in_threadpool(admin.list_versions)
    policy_set = engine.policy_set
    by_grantee: dict[str, list[Any]] = {}
    for rule in sorted(policy_set.permissions, key=lambda p: (p.resource, p.id)):
        grantee = rule.grantee.agency or rule.grantee.kind or "-"
        by_grantee.setdefault(grantee, []).append(rule)
    pending = [v for v in listing["versions"] if v["status"] == "candidate"]
    context = {
        "signed_in": found,
        "version": engine.version,
        "by_grantee": sorted(by_grantee.items()),
        "negative": policy_set.negative_list,
        "pending": pending,
        "publications": listing["publications"],
    }
    return render(request, "policies.html", context)


@router.get("/rules/{rule_id}")
async def rule_page(request: Request, found: Admin, rule_id: str) -> Response:
    admin = admin_of(request)
    engine = admin.holder.current
    policy_set = engine.policy_set
    rules: dict[str, Any] = {r.id: r for r in policy_set.permissions}
    rules.update({r.id: r for r in policy_set.negative_list})
    rule = rules.get(rule_id)
    if rule is None:
        raise ConsoleRefusal(404, "没有这条规则", f"现行清单中没有规则 {rule_id[:80]}。")
    await admin.record_read(
        actor_of(found), "get_version", {"version_id": engine.version, "rule_id": rule_id}
    )
    location = policy_set.location(rule_id)
    text = rule.model_dump(mode="json", exclude_defaults=True)
    context = {"signed_in": found, "rule": rule, "fields": text, "location": location}
    return render(request, "rule.html", context)


async def _files(request: Request, found: Admin) -> dict[str, str]:
    admin = admin_of(request)
    version = admin.holder.current.version
    files: dict[str, str] = await run_in_threadpool(admin.store.files, version)
    return files


@router.get("/propose")
async def propose_form(request: Request, found: Admin, file: str = "") -> Response:
    admin = admin_of(request)
    await admin.record_read(
        actor_of(found), "get_version", {"version_id": admin.holder.current.version}
    )
    files = await _files(request, found)
    editable = sorted(name for name in files if _FILE.fullmatch(name))
    chosen = file if file in files else (editable[0] if editable else "")
    context = {
        "signed_in": found,
        "files": editable,
        "file": chosen,
        "text": files.get(chosen, ""),
        "comment": "",
    }
    return render(request, "propose.html", context)


@router.post("/propose")
async def propose(request: Request, found: Admin) -> Response:
    form = await checked_form(request, found)
    file, text, comment = (str(form.get(k, "")) for k in ("file", "text", "comment"))
    context: dict[str, Any] = {
        "signed_in": found,
        "files": sorted(n for n in await _files(request, found) if _FILE.fullmatch(n)),
        "file": file,
        "text": text,
        "comment": comment,
    }
    if not _FILE.fullmatch(file) or not 1 <= len(comment) <= 2000:
        invalid = UnprocessableContent(
            "请选择清单文件并填写变更说明（1-2000 字）。",
            [{"field": "file" if not _FILE.fullmatch(file) else "comment", "reason": "invalid"}],
        )
        context["problem"] = await refused(request, invalid)
        context["problem"]["errors"] = []
        return render(request, "propose.html", context, status=422, headers=invalid.headers)
    try:
        result = await admin_of(request).submit(actor_of(found), {file: text}, comment, "current")
    except GatewayError as exc:
        context["problem"] = await refused(request, exc)
        return render(
            request,
            "propose.html",
            context,
            status=exc.status,
            headers=context["problem"]["headers"],
        )
    return render(request, "submitted.html", {"signed_in": found, "result": result}, status=201)


@router.get("/versions/{version_id}")
async def version_page(request: Request, found: Admin, version_id: str) -> Response:
    admin = admin_of(request)
    version_id = version_id_of(version_id)
    actor = actor_of(found)
    await admin.record_read(actor, "get_version", {"version_id": version_id})
    try:
        version = await run_in_threadpool(admin.get_version, version_id)
    except GatewayError as exc:
        raise ConsoleRefusal(exc.status, "无法打开版本", exc.detail) from exc
    await admin.record_read(actor, "diff", {"version_id": version_id, "against": "current"})
    try:
        rule_diff: dict[str, Any] | None = await run_in_threadpool(
            admin.diff, version_id, "current"
        )
    except GatewayError:
        rule_diff = None
    current = await _files(request, found)
    text_diff = _text_diff(current, version["files"])
    context = {
        "signed_in": found,
        "v": version,
        "rule_diff": rule_diff,
        "text_diff": text_diff,
        "in_force": admin.holder.current.version,
        "problem": None,
    }
    return render(request, "version.html", context)


def _text_diff(old: dict[str, str], new: dict[str, str]) -> list[tuple[str, str]]:
    """Unified diff lines with their kind (add, del, hunk, file, same) for the page."""
    lines: list[tuple[str, str]] = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name, ""), new.get(name, "")
        if a == b:
            continue
        for line in difflib.unified_diff(
            a.splitlines(), b.splitlines(), f"现行/{name}", f"候选/{name}", lineterm="", n=2
        ):
            kind = (
                "file"
                if line.startswith(("---", "+++"))
                else "hunk"
                if line.startswith("@@")
                else "add"
                if line.startswith("+")
                else "del"
                if line.startswith("-")
                else "same"
            )
            lines.append((kind, line))
    return lines


@router.post("/versions/{version_id}/review")
async def review(request: Request, found: Admin, version_id: str) -> Response:
    form = await checked_form(request, found)
    version_id = version_id_of(version_id)
    verdict, comment = str(form.get("verdict", "")), str(form.get("comment", ""))
    if verdict not in ("approve", "reject") or not 1 <= len(comment) <= 2000:
        raise ConsoleRefusal(422, "无法审核", "请选择批准或驳回，并填写审核意见（1-2000 字）。")
    try:
        result = await admin_of(request).review(
            actor_of(found), version_id, approve=verdict == "approve", comment=comment
        )
    except GatewayError as exc:
        problem = await refused(request, exc)
        context = {"signed_in": found, "version_id": version_id, "problem": problem}
        return render(
            request, "reviewed.html", context, status=exc.status, headers=problem["headers"]
        )
    return render(request, "reviewed.html", {"signed_in": found, "result": result})


@router.post("/versions/{version_id}/impact")
async def impact(request: Request, found: Admin, version_id: str) -> Response:
    """An htmx fragment: the replay of recent requests against the version, as a table and
    the data of its chart."""
    await checked_form(request, found)
    version_id = version_id_of(version_id)
    admin = admin_of(request)
    await admin.record_read(actor_of(found), "impact", {"version_id": version_id, "limit": 1000})
    try:
        result = await admin.impact(version_id, 1000)
    except GatewayError as exc:
        problem = await refused(request, exc)
        return render(request, "impact.html", {"problem": problem}, status=200)
    counts: dict[str, int] = {}
    for change in result["changes"]:
        key = f"{change['before']['outcome']} → {change['after']['outcome']}"
        counts[key] = counts.get(key, 0) + 1
    return render(request, "impact.html", {"result": result, "counts": sorted(counts.items())})
