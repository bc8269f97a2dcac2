"""Signing in and out of the console, and its home page.

``/console/signin`` starts the authorization-code flow with PKCE (RFC 7636): a random state
and code verifier in a short-lived httpOnly cookie, the S256 challenge to
``/oauth/authorize``. ``/console/callback`` checks the state and redeems the code with the
verifier, once, then opens a session (:mod:`gateway.console.sessions`).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from gateway.audit.entry import AuditKind, Decision, EntryDraft
from gateway.audit.writer import AuditUnavailable
from gateway.auth.users import (
    CONSOLE_CLIENT_ID,
    CONSOLE_REDIRECT_PATH,
    USER_PREFIX,
    CodeGrant,
    CodeRefused,
    UserService,
    pkce_challenge,
)
from gateway.console.guard import ConsoleRefusal, checked_form, signed_in
from gateway.console.sessions import SESSION_COOKIE, SignedIn, set_cookie
from gateway.console.templating import render
from gateway.db import session_scope
from gateway.observability.context import current_request_id
from gateway.runtime import Runtime, runtime_of

__all__ = ["router"]

router = APIRouter(prefix="/console", include_in_schema=False)

PKCE_COOKIE = "zf_console_pkce"
SignedInDep = Annotated[SignedIn, Depends(signed_in)]


@router.get("/signin")
async def start_sign_in(request: Request) -> Response:
    runtime = runtime_of(request)
    state = secrets.token_urlsafe(16)
    verifier = secrets.token_urlsafe(48)
    query = urlencode(
        {
            "response_type": "code",
            "client_id": CONSOLE_CLIENT_ID,
            "redirect_uri": runtime.settings.issuer + CONSOLE_REDIRECT_PATH,
            "state": state,
            "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256",
        }
    )
    response = RedirectResponse(f"/oauth/authorize?{query}", status_code=303)
    set_cookie(
        response,
        request,
        runtime.settings,
        PKCE_COOKIE,
        f"{state}.{verifier}",
        max_age=900,
        path=CONSOLE_REDIRECT_PATH,
    )
    return response


def _redeem(runtime: Runtime, code: str, verifier: str) -> CodeGrant | str:
    # The refusal is returned, not raised: the code is marked used either way (committed).
    with session_scope(runtime.session_factory) as db:
        try:
            return UserService(db).redeem_code(
                code,
                client_id=CONSOLE_CLIENT_ID,
                redirect_uri=runtime.settings.issuer + CONSOLE_REDIRECT_PATH,
                code_verifier=verifier,
            )
        except CodeRefused as exc:
            return str(exc)


@router.get("/callback")
async def callback(request: Request) -> Response:
    runtime = runtime_of(request)
    assert runtime.console is not None
    state, _, verifier = request.cookies.get(PKCE_COOKIE, "").partition(".")
    given_state = request.query_params.get("state", "")
    code = request.query_params.get("code", "")
    if not state or not hmac.compare_digest(state.encode(), given_state.encode()):
        raise ConsoleRefusal(400, "登录失败", "登录状态不匹配或已过期，请重新登录。")
    if not code:
        raise ConsoleRefusal(400, "登录失败", "授权服务器未给出授权码，请重新登录。")
    grant = await run_in_threadpool(_redeem, runtime, code[:128], verifier)
    if isinstance(grant, str):
        raise ConsoleRefusal(400, "登录失败", f"授权码无效（{grant}），请重新登录。")
    session_id, _ = await run_in_threadpool(runtime.console.sessions.start, grant.username)
    draft = EntryDraft(
        kind=AuditKind.ACCESS,
        request_id=current_request_id(),
        requester_agency=grant.agency,
        client_id=USER_PREFIX + grant.username,
        decision=Decision.ALLOW,
        status=303,
        action={"action": "console_sign_in", "scopes": sorted(grant.scopes)},
    )
    try:
        await runtime.audit_writer.append(draft)
    except AuditUnavailable:
        raise ConsoleRefusal(503, "暂时无法登录", "审计日志不可用，登录未完成。") from None
    response = RedirectResponse("/console/", status_code=303)
    minutes = runtime.settings.console_session_minutes
    set_cookie(
        response,
        request,
        runtime.settings,
        SESSION_COOKIE,
        session_id,
        max_age=minutes * 60,
        path="/console",
    )
    response.delete_cookie(PKCE_COOKIE, path=CONSOLE_REDIRECT_PATH)
    return response


@router.post("/signout")
async def sign_out(request: Request, found: SignedInDep) -> Response:
    await checked_form(request, found)
    runtime = runtime_of(request)
    assert runtime.console is not None
    # The session ends whatever follows (a sign-out never leaves it open), and the sign-out is
    # an entry as the sign-in is, before the page answers.
    await run_in_threadpool(runtime.console.sessions.end, found.session_hash)
    draft = EntryDraft(
        kind=AuditKind.ACCESS,
        request_id=current_request_id(),
        requester_agency=found.user.agency,
        client_id=found.user.actor_id,
        decision=Decision.ALLOW,
        status=200,
        action={"action": "console_sign_out"},
    )
    try:
        await runtime.audit_writer.append(draft)
    except AuditUnavailable:
        raise ConsoleRefusal(
            503, "会话已结束", "会话已结束，但审计日志暂不可用，未能记录退出。", audited=True
        ) from None
    response = render(
        request,
        "message.html",
        {
            "heading": "已退出登录",
            "message": "会话已结束。",
            "link": "/console/signin",
            "link_text": "重新登录",
        },
    )
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


@router.get("/")
async def home(request: Request, found: SignedInDep) -> Response:
    return render(request, "home.html", {"signed_in": found})
