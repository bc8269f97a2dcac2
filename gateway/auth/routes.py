"""Token endpoint, discovery documents, JWKS and ``/v1/me``.

The token endpoint throttles per source address and per claimed client id (429 with
``Retry-After``), checks secrets in a bounded scrypt pool of its own, and counts every failed
request in an aggregated audit entry per claimed client id, source and interval
(:class:`gateway.audit.aggregate.FailedTokenRequests`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from gateway.audit.refusals import AccessAuditedRoute, source_address
from gateway.auth.deps import AnyClient, RuntimeDep
from gateway.auth.passwords import TokenEndpointBusy
from gateway.auth.ratelimit import retry_after_header
from gateway.auth.scopes import ALL_SCOPES
from gateway.auth.server import TOKEN_AUTH_METHODS, TokenRequest, client_credentials
from gateway.errors import RateLimited, error_response, problem_responses
from gateway.responses import JSONResponse
from gateway.runtime import Runtime

__all__ = ["router"]

router = APIRouter()

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_FORM_TYPE = "application/x-www-form-urlencoded"

_TOKEN_FORM_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            _FORM_TYPE: {
                "schema": {
                    "type": "object",
                    "required": ["grant_type"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["client_credentials"]},
                        "scope": {"type": "string"},
                        "client_id": {"type": "string"},
                        "client_secret": {"type": "string"},
                    },
                }
            }
        },
    }
}


class TokenResponse(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    scope: str


class OAuthErrorBody(BaseModel):
    error: str
    error_description: str | None = None


class MeResponse(BaseModel):
    client_id: str
    name: str
    agency: str
    scopes: list[str]
    issuer: str
    expires_at: int


def _oauth_error(status: int, error: str, description: str) -> Response:
    headers = dict(_NO_STORE)
    if error == "invalid_client":
        headers["WWW-Authenticate"] = 'Basic realm="gateway", charset="UTF-8"'
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=headers
    )


def _parse_form(content_type: str, body: bytes) -> dict[str, list[str]] | Response:
    if content_type.split(";")[0].strip().lower() != _FORM_TYPE:
        return _oauth_error(400, "invalid_request", f"the body must be {_FORM_TYPE}")
    try:
        text = body.decode("utf-8")
        form = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text))
    except (UnicodeDecodeError, ValueError):
        return _oauth_error(400, "invalid_request", "the form body is malformed")
    repeated = sorted(name for name, values in form.items() if len(values) > 1)
    if repeated:
        # RFC 6749 §3.2: request parameters MUST NOT be included more than once.
        return _oauth_error(400, "invalid_request", f"repeated parameter(s): {repeated}")
    return form


def _check_client_auth(headers: Mapping[str, str], form: dict[str, list[str]]) -> Response | None:
    """Refuse undecodable Basic credentials and requests that use two auth methods at once."""
    authorization = headers.get("authorization")
    if authorization is None:
        return None
    scheme, _, param = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(param.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return _oauth_error(401, "invalid_client", "malformed Basic credentials")
    basic_id = unquote(decoded.partition(":")[0])
    if form.get("client_secret", [""])[0]:
        # RFC 6749 §2.3: a client MUST NOT use more than one authentication method.
        return _oauth_error(400, "invalid_request", "use one client authentication method")
    if form.get("client_id", [""])[0] not in ("", basic_id):
        return _oauth_error(400, "invalid_request", "client_id does not match the credentials")
    return None


@router.post(
    "/oauth/token",
    tags=["auth"],
    summary="Issue an access token (OAuth2 client credentials)",
    response_model=TokenResponse,
    responses={
        400: {"model": OAuthErrorBody, "description": "RFC 6749 §5.2 error"},
        401: {"model": OAuthErrorBody, "description": "invalid_client"},
        **problem_responses(
            {413: "body too large", 429: "too many token requests from this source or client"}
        ),
    },
    openapi_extra=_TOKEN_FORM_SCHEMA,
)
async def issue_token(request: Request, runtime: RuntimeDep) -> Response:
    source = source_address(request)
    claimed: str | None = None
    registered = False

    def failed(response: Response, outcome: str) -> Response:
        runtime.token_failures.count(claimed, registered, source, outcome)
        return response

    form = _parse_form(request.headers.get("content-type", ""), await request.body())
    if isinstance(form, Response):
        return failed(form, "invalid_request")
    if not form.get("grant_type", [""])[0]:
        # RFC 6749 §3.1: a parameter sent without a value is treated as omitted.
        return failed(
            _oauth_error(400, "invalid_request", "grant_type is required"), "invalid_request"
        )
    refused = _check_client_auth(request.headers, form)
    if refused is not None:
        return failed(
            refused, "invalid_client" if refused.status_code == 401 else "invalid_request"
        )
    credentials = client_credentials(request.headers, form)
    claimed = credentials[0] if credentials else form.get("client_id", [""])[0] or None
    # Registered or not, for the aggregate: the in-memory snapshot, no database read.
    registered = claimed is not None and runtime.clients.get(claimed) is not None
    throttled = await _throttle(runtime, source, claimed)
    if throttled is not None:
        return failed(_problem(request, throttled), "rate_limited")
    row = None
    if claimed is not None:
        row = await run_in_threadpool(runtime.auth_server.client_row, claimed)
        registered = row is not None
    url = request.url
    if not runtime.settings.require_https:
        # TLS is terminated in front of the gateway (or this is a loopback demo); authlib's
        # transport check would otherwise refuse every plain-HTTP hop.
        url = url.replace(scheme="https")
    elif url.scheme != "https":
        return failed(
            _oauth_error(400, "invalid_request", "the token endpoint requires https"),
            "invalid_request",
        )
    client = None
    if credentials is not None and form["grant_type"][0] == "client_credentials":
        # Unknown and disabled clients cost the same time as known ones.
        stored = row.secret_hash if row is not None and not row.disabled else None
        try:
            verified = await runtime.secret_checker.verify(credentials[1], stored)
        except TokenEndpointBusy:
            return failed(_problem(request, RateLimited(1)), "busy")
        client = row if verified else None
    oauth_request = TokenRequest(
        "POST",
        str(url),
        request.headers,
        form,
        client=client,
        auth_method=credentials[2] if credentials else None,
    )
    status, body, headers = await run_in_threadpool(
        runtime.auth_server.create_token_response, oauth_request
    )
    if isinstance(body, dict) and body.get("error") == "invalid_client":
        return failed(
            _oauth_error(
                401, "invalid_client", "client authentication failed (unknown, wrong or disabled)"
            ),
            "invalid_client",
        )
    response_headers = {**dict(headers), **_NO_STORE}
    response_headers.pop("Content-Type", None)
    response = JSONResponse(body, status_code=status, headers=response_headers)
    if status != 200:
        error = body.get("error") if isinstance(body, dict) else None
        return failed(response, str(error or status))
    return response


async def _throttle(runtime: Runtime, source: str, client_id: str | None) -> RateLimited | None:
    """Per source address, then per claimed client id FROM that address: GCRA, like every
    other limit.

    Not per client id over all addresses: whoever sends wrong secrets under a client's id would
    then spend that client's budget, and the agency system would get 429 for new tokens for as
    long as the attacker kept at it, from a single address (its 5/s exceed the client's 1/s).
    Keyed by address too, a guesser spends only its own budget. What the per-client limit gave
    besides, a bound on guesses over many addresses, is no defence worth that lockout: client
    secrets are 256-bit random values the gateway generates, and every failure is counted in
    the aggregated ``token`` entries per client id and source (docs/security.md).
    """
    settings = runtime.settings
    limits = [
        (
            f"token-source:{source}",
            settings.token_source_rate_limit_per_second,
            settings.token_source_rate_limit_burst,
        )
    ]
    if client_id:
        limits.append(
            (
                f"token-client:{client_id[:64]}:{source}",
                settings.token_rate_limit_per_second,
                settings.token_rate_limit_burst,
            )
        )
    for key, rate, burst in limits:
        retry_after = await runtime.rate_limiter.hit(key, rate, burst)
        if retry_after is not None:
            return RateLimited(retry_after_header(retry_after))
    return None


def _problem(request: Request, error: RateLimited) -> Response:
    error.headers.update(_NO_STORE)
    return error_response(error, request.url.path)


@router.get("/.well-known/jwks.json", tags=["auth"], summary="Public keys that sign access tokens")
async def jwks(runtime: RuntimeDep) -> dict[str, Any]:
    return runtime.keys.public_jwks()


@router.get(
    "/.well-known/oauth-authorization-server",
    tags=["auth"],
    summary="Authorization server metadata (RFC 8414)",
)
async def authorization_server_metadata(runtime: RuntimeDep) -> dict[str, Any]:
    issuer = runtime.settings.issuer
    return {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/oauth/token",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": TOKEN_AUTH_METHODS,
        "scopes_supported": sorted(ALL_SCOPES),
        # Only what is offered. RFC 8414 §2 makes this member REQUIRED, but there is no
        # authorization endpoint and so no response type (the implicit flow's "token" is not
        # offered); private_key_jwt is not offered either, so no
        # token_endpoint_auth_signing_alg_values_supported.
        "response_types_supported": [],
        "service_documentation": f"{issuer}/docs",
    }


async def me(caller: AnyClient) -> MeResponse:
    return MeResponse(
        client_id=caller.client_id,
        name=caller.name,
        agency=caller.agency,
        scopes=sorted(caller.scopes),
        issuer=caller.issuer,
        expires_at=caller.expires_at,
    )


# Refusals of an identified caller (an expired token, a disabled client, the rate limit) are
# audit entries of kind ``access``; anonymous ones are aggregated (gateway/audit/refusals.py).
router.add_api_route(
    "/v1/me",
    me,
    methods=["GET"],
    tags=["auth"],
    summary="Who the caller's token says it is",
    response_model=MeResponse,
    responses=problem_responses(
        {401: "invalid token", 429: "rate limited"},
        headers={
            "X-Audit-Index": {
                "description": "the refusal's audit entry, when the token names a client",
                "schema": {"type": "integer", "minimum": 0},
            }
        },
    ),
    route_class_override=AccessAuditedRoute,
)
