"""Route-level authentication: ``Annotated`` dependencies that say who may call a route.

    async def route(caller: ExchangeClient) -> ...

verifies the bearer token, checks the client is still enabled, requires the
``exchange`` scope and applies the client's rate limit. The dependency records
its scope on itself, so a test can prove every protected route declares one.

A request without an identified caller (no token, or one whose signature does not verify)
is throttled per source address and counted in an aggregated audit entry
(:func:`gateway.audit.refusals.anonymous_refusal`); a refused token whose signature did
verify (expired, its client disabled) names its client, whose refusal is an entry of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from starlette.concurrency import run_in_threadpool

from gateway.audit.refusals import anonymous_refusal
from gateway.auth.clients import ClientRegistry
from gateway.auth.ratelimit import retry_after_header
from gateway.auth.scopes import Scope
from gateway.auth.tokens import Principal, TokenError
from gateway.errors import GatewayError, InsufficientScope, RateLimited, Unauthorized
from gateway.runtime import Runtime, get_runtime, runtime_of

__all__ = [
    "BEARER_SECURITY",
    "AnyClient",
    "AuditOrExchange",
    "AuditReader",
    "ExchangeClient",
    "MetricsReader",
    "PolicyAdmin",
    "RuntimeDep",
    "audited_caller",
    "audited_scope",
    "authenticate",
    "authenticate_token",
    "bearer_token",
    "flat_audited_scope",
    "require_any_scope",
    "require_scope",
]

RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

_bearer = HTTPBearer(auto_error=False, description="OAuth2 access token from POST /oauth/token")


async def authenticate(
    request: Request,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    return await authenticate_token(
        request, runtime, None if credentials is None else credentials.credentials
    )


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header, as ``HTTPBearer(auto_error=False)``
    reads it (None for any other header or none)."""
    scheme, token = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and token) or scheme.lower() != "bearer":
        return None
    return token


async def keep_fresh(clients: ClientRegistry) -> None:
    """Refresh the client snapshot if it is due: by every caller while there is none (or no
    caching is allowed), else by the one caller that claims it."""
    if not clients.loaded or clients.uncached:
        await run_in_threadpool(clients.refresh)
    elif clients.stale and clients.claim_refresh():
        await run_in_threadpool(clients.refresh_claimed)


async def authenticate_token(request: Request, runtime: Runtime, token: str | None) -> Principal:
    """Verify the bearer ``token``, check its client and apply the client's rate limit."""
    if token is None:
        raise await anonymous_refusal(request, Unauthorized("a Bearer access token is required"))
    await keep_fresh(runtime.clients)
    try:
        principal = runtime.token_verifier.verify(token)
    except TokenError as exc:
        if exc.client_id is None:
            raise await anonymous_refusal(request, Unauthorized(str(exc))) from exc
        request.state.client_id = exc.client_id
        request.state.agency = exc.agency
        raise Unauthorized(str(exc)) from exc
    request.state.client_id = principal.client_id
    request.state.agency = principal.agency
    client = runtime.clients.get(principal.client_id)
    rate = (client.rate_limit_per_second if client else None) or (
        runtime.settings.rate_limit_per_second
    )
    burst = (client.rate_limit_burst if client else None) or runtime.settings.rate_limit_burst
    retry_after = await runtime.rate_limiter.hit(principal.client_id, rate, burst)
    if retry_after is not None:
        raise RateLimited(retry_after_header(retry_after))
    return principal


def require_scope(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    async def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if scope not in principal.scopes:
            raise InsufficientScope(scope)
        return principal

    dependency.required_scope = scope  # type: ignore[attr-defined]
    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return dependency


def require_any_scope(*scopes: Scope) -> Callable[..., Awaitable[Principal]]:
    """For routes two roles share (e.g. an agency system checking its own audit receipt)."""

    async def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.scopes.intersection(scopes):
            raise InsufficientScope(" or ".join(scopes))
        return principal

    dependency.required_scope = scopes[0]  # type: ignore[attr-defined]
    dependency.required_scopes = frozenset(scopes)  # type: ignore[attr-defined]
    dependency.__name__ = "require_" + "_or_".join(s.replace(":", "_") for s in scopes)
    return dependency


async def audited_caller(
    request: Request, scope: Scope, token: str | None
) -> Principal | GatewayError:
    """The caller of an audited route, or its refusal as a value.

    The exchange routes audit every request, refused ones included, so they need the
    refusal as a value to record before it is rendered. A refusal without an accountable
    caller (no client named) is raised: counted in the anonymous aggregate, no entry.
    """
    try:
        principal = await authenticate_token(request, runtime_of(request), token)
        if scope not in principal.scopes:
            raise InsufficientScope(scope)
    except GatewayError as exc:
        if getattr(request.state, "client_id", None) is None:
            raise  # no accountable caller: counted in the anonymous aggregate, no entry
        return exc
    return principal


def audited_scope(scope: Scope) -> Callable[..., Awaitable[Principal | GatewayError]]:
    """Like :func:`require_scope`, but hands failures to the route instead of raising
    (:func:`audited_caller`)."""

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal | GatewayError:
        token = None if credentials is None else credentials.credentials
        return await audited_caller(request, scope, token)

    dependency.required_scope = scope  # type: ignore[attr-defined]
    dependency.__name__ = f"audited_{scope.replace(':', '_')}"
    return dependency


def flat_audited_scope(scope: Scope) -> Callable[..., Awaitable[Principal | GatewayError]]:
    """:func:`audited_scope` as one dependency without sub-dependencies: on the hottest routes
    every dependency FastAPI resolves costs tens of microseconds. The route declares the
    bearer scheme itself (``openapi_extra={"security": BEARER_SECURITY}``)."""

    async def dependency(request: Request) -> Principal | GatewayError:
        token = bearer_token(request.headers.get("authorization"))
        return await audited_caller(request, scope, token)

    dependency.required_scope = scope  # type: ignore[attr-defined]
    dependency.__name__ = f"audited_{scope.replace(':', '_')}"
    return dependency


# The OpenAPI security requirement of a route authenticated without ``_bearer`` as a
# dependency (the scheme itself is declared by the routes that do use it).
BEARER_SECURITY: list[dict[str, list[str]]] = [{"HTTPBearer": []}]


AnyClient = Annotated[Principal, Depends(authenticate)]
ExchangeClient = Annotated[Principal, Depends(require_scope(Scope.EXCHANGE))]
PolicyAdmin = Annotated[Principal, Depends(require_scope(Scope.POLICY_ADMIN))]
AuditReader = Annotated[Principal, Depends(require_scope(Scope.AUDIT_READ))]
AuditOrExchange = Annotated[Principal, Depends(require_any_scope(Scope.AUDIT_READ, Scope.EXCHANGE))]
MetricsReader = Annotated[Principal, Depends(require_scope(Scope.METRICS_READ))]
