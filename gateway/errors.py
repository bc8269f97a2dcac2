"""Domain errors and their one rendering: RFC 9457 ``application/problem+json``.

Hierarchy (each class knows its HTTP status)::

    GatewayError
    ├── BadRequest                 400
    │   └── InvalidHeader          400  a malformed X-* header
    ├── Unauthorized               401  with WWW-Authenticate
    ├── Forbidden                  403
    │   └── InsufficientScope      403  with WWW-Authenticate error="insufficient_scope"
    ├── NotFound                   404
    ├── Conflict                   409
    ├── PayloadTooLarge            413
    ├── UnprocessableContent       422  ``errors`` lists the offending fields
    ├── RateLimited                429  with Retry-After
    ├── ServiceUnavailable         503
    └── UpstreamError              502  names the agency
        └── UpstreamTimeout        504

Routes raise these; :func:`install_error_handlers` renders every one of them, and
also Starlette's HTTP errors, request-validation errors and anything unexpected
(as a bare 500 problem without internals).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from gateway.observability.context import current_request_id

__all__ = [
    "DATABASE_UNAVAILABLE",
    "INTERNAL_ERROR_DETAIL",
    "PROBLEM_CONTENT_TYPE",
    "PROBLEM_SCHEMA",
    "RETRY_AFTER_HEADER",
    "WWW_AUTHENTICATE_HEADER",
    "BadRequest",
    "Conflict",
    "FieldError",
    "FilterNotPermitted",
    "Forbidden",
    "GatewayError",
    "InsufficientScope",
    "InvalidHeader",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "ServiceUnavailable",
    "Unauthorized",
    "UnprocessableContent",
    "UpstreamError",
    "UpstreamTimeout",
    "error_response",
    "install_error_handlers",
    "on_database_error",
    "on_gateway_error",
    "on_http_error",
    "problem_response",
    "problem_responses",
    "validation_problem",
]

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "/problems/"
INTERNAL_ERROR_DETAIL = (
    "the gateway failed to handle this request; quote the request id to the operators"
)

# The OpenAPI schema of every problem :func:`problem_response` renders. Members beyond these
# (``errors``, ``rule_ids``, ``header``, ``agency``, ``required_scope``…) depend on the error.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail", "instance", "request_id"],
    "properties": {
        "type": {"type": "string", "description": "/problems/<slug>"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "the request path"},
        "request_id": {"type": "string", "description": "also the X-Request-Id header"},
        "errors": {
            "type": "array",
            "description": "422: the offending fields",
            "items": {
                "type": "object",
                "required": ["field", "reason"],
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}

# OpenAPI header objects of the problems that carry one.
WWW_AUTHENTICATE_HEADER: dict[str, Any] = {
    "description": 'Bearer error="invalid_token" (401) or error="insufficient_scope" (403)',
    "schema": {"type": "string"},
}
RETRY_AFTER_HEADER: dict[str, Any] = {
    "description": "seconds to wait before the next request",
    "required": True,
    "schema": {"type": "integer", "minimum": 0},
}

log = structlog.get_logger(__name__)

FieldError = Mapping[str, Any]


class GatewayError(Exception):
    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


class BadRequest(GatewayError):
    status = 400
    slug = "bad-request"
    title = "Bad request"


class InvalidHeader(BadRequest):
    slug = "invalid-header"
    title = "Invalid request header"

    def __init__(self, header: str, detail: str) -> None:
        super().__init__(detail, extra={"header": header})


class Unauthorized(GatewayError):
    status = 401
    slug = "invalid-token"
    title = "Invalid or missing access token"

    def __init__(self, detail: str = "the access token is missing, invalid or expired") -> None:
        challenge = 'Bearer error="invalid_token"'
        super().__init__(
            detail,
            headers={"WWW-Authenticate": f'{challenge}, error_description="{_quote(detail)}"'},
        )


class Forbidden(GatewayError):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


class InsufficientScope(Forbidden):
    slug = "insufficient-scope"
    title = "Insufficient scope"

    def __init__(self, required: str) -> None:
        required = str(required)  # a Scope member prints as its value, not as its repr
        super().__init__(
            f"this route needs scope '{required}'",
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{required}"'},
            extra={"required_scope": required},
        )


class FilterNotPermitted(Forbidden):
    """A search filtered (or would order) on a field the caller may not read in the clear.

    A filter is a read: matching a guessed value tells whether it is right.
    """

    slug = "filter-not-permitted"
    title = "Filter not permitted"

    def __init__(self, field: str, resource: str, purpose: str) -> None:
        super().__init__(
            f"you may not filter {resource} by {field}: for purpose {purpose} this field is "
            "not released to you in the clear (a filter reads the field it matches)",
            extra={"field": field},
        )


class NotFound(GatewayError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(GatewayError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class PayloadTooLarge(GatewayError):
    status = 413
    slug = "payload-too-large"
    title = "Request body too large"


class UnprocessableContent(GatewayError):
    status = 422
    slug = "validation-error"
    title = "Invalid request"

    def __init__(self, detail: str, errors: Sequence[FieldError]) -> None:
        super().__init__(detail, extra={"errors": [dict(e) for e in errors]})


class RateLimited(GatewayError):
    status = 429
    slug = "rate-limited"
    title = "Too many requests"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"rate limit exceeded; retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


class ServiceUnavailable(GatewayError):
    status = 503
    slug = "service-unavailable"
    title = "Service unavailable"


class UpstreamError(GatewayError):
    status = 502
    slug = "upstream-error"
    title = "Agency system error"

    def __init__(self, agency: str, detail: str, **extra: Any) -> None:
        super().__init__(f"{agency}: {detail}", extra={"agency": agency, **extra})
        self.agency = agency


class UpstreamTimeout(UpstreamError):
    status = 504
    slug = "upstream-timeout"
    title = "Agency system timed out"


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "'")


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str,
    instance: str,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    request_id = current_request_id()
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        "request_id": request_id,
    }
    if extra:
        body.update(extra)
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=dict(headers or {}),
    )


def error_response(exc: GatewayError, instance: str) -> Response:
    """``exc`` rendered as its problem document (for code that answers without raising)."""
    return problem_response(
        exc.status,
        exc.title,
        exc.detail,
        slug=exc.slug,
        instance=instance,
        headers=exc.headers,
        extra=exc.extra,
    )


def problem_responses(
    descriptions: Mapping[int, str], headers: Mapping[str, Any] | None = None
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status documented as a problem.

    ``headers`` (OpenAPI header objects by name) go on every status; 401 also gets
    ``WWW-Authenticate`` (required), 403 ``WWW-Authenticate`` (with a missing scope), 429
    ``Retry-After``.
    """
    implied: dict[int, dict[str, Any]] = {
        401: {"WWW-Authenticate": {**WWW_AUTHENTICATE_HEADER, "required": True}},
        403: {"WWW-Authenticate": WWW_AUTHENTICATE_HEADER},
        429: {"Retry-After": RETRY_AFTER_HEADER},
    }
    responses: dict[int | str, dict[str, Any]] = {}
    for status, text in descriptions.items():
        response_headers = {**(headers or {}), **implied.get(status, {})}
        responses[status] = {
            "description": text,
            "content": {PROBLEM_CONTENT_TYPE: {"schema": PROBLEM_SCHEMA}},
            **({"headers": response_headers} if response_headers else {}),
        }
    return responses


_STARLETTE_SLUGS = {
    400: ("bad-request", "Bad request"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("payload-too-large", "Request body too large"),
}


def validation_problem(exc: RequestValidationError) -> UnprocessableContent:
    """FastAPI's parameter validation failure as our 422, naming every field."""
    errors = [
        {
            "field": ".".join(str(p) for p in err.get("loc", ())),
            "reason": err.get("msg", "invalid"),
        }
        for err in exc.errors()
    ]
    names = ", ".join(e["field"] for e in errors) or "request"
    return UnprocessableContent(f"invalid value for {names}", errors)


async def on_gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc, request.url.path)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    slug, title = _STARLETTE_SLUGS.get(exc.status_code, ("http-error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) else title
    return problem_response(
        exc.status_code,
        title,
        detail,
        slug=slug,
        instance=request.url.path,
        headers=exc.headers,
    )


async def on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problem = validation_problem(exc)
    return problem_response(
        problem.status,
        problem.title,
        problem.detail,
        slug=problem.slug,
        instance=request.url.path,
        extra=problem.extra,
    )


# Only "cannot reach or use the database" is a retryable 503; a data error (a value the
# database refuses) is a validation gap, left to the unexpected-error handler.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError)


async def on_database_error(request: Request, exc: Exception) -> Response:
    # The database is down or refusing: a 503 the client can retry, not a 500. Nothing
    # was released: every data path writes its audit entry first, which failed too.
    log.error("database unavailable", path=request.url.path, error=type(exc).__name__)
    return problem_response(
        503,
        "Service unavailable",
        "the gateway's database is unavailable; retry later",
        slug="service-unavailable",
        instance=request.url.path,
        headers={"Retry-After": "5"},
    )


async def on_unexpected(request: Request, exc: Exception) -> Response:
    # Starlette calls this handler outside the middleware that holds the request id.
    request_id = current_request_id() or request.scope.get("state", {}).get("request_id")
    log.exception("unhandled error", path=request.url.path, request_id=request_id)
    return problem_response(
        500,
        "Internal error",
        INTERNAL_ERROR_DETAIL,
        slug="internal-error",
        instance=request.url.path,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the one renderer for every error the app can raise."""
    app.add_exception_handler(GatewayError, on_gateway_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    for unavailable in DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, on_database_error)
    app.add_exception_handler(Exception, on_unexpected)
