"""Refused requests are audit entries, on every route.

* A refusal of an **identified** caller (a token whose signature verified, even if it has
  expired or its client was disabled since) is an entry of its own, named after the client,
  whose problem carries ``X-Audit-Index``: 401, 403, 404, 405, 409, 422, 429 alike. The route
  classes here write it for the routes that do not write their own (the exchange does, in
  :class:`~gateway.exchange.service.ExchangeService`).
* A refusal of an **anonymous** caller (no token, or one that is not ours) is throttled per
  source address and counted in an aggregated entry (:mod:`gateway.audit.aggregate`); it
  carries no ``X-Audit-Index``. :func:`anonymous_refusal` is where both happen.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any, ClassVar

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway.audit.entry import AuditKind, Decision, EntryDraft
from gateway.audit.writer import AuditUnavailable
from gateway.auth.ratelimit import retry_after_header
from gateway.auth.tokens import TokenError
from gateway.errors import (
    GatewayError,
    RateLimited,
    ServiceUnavailable,
    error_response,
    validation_problem,
)
from gateway.observability.context import current_request_id

__all__ = [
    "AccessAuditedRoute",
    "RefusalAuditedRoute",
    "anonymous_refusal",
    "method_not_allowed",
    "record_refusal",
    "route_template",
    "source_address",
]


def source_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def route_template(request: Request) -> str:
    """``METHOD /path/{template}`` of the matched route: never the raw path a caller chose."""
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path', None) or '(no route)'}"


async def anonymous_refusal(request: Request, refusal: GatewayError) -> GatewayError:
    """Count a refusal without an identified caller; 429 instead once its source is over the
    anonymous rate limit. Returns the error to raise (it has no ``X-Audit-Index``)."""
    runtime = request.app.state.runtime
    settings = runtime.settings
    source = source_address(request)
    retry_after = await runtime.rate_limiter.hit(
        f"anonymous:{source}",
        settings.anonymous_rate_limit_per_second,
        settings.anonymous_rate_limit_burst,
    )
    if retry_after is not None:
        refusal = RateLimited(retry_after_header(retry_after))
    runtime.anonymous.count(source, route_template(request), refusal.status)
    return refusal


async def record_refusal(
    request: Request, exc: GatewayError, kind: AuditKind, action: Mapping[str, Any]
) -> None:
    """Write the entry of an identified caller's refusal; put its index on the problem."""
    client_id = getattr(request.state, "client_id", None)
    if client_id is None or isinstance(exc, ServiceUnavailable):
        return
    runtime = request.app.state.runtime
    draft = EntryDraft(
        kind=kind,
        request_id=current_request_id(),
        requester_agency=getattr(request.state, "agency", None),
        client_id=client_id,
        decision=Decision.DENY if exc.status in (401, 403) else Decision.INVALID,
        status=exc.status,
        # Administration entries name the set in force, as every other one of them does.
        policy_version=runtime.policy.current.version if kind is AuditKind.POLICY_ADMIN else None,
        action=dict(action),
    )
    try:
        index = await runtime.audit_writer.append(draft)
    except AuditUnavailable as audit_down:
        raise ServiceUnavailable("the audit log cannot record this request") from audit_down
    exc.headers["X-Audit-Index"] = str(index)


class RefusalAuditedRoute(APIRoute):
    """A route whose refusals of identified callers are entries of ``audit_kind``.

    Successful requests write their own entry in the endpoint (or none: ``/v1/me``, reads of
    public data); refusals (validation, scope, rate limit, conflict …) are recorded here.
    """

    audit_kind: ClassVar[AuditKind] = AuditKind.ACCESS

    def refusal_action(self, request: Request, exc: GatewayError) -> dict[str, Any]:
        return {"route": route_template(request), "problem": exc.slug}

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def audited(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as invalid:
                exc: GatewayError = validation_problem(invalid)
                await record_refusal(
                    request, exc, self.audit_kind, self.refusal_action(request, exc)
                )
                raise exc from invalid
            except GatewayError as refused:
                await record_refusal(
                    request, refused, self.audit_kind, self.refusal_action(request, refused)
                )
                raise

        return audited


class AccessAuditedRoute(RefusalAuditedRoute):
    """``/v1/me``, ``/metrics``: refusals are ``access`` entries."""

    audit_kind = AuditKind.ACCESS


class _MethodNotAllowed(GatewayError):
    status = 405
    slug = "method-not-allowed"
    title = "Method not allowed"


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    """A 405 is a refusal too: an entry when the bearer token identifies the caller, else
    counted with the anonymous refusals."""
    assert isinstance(exc, StarletteHTTPException)
    runtime = request.app.state.runtime
    headers = dict(exc.headers or {})
    refusal: GatewayError = _MethodNotAllowed(
        exc.detail if isinstance(exc.detail, str) else "Method Not Allowed", headers=headers
    )
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    principal = None
    if scheme.lower() == "bearer" and token.strip():
        try:
            principal = runtime.token_verifier.verify(token.strip())
        except TokenError as refused:
            if refused.client_id is not None:
                request.state.client_id, request.state.agency = refused.client_id, refused.agency
    if principal is not None:
        request.state.client_id, request.state.agency = principal.client_id, principal.agency
    if getattr(request.state, "client_id", None) is not None:
        await record_refusal(
            request,
            refusal,
            AuditKind.ACCESS,
            {"route": route_template(request), "problem": refusal.slug},
        )
    else:
        refusal = await anonymous_refusal(request, refusal)
        refusal.headers.update({k: v for k, v in headers.items() if k.lower() == "allow"})
    return error_response(refusal, request.url.path)
