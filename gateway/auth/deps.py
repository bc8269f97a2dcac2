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
from starlette.concurrency import run_in_threadpool

from gateway.audit.refusals import anonymous_refusal
from gateway.auth.ratelimit import retry_after_header
from gateway.auth.scopes import Scope
from gateway.auth.tokens import Principal, TokenError
from gateway.errors import GatewayError, InsufficientScope, RateLimited, Unauthorized
from gateway.runtime import Runtime, get_runtime, runtime_of

__all__ = [
    "AnyClient",
    "AuditOrExchange",
    "AuditReader",
    "ExchangeClient",
    "MetricsReader",
    "PolicyAdmin",
    "RuntimeDep",
    "audited_scope",
    "authenticate",
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
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise await anonymous_refusal(request, Unauthorized("a Bearer access token is required"))
    if runtime.clients.stale:
        await run_in_threadpool(runtime.clients.refresh)
    try:
        principal = runtime.token_verifier.verify(credentials.credentials)
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


def audited_scope(scope: Scope) -> Callable[..., Awaitable[Principal | GatewayError]]:
    """Like :func:`require_scope`, but hands failures to the route instead of raising.

    The exchange routes audit every request, refused ones included, so they need the
    refusal as a value to record before it is rendered.
    """
    checker = require_scope(scope)

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal | GatewayError:
        # The runtime is read here rather than injected: on the hottest routes every
        # dependency FastAPI resolves costs tens of microseconds.
        runtime = runtime_of(request)
        try:
            principal = await authenticate(request, runtime, credentials)
            return await checker(principal)
        except GatewayError as exc:
            if getattr(request.state, "client_id", None) is None:
                raise  # no accountable caller: counted in the anonymous aggregate, no entry
            return exc

    dependency.required_scope = scope  # type: ignore[attr-defined]
    dependency.__name__ = f"audited_{scope.replace(':', '_')}"
    return dependency


AnyClient = Annotated[Principal, Depends(authenticate)]
ExchangeClient = Annotated[Principal, Depends(require_scope(Scope.EXCHANGE))]
PolicyAdmin = Annotated[Principal, Depends(require_scope(Scope.POLICY_ADMIN))]
AuditReader = Annotated[Principal, Depends(require_scope(Scope.AUDIT_READ))]
AuditOrExchange = Annotated[Principal, Depends(require_any_scope(Scope.AUDIT_READ, Scope.EXCHANGE))]
MetricsReader = Annotated[Principal, Depends(require_scope(Scope.METRICS_READ))]
