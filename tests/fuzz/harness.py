"""Plumbing for the schema fuzz tests: transport, scopes, checks.

* :class:`TestClientSession` lets schemathesis send its ``requests`` calls through the started
  gateway's Starlette ``TestClient``, so every case reaches the app in the event loop its
  lifespan runs in (the audit writer, the adapters' HTTP clients and the rate limiter live
  there), over the same ASGI path a served app gets.
* :func:`route_scopes` reads from the app's routes which scope(s) each operation requires (the
  auth dependencies record it on themselves), so each case is sent with a fitting token.
* :data:`CHECKS` are the response checks every fuzzed response goes through.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import fastapi.routing
import orjson
import requests
import requests.adapters
import urllib3
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from schemathesis import CheckContext, Response
from schemathesis.core.failures import CustomFailure, ServerError
from schemathesis.generation.case import Case as _Case
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.testclient import TestClient

from gateway.auth.deps import authenticate
from tests.problem_text import wording_problems

__all__ = [
    "CHECKS",
    "KNOWN_GAPS",
    "PROBLEM_MEMBERS",
    "STATUS_COUNTS",
    "KnownGap",
    "ScopeNeed",
    "TestClientSession",
    "documented_server_error",
    "documented_status_code",
    "known_gap",
    "problem_details",
    "route_scopes",
]

Case = _Case[Any]

PROBLEM_MEMBERS = ("type", "title", "status", "detail", "instance", "request_id")
# RFC 6749 §5.2: the token endpoint answers its own errors as {error, error_description}
# (application/json); docs/security.md and the route's responses= say so.
OAUTH_ERROR_ROUTE = "/oauth/token"
EXCHANGE_PREFIX = "/v1/resources/"
AUDIT_PREFIX = "/v1/audit/"

# Responses seen, by operation label and status (printed at the end of the run).
STATUS_COUNTS: dict[str, Counter[int]] = {}

# A scope requirement: None = public, empty = any valid token, else scopes (one suffices).
ScopeNeed = frozenset[str] | None


class _TestClientAdapter(requests.adapters.HTTPAdapter):
    """A ``requests`` transport adapter that hands the prepared request to a ``TestClient``."""

    def __init__(self, client: TestClient) -> None:
        super().__init__()
        self.client = client

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        # Header values travel as Latin-1 octets, exactly what a socket would carry.
        headers = [
            (
                name.encode("latin-1"),
                value if isinstance(value, bytes) else str(value).encode("latin-1"),
            )
            for name, value in request.headers.items()
        ]
        body = request.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif body is not None and not isinstance(body, bytes):
            chunks: Any = body  # a generator (streamed body)
            body = b"".join(c.encode("utf-8") if isinstance(c, str) else c for c in chunks)
        answer = self.client.request(
            str(request.method), str(request.url), headers=headers, content=body
        )
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(answer.content),
            headers=urllib3.HTTPHeaderDict(answer.headers.multi_items()),
            status=answer.status_code,
            reason=answer.reason_phrase,
            version=11,
            preload_content=False,
            decode_content=False,
        )
        return self.build_response(request, raw)


class TestClientSession(requests.Session):
    """A ``requests.Session`` whose every request goes to ``client`` (a started TestClient)."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, client: TestClient) -> None:
        super().__init__()
        adapter = _TestClientAdapter(client)
        self.mount("http://", adapter)
        self.mount("https://", adapter)
        self.base_url = str(client.base_url).rstrip("/")


def _dependency_calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _dependency_calls(sub)


def route_scopes(app: FastAPI) -> dict[tuple[str, str], ScopeNeed]:
    """``(METHOD, path)`` → the scopes a token needs for it (see :data:`ScopeNeed`)."""
    needs: dict[tuple[str, str], ScopeNeed] = {}
    iter_route_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    # Recent FastAPI keeps included routers unflattened; walk them with their effective paths.
    views: Any = iter_route_contexts(app.routes) if iter_route_contexts else app.routes
    for route in views:
        if getattr(route, "dependant", None) is None or not route.include_in_schema:
            continue
        need: ScopeNeed = None
        for call in _dependency_calls(route.dependant):
            scopes = getattr(call, "required_scopes", None)
            scope = getattr(call, "required_scope", None)
            if scopes or scope:
                need = frozenset(scopes or {scope})
                break
            if call is authenticate:
                need = frozenset()
        for method in route.methods:
            needs[(method, route.path)] = need
    return needs


def _declared(case: Case, status: int) -> bool:
    return str(status) in case.operation.definition.raw.get("responses", {})


def documented_server_error(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """No 5xx, except a 502/504 the operation documents (the agency system failed).

    503 is documented too, for an audit log that cannot take the entry; the fuzzing gateways
    keep their log up, so here a 503 is a request the gateway failed to record (one bad entry
    fails its whole batch) and counts as a failure. /readyz may say 503 (its own report).
    """
    status = response.status_code
    if status < 500 or known_gap(case, status):
        return None
    if status in (502, 504) and _declared(case, status):
        return None
    if status == 503 and case.operation.path == "/readyz":
        return None
    raise ServerError(operation=case.operation.label, status_code=status)


def _fail(case: Case, title: str, message: str) -> CustomFailure:
    return CustomFailure(
        operation=case.operation.label, title=title, message=message, exception=AssertionError()
    )


def problem_details(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every error is RFC 9457 problem+json with the gateway's members, and ids line up.

    The token endpoint's 400/401 are RFC 6749 ``{error, error_description}`` instead.
    Exchange responses carry ``X-Audit-Index`` whatever their status (except 503: the log
    could not take the entry, and an anonymous 401: counted in an aggregated entry); audit
    queries carry it once the caller is known (not 401).
    """
    status = response.status_code
    path = case.operation.path
    request_id = response.headers.get("x-request-id", [None])[0]
    if not request_id:
        raise _fail(case, "No X-Request-Id", "every response carries X-Request-Id")
    content_type = (response.headers.get("content-type") or [""])[0]
    media = content_type.split(";")[0].strip().lower()
    if (
        path.startswith(EXCHANGE_PREFIX)
        and status not in (401, 503)
        and "x-audit-index" not in response.headers
    ):
        raise _fail(case, "No X-Audit-Index", f"exchange response {status} has no receipt")
    if (
        path.startswith(AUDIT_PREFIX)
        and path != "/v1/audit/key"
        and status not in (401, 503)
        and "x-audit-index" not in response.headers
    ):
        raise _fail(case, "No X-Audit-Index", f"audit query answered {status} without a receipt")
    if status < 400:
        return None
    body = _json(response)
    if path == OAUTH_ERROR_ROUTE and status in (400, 401):
        if media != "application/json" or not isinstance(body, dict):
            raise _fail(case, "OAuth error shape", f"{status} {content_type}: {response.text!r}")
        if not isinstance(body.get("error"), str) or not isinstance(
            body.get("error_description"), str | None
        ):
            raise _fail(case, "OAuth error shape", f"{status}: {body!r}")
        return None
    if media != "application/problem+json":
        raise _fail(case, "Not problem+json", f"{status} answered as {content_type!r}")
    if not isinstance(body, dict):
        raise _fail(case, "Problem is not an object", repr(response.text[:300]))
    missing = [m for m in PROBLEM_MEMBERS if not isinstance(body.get(m), str | int)]
    if missing:
        raise _fail(case, "Problem members missing", f"{missing} in {body!r}")
    if body["status"] != status:
        raise _fail(case, "Problem status", f"body says {body['status']}, response {status}")
    if wording := wording_problems(str(body["detail"])):
        raise _fail(case, "Problem detail wording", f"{wording} in {body['detail']!r}")
    if body["request_id"] != request_id:
        raise _fail(case, "Problem request_id", f"{body['request_id']} != header {request_id}")
    if not str(body["type"]).startswith("/problems/"):
        raise _fail(case, "Problem type", f"{body['type']!r}")
    if not isinstance(body["instance"], str) or not body["instance"].startswith("/"):
        sent = urlsplit(str(response.request.url)).path
        raise _fail(case, "Problem instance", f"{body['instance']!r} for {sent}")
    return None


def _json(response: Response) -> Any:
    try:
        return orjson.loads(response.content or b"null")
    except orjson.JSONDecodeError:
        return None


@dataclass(frozen=True)
class KnownGap:
    """A response fuzzing found wrong in a file outside this suite's remit, reported to its
    owner and tolerated here, exactly: everything else about such responses is still checked.
    """

    method: str
    path_prefix: str
    status: int
    why: str

    def covers(self, case: Case, status: int) -> bool:
        return (
            self.method in ("*", case.method.upper())
            and case.operation.path.startswith(self.path_prefix)
            and status == self.status
        )


KNOWN_GAPS: list[KnownGap] = []  # every status a route can answer is declared


def known_gap(case: Case, status: int) -> str | None:
    return next((gap.why for gap in KNOWN_GAPS if gap.covers(case, status)), None)


def documented_status_code(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """``status_code_conformance``, minus the :data:`KNOWN_GAPS`."""
    if known_gap(case, response.status_code):
        return None
    return status_code_conformance(ctx, response, case)


CHECKS = [
    documented_server_error,
    documented_status_code,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    problem_details,
]
