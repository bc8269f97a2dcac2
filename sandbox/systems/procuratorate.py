"""Sample procuratorate (检察院) system: camelCase JSON, ISO datetimes at +08:00, integer
decision codes, nested defendant objects, RFC 7807 problem errors, OAuth 2.0 client credentials
(its own ``POST /oauth/token``, client_secret_basic, opaque bearer). See NATIVE.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
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
from sandbox.systems.inbound import Header, InboundSpec

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
#: The documentType of a 移送审查起诉 (起诉意见书): received, the case is under 审查起诉 here.
PROSECUTION_TRANSFER: Final = "YSSC"
CASES_PATH: Final = "/api/v2/cases"


def _received(request: Request, document: Any) -> None:
    """A received 移送审查起诉 moves its case to PROSECUTION_REVIEW (NATIVE.md)."""
    if document.get("documentType") != PROSECUTION_TRANSFER:
        return
    content = document.get("content")
    case_id = content.get("caseId") if isinstance(content, dict) else None
    if isinstance(case_id, str):
        request.app.state.stages[case_id] = ("PROSECUTION_REVIEW", document.get("deliveryId"))


#: Inbound deliveries: {"deliveryId", "documentType", "senderCode", "receiverCode",
#: "caseNumber", "content", "attachments"}; answered 201 {"receiptNo"} (NATIVE.md).
INBOUND: Final = InboundSpec(
    path="/api/v2/inbound-deliveries",
    xml=False,
    id_path=("deliveryId",),
    answer=lambda receipt: json_bytes({"receiptNo": receipt}),
    receipt_prefix="JCQS",
    status=201,
    on_received=_received,
    world=Header(
        ("documentType",),
        ("receiverCode",),
        ("caseNumber",),
        {
            "TQPB": "arrest_request",
            PROSECUTION_TRANSFER: "prosecution_transfer",
            # 抄送 (copies) of the court's and the prison's deliveries: read, moving nothing.
            "CSZX": "judgment_execution",
            "CSRJ": "community_correction_entry",
            "CSSJ": "prison_admission",
            "CSJX": "commutation_parole_proposal",
        },
        frozenset({"CSZX", "CSRJ", "CSSJ", "CSJX"}),
    ),
)
SPEC: Final = SystemSpec(
    "procuratorate",
    RESOURCES,
    RENDERER,
    "pageSize",
    50,
    200,
    error_headers={401: {"WWW-Authenticate": 'Bearer error="invalid_token"'}},
    inbound=INBOUND,
)


def _case_route(dataset: Dataset, oauth: OAuthServer) -> Route:
    """``GET /api/v2/cases/{caseId}``: the case's stage as this procuratorate sees it."""

    async def case(request: Request) -> Response:
        problem = oauth.check(request)
        if problem is not None:
            headers = dict(SPEC.error_headers[401])
            return Response(
                _error(401, problem), 401, headers=headers, media_type="application/json"
            )
        case_id = request.path_params["case_id"]
        record = dataset.get("case", case_id)
        if record is None:
            return Response(_error(404, "not found"), 404, media_type="application/json")
        stage, by = request.app.state.stages.get(case_id, (text(record, "stage"), None))
        body = {"caseId": case_id, "stage": stage, "stageChangedBy": by}
        return Response(json_bytes(body), media_type="application/json")

    return Route(CASES_PATH + "/{case_id}", case, methods=["GET"])


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
        extra_routes=[token_route, _case_route(dataset, oauth)],
    )
    app.state.oauth = oauth
    app.state.stages = {}
    return app
