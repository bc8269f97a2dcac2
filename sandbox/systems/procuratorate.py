"""Sample procuratorate (检察院) system: camelCase JSON, ISO datetimes at +08:00, integer
decision codes, nested defendant objects, RFC 7807 problem errors, OAuth 2.0 client credentials
(its own ``POST /oauth/token``, client_secret_basic, opaque bearer). See NATIVE.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from starlette.applications import Starlette
from starlette.routing import Route

from sandbox.generator import Dataset, Record
from sandbox.systems.auth import Credentials, OAuthServer
from sandbox.systems.common import (
    DEFAULT_INDEX_LIMIT,
    NativeRecord,
    NativeResource,
    Renderer,
    SystemSpec,
    build_app,
    json_bytes,
    opt_text,
    set_field,
    strings,
    text,
)

TOKEN_PATH: Final = "/oauth/token"  # noqa: S105 - a URL path, not a secret
DECISION_CODES: Final = {"APPROVED": 1, "DISAPPROVED": 2}
_TITLES: Final = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}


def _datetime(value: str | None) -> str | None:
    """ISO date → ``yyyy-MM-ddT00:00:00+08:00`` (None stays None)."""
    return f"{value}T00:00:00+08:00" if value else None


def review_to_native(r: Record) -> NativeRecord:
    """arrest_review → camelCase object."""
    decision = opt_text(r, "decision")
    return {
        "reviewId": text(r, "review_id"),
        "caseId": text(r, "case_id"),
        "suspectId": text(r, "person_id"),
        "requestDate": _datetime(text(r, "request_date")),
        "reviewDecision": DECISION_CODES[decision] if decision else None,
        "decisionDate": _datetime(opt_text(r, "decision_date")),
        "procuratorateCode": text(r, "procuratorate"),
        "decisionReason": opt_text(r, "reason"),
    }


def indictment_to_native(r: Record) -> NativeRecord:
    """indictment → camelCase object with nested defendants."""
    return {
        "indictmentId": text(r, "indictment_id"),
        "caseId": text(r, "case_id"),
        "documentNo": text(r, "document_number"),
        "defendants": [{"personId": p} for p in strings(r, "defendant_ids")],
        "charges": strings(r, "charges"),
        "indictmentDate": _datetime(text(r, "indictment_date")),
        "courtCode": text(r, "court"),
    }


RESOURCES: Final = (
    NativeResource(
        "arrest_review",
        "/api/v2/arrest-reviews",
        {"caseId": "case_id", "suspectId": "person_id"},
        review_to_native,
        set_field("reviewDecision", 9),
    ),
    NativeResource(
        "indictment",
        "/api/v2/indictments",
        {"caseId": "case_id"},
        indictment_to_native,
        set_field("courtCode", "FY999999"),
    ),
)


def _page(_: str, items: Sequence[NativeRecord], next_after: str | None) -> bytes:
    return json_bytes({"items": items, "nextAfter": next_after})


def _error(status: int, detail: str) -> bytes:
    title = _TITLES.get(status, "Error")
    return json_bytes({"type": "about:blank", "title": title, "status": status, "detail": detail})


RENDERER: Final = Renderer(
    media_type="application/json",
    one=lambda _, item: json_bytes(item),
    page=_page,
    error=_error,
)
SPEC: Final = SystemSpec(
    "procuratorate",
    RESOURCES,
    RENDERER,
    "pageSize",
    50,
    200,
    error_headers={401: {"WWW-Authenticate": 'Bearer error="invalid_token"'}},
)


def create_app(
    dataset: Dataset,
    credentials: Credentials,
    *,
    faults_enabled: bool = False,
    index_limit: int = DEFAULT_INDEX_LIMIT,
    token_ttl_seconds: int = 600,
) -> Starlette:
    """Procuratorate app; clients get a bearer from ``POST /oauth/token`` with HTTP Basic
    ``credentials.client_id:credentials.secret`` and ``grant_type=client_credentials``."""
    oauth = OAuthServer(credentials, token_ttl_seconds)
    token_route = Route(TOKEN_PATH, oauth.token, methods=["POST"])
    app = build_app(
        SPEC,
        dataset,
        oauth.check,
        faults_enabled=faults_enabled,
        index_limit=index_limit,
        extra_routes=[token_route],
    )
    app.state.oauth = oauth
    return app
