"""The authorization endpoint (RFC 6749 §4.1.1) for people: the sign-in page of the web
console, with PKCE S256 required (RFC 7636) and the one built-in public client ``console``.

Sign-in attempts are throttled per source address, per (user name, source address), and per
user name over every address; past that last limit only the password *with* a TOTP code passes,
so nobody can lock a user out by guessing wrong in their name (docs/console.md, "Sign-in
throttling"). A person with ``policy:admin`` signs in only with TOTP enrolled
(``GATEWAY_CONSOLE_ADMIN_TOTP_REQUIRED``, default true). Failures are counted in aggregated
audit entries as failed token requests are
(:class:`gateway.audit.aggregate.FailedSignIns`). One message answers every failure, so the
page does not tell which user names exist. The form carries a CSRF token (double-submit: a
cookie and a field that must match).

The token endpoint stays client-credentials only: the console redeems its code in-process
(:mod:`gateway.console.pages`) and opens a console session, never an API token.
"""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from gateway.audit.refusals import route_template, source_address
from gateway.auth.passwords import TokenEndpointBusy
from gateway.auth.scopes import Scope
from gateway.auth.totp import verify_totp
from gateway.auth.users import (
    CONSOLE_CLIENT_ID,
    CONSOLE_REDIRECT_PATH,
    USER_PREFIX,
    UserInfo,
    UserService,
    user_info,
)
from gateway.console.sessions import csrf_matches, set_cookie
from gateway.console.templating import render
from gateway.db import session_scope
from gateway.runtime import Runtime, runtime_of

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

SIGNIN_CSRF_COOKIE = "zf_signin_csrf"
_FAILED = "用户名、密码或动态口令不正确。"
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_STATE = re.compile(r"^[\x21-\x7e]{1,256}$")
_PARAMS = ("response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge")


def _redirect_uri(runtime: Runtime) -> str:
    return runtime.settings.issuer + CONSOLE_REDIRECT_PATH


def _count_refusal(request: Request, runtime: Runtime, status: int) -> None:
    """A refused request of nobody yet identified: counted as the API's anonymous refusals."""
    runtime.anonymous.count(source_address(request), route_template(request), status)


def _check_params(request: Request, runtime: Runtime, params: dict[str, str]) -> Response | None:
    """Refuse a request that is not the console's; errors the client may see go back to it."""
    if params.get("client_id") != CONSOLE_CLIENT_ID or params.get("redirect_uri") != _redirect_uri(
        runtime
    ):
        # RFC 6749 §4.1.2.1: never redirect to an unverified URI.
        context = {"heading": "无效的登录请求", "message": "登录请求的客户端或回调地址无效。"}
        _count_refusal(request, runtime, 400)
        return render(request, "message.html", context, status=400)
    error = None
    if params.get("response_type") != "code":
        error = "unsupported_response_type"
    elif params.get("code_challenge_method") != "S256" or not _CHALLENGE.fullmatch(
        params.get("code_challenge", "")
    ):
        error = "invalid_request"  # PKCE S256 is required (RFC 7636 §4.4.1)
    elif not _STATE.fullmatch(params.get("state", "")):
        error = "invalid_request"
    if error is None:
        return None
    _count_refusal(request, runtime, 303)
    query = urlencode({"error": error, "state": params.get("state", "")})
    return RedirectResponse(f"{params['redirect_uri']}?{query}", status_code=303)


def _form_params(source: Any) -> dict[str, str]:
    keys = (*_PARAMS, "code_challenge_method")
    return {key: str(source.get(key, "")) for key in keys}


def _signin_page(
    request: Request,
    runtime: Runtime,
    params: dict[str, str],
    *,
    status: int = 200,
    error: str | None = None,
    username: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(
        request,
        "signin.html",
        {"params": params, "csrf_token": token, "error": error, "username": username},
        status=status,
        headers=headers,
    )
    set_cookie(
        response,
        request,
        runtime.settings,
        SIGNIN_CSRF_COOKIE,
        token,
        max_age=900,
        path="/oauth/authorize",
    )
    return response


@router.get("/oauth/authorize")
async def authorize_page(request: Request) -> Response:
    runtime = runtime_of(request)
    params = _form_params(request.query_params)
    refused = _check_params(request, runtime, params)
    return refused or _signin_page(request, runtime, params)


def _load_user(runtime: Runtime, username: str) -> tuple[UserInfo, str] | None:
    with session_scope(runtime.session_factory) as db:
        row = UserService(db).get(username)
        if row is None or row.disabled:
            return None
        return user_info(row), row.password_hash


def _second_factor(runtime: Runtime, username: str, code: str) -> bool:
    # Read, then record the step in a transaction of its own. On SQLite (WAL) a transaction
    # that reads and then writes fails at once (SQLITE_BUSY, not after the busy timeout) when
    # another connection committed in between, and the audit writer commits all the time:
    # such a sign-in answered 503. The conditional UPDATE (a later step only) is what keeps a
    # code single-use, whatever was read.
    with session_scope(runtime.session_factory) as db:
        row = UserService(db).get(username)
        if row is None or row.totp_secret is None:
            return row is not None
        secret, last_step = row.totp_secret, row.totp_last_step
    step = verify_totp(secret, code, last_step=last_step)
    if step is None:
        return False
    with session_scope(runtime.session_factory) as db:
        return UserService(db).accept_totp_step(username, step)


def _issue(runtime: Runtime, user: UserInfo, params: dict[str, str]) -> str:
    # The console's session holds the user's scopes (read from the user at each request), so
    # the code carries exactly those: a ``scope`` parameter is not honoured (RFC 6749 §3.3
    # lets the server ignore it), and the sign-in's audit entry names what the session holds.
    # A narrowed code would have been recorded as narrowed while the session was not.
    scopes = sorted(user.scopes)
    with session_scope(runtime.session_factory) as db:
        return UserService(db).issue_code(
            client_id=CONSOLE_CLIENT_ID,
            username=user.username,
            redirect_uri=params["redirect_uri"],
            code_challenge=params["code_challenge"],
            scopes=scopes,
        )


@router.post("/oauth/authorize")
async def sign_in(request: Request) -> Response:
    runtime = runtime_of(request)
    settings = runtime.settings
    assert runtime.console is not None
    failures = runtime.console.sign_in_failures
    form = await request.form()
    params = _form_params(form)
    refused = _check_params(request, runtime, params)
    if refused is not None:
        return refused
    given = form.get("csrf_token")
    if not isinstance(given, str) or not csrf_matches(
        request.cookies.get(SIGNIN_CSRF_COOKIE, ""), given
    ):
        _count_refusal(request, runtime, 403)
        return _signin_page(
            request, runtime, params, status=403, error="表单已过期，请重新输入并提交。"
        )
    username = str(form.get("username", ""))[:48].strip()
    password = str(form.get("password", ""))[:256]
    source = source_address(request)
    claimed = USER_PREFIX + username if username else None

    def failed(outcome: str, status: int, message: str, **kw: Any) -> Response:
        known = username in runtime.console.agencies if runtime.console else False
        failures.count(claimed, known, source, outcome)
        return _signin_page(
            request, runtime, params, status=status, error=message, username=username, **kw
        )

    def throttled(retry_after: float) -> Response:
        wait = str(max(1, round(retry_after)))
        return failed(
            "rate_limited",
            429,
            f"尝试次数过多，请 {wait} 秒后再试。",
            headers={"Retry-After": wait},
        )

    # One address guessing (at one user or many) is throttled; its attempts stop before they
    # count against the user name, so it cannot lock the user out at their own address.
    for key, rate, burst in (
        (
            f"signin-source:{source}",
            settings.token_source_rate_limit_per_second,
            settings.token_source_rate_limit_burst,
        ),
        (
            f"signin-user-source:{username}|{source}",
            settings.token_rate_limit_per_second,
            settings.token_rate_limit_burst,
        ),
    ):
        retry_after = await runtime.rate_limiter.hit(key, rate, burst)
        if retry_after is not None:
            return throttled(retry_after)
    # Many addresses guessing at one user name: past this limit the user name is under attack,
    # and only the right password with a TOTP code passes (a lock the user still opens).
    under_attack = await runtime.rate_limiter.hit(
        f"signin-user:{username}",
        settings.console_signin_user_rate_limit_per_second,
        settings.console_signin_user_rate_limit_burst,
    )
    found = await run_in_threadpool(_load_user, runtime, username) if username else None
    if found is not None:
        runtime.console.agencies[username] = found[0].agency
    try:
        # Unknown users cost the same time as known ones (the scrypt pool of the token endpoint).
        verified = await runtime.secret_checker.verify(password, found[1] if found else None)
    except TokenEndpointBusy:
        return failed("busy", 429, "系统繁忙，请稍后再试。", headers={"Retry-After": "1"})
    if not verified or found is None:
        return (
            throttled(under_attack) if under_attack else failed("invalid_credentials", 401, _FAILED)
        )
    user = found[0]
    if under_attack is not None and not user.has_totp:
        return throttled(under_attack)  # the same answer as a wrong password now
    if user.has_totp and not await run_in_threadpool(
        _second_factor, runtime, username, str(form.get("totp", ""))
    ):
        return (
            throttled(under_attack) if under_attack else failed("invalid_credentials", 401, _FAILED)
        )
    if (
        not user.has_totp
        and settings.console_admin_totp_required
        and (Scope.POLICY_ADMIN in user.scopes)
    ):
        # The password was right: say what is missing (the person cannot fix it themselves).
        return failed(
            "totp_not_enrolled",
            403,
            "权限清单管理员须启用动态口令（TOTP）后方可登录：请联系系统管理员执行 "
            "gateway users totp 为您登记。",
        )
    code = await run_in_threadpool(_issue, runtime, user, params)
    query = urlencode({"code": code, "state": params["state"]})
    response = RedirectResponse(f"{params['redirect_uri']}?{query}", status_code=303)
    response.delete_cookie(SIGNIN_CSRF_COOKIE, path="/oauth/authorize")
    return response
