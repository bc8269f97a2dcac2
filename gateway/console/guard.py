"""Who may open a console page: a live session, the page's scope, and a CSRF token on every
form. Refusals are pages in Chinese (403, 401 …), and every one of them is audited as the API
audits its refusals: a signed-in person's is an entry of its own (kind of the page's area,
``X-Audit-Index`` on the page), an anonymous one is counted in the aggregated entries of
anonymous refusals. A :class:`ConsoleRefusal` raised anywhere is recorded by its handler
unless it says it was recorded already (:func:`refuse`, or a service that wrote its entry)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import cache
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.audit.entry import AuditKind
from gateway.audit.refusals import record_refusal, route_template, source_address
from gateway.auth.scopes import Scope
from gateway.console.sessions import SESSION_COOKIE, SignedIn, csrf_matches
from gateway.console.templating import render
from gateway.errors import Forbidden, GatewayError, ServiceUnavailable
from gateway.runtime import runtime_of

__all__ = [
    "ConsoleRefusal",
    "SignInRequired",
    "audit_kind_of",
    "checked_form",
    "install_console_handlers",
    "problem_of",
    "record_console_refusal",
    "refuse",
    "requires",
    "signed_in",
]

SCOPE_NAMES = {
    Scope.POLICY_ADMIN: "权限清单管理（policy:admin）",
    Scope.AUDIT_READ: "审计查询（audit:read）",
    Scope.SHARING_REVIEW: "共享审核（sharing:review）",
}


class SignInRequired(Exception):
    """No live session: the page sends the browser to sign in."""


class ConsoleRefusal(Exception):
    """A refusal shown as a page. ``audited``: its entry was written already (else the handler
    writes it)."""

    def __init__(
        self,
        status: int,
        heading: str,
        message: str,
        headers: Mapping[str, str] = {},
        *,
        audited: bool = False,
    ):
        super().__init__(message)
        self.status = status
        self.heading = heading
        self.message = message
        self.headers = dict(headers)
        self.audited = audited


_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("invalid-credentials", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    409: ("conflict", "Conflict"),
    422: ("validation-error", "Invalid request"),
    429: ("rate-limited", "Too many requests"),
}


@cache
def _problem_class(status: int) -> type[GatewayError]:
    slug, title = _SLUGS.get(status, ("refused", "Refused"))
    attributes = {"status": status, "slug": slug, "title": title}
    return type(f"ConsoleRefused{status}", (GatewayError,), attributes)


def problem_of(status: int, detail: str) -> GatewayError:
    """The problem a console refusal is recorded as (its status, the API's slug for it)."""
    if status == 503:
        return ServiceUnavailable(detail)
    return _problem_class(status)(detail)


def audit_kind_of(request: Request) -> AuditKind:
    """The kind of the page's area (set by :func:`requires`); ``access`` elsewhere."""
    kind = getattr(request.state, "console_audit_kind", None)
    return kind if isinstance(kind, AuditKind) else AuditKind.ACCESS


async def record_console_refusal(request: Request, status: int, detail: str) -> dict[str, str]:
    """Record a refusal as the API does: an entry for a signed-in person (the headers to add:
    ``X-Audit-Index``), a count among the anonymous refusals otherwise. ServiceUnavailable
    when the audit log cannot record it (fail closed)."""
    problem = problem_of(status, detail)
    if getattr(request.state, "client_id", None) is None:
        runtime_of(request).anonymous.count(
            source_address(request), route_template(request), status
        )
        return {}
    action = {"action": "refused", "route": route_template(request), "problem": problem.slug}
    await record_refusal(request, problem, audit_kind_of(request), action)
    return problem.headers


async def signed_in(request: Request) -> SignedIn:
    runtime = runtime_of(request)
    assert runtime.console is not None
    found = await run_in_threadpool(
        runtime.console.sessions.find, request.cookies.get(SESSION_COOKIE)
    )
    if found is None:
        raise SignInRequired
    # What record_refusal and the access log name: the person, under the user: prefix.
    request.state.client_id = found.user.actor_id
    request.state.agency = found.user.agency
    return found


async def refuse(request: Request, exc: GatewayError, kind: AuditKind, heading: str) -> None:
    """Record a signed-in person's refusal as the API records its callers' and raise it as a
    page (the entry's index on ``X-Audit-Index``)."""
    await record_refusal(
        request,
        exc,
        kind,
        {"action": "refused", "route": route_template(request), "problem": exc.slug},
    )
    raise ConsoleRefusal(exc.status, heading, exc.detail, exc.headers, audited=True)


def requires(scope: Scope, kind: AuditKind) -> Callable[[Request], Awaitable[SignedIn]]:
    async def dependency(request: Request) -> SignedIn:
        request.state.console_audit_kind = kind
        found = await signed_in(request)
        if scope not in found.user.scopes:
            await refuse(
                request,
                Forbidden(f"本页面需要 {SCOPE_NAMES.get(scope, scope)} 权限"),
                kind,
                "无权访问",
            )
        return found

    return dependency


async def checked_form(request: Request, found: SignedIn) -> FormData:
    """The posted form, if it carries this session's CSRF token (synchronizer pattern)."""
    form = await request.form()
    given = form.get("csrf_token") or request.headers.get("x-csrf-token")
    if not isinstance(given, str) or not csrf_matches(found.csrf_token, given):
        raise ConsoleRefusal(403, "请求被拒绝", "表单校验码（CSRF）无效或缺失：请刷新页面后重试。")
    return form


def install_console_handlers(app: FastAPI) -> None:
    async def on_sign_in(request: Request, exc: Exception) -> Response:
        # As an API request without a token: counted with the anonymous refusals.
        runtime_of(request).anonymous.count(source_address(request), route_template(request), 401)
        return RedirectResponse("/console/signin", status_code=303)

    async def on_refusal(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ConsoleRefusal)
        if not exc.audited:
            exc.audited = True
            try:
                exc.headers.update(await record_console_refusal(request, exc.status, exc.message))
            except ServiceUnavailable:
                exc = ConsoleRefusal(503, "暂不可用", "审计日志不可用，请求未执行。", audited=True)
        context: dict[str, Any] = {
            "heading": exc.heading,
            "message": exc.message,
            "link": "/console/",
            "link_text": "返回首页",
        }
        return render(request, "message.html", context, status=exc.status, headers=exc.headers)

    app.add_exception_handler(SignInRequired, on_sign_in)
    app.add_exception_handler(ConsoleRefusal, on_refusal)
