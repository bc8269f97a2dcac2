"""Attack matrix, privilege and surface (P1-P10): roles, maker-checker, receipts, CORS, methods.

Nothing here publishes a policy: the shared gateway keeps the shipped set in force.
"""

from __future__ import annotations

import re
import socket
import time
import uuid
from typing import Any

import httpx2
import pytest

from gateway.auth.clients import ClientError
from gateway.policy.bundle import bundle_from_directory
from gateway.settings import REPO_ROOT
from tests.conftest import Gateway
from tests.exchange.conftest import exchange_headers
from tests.security.conftest import COURT_CASE, fresh_name, register
from tests.security.helpers import audit_entry

ADMIN = "/v1/admin/policies"
CASE_FILE = "/v1/resources/case/C00000020"
SHIPPED = bundle_from_directory(REPO_ROOT / "policies")
REGULATOR_ROUTES = [
    "/v1/audit/entries",
    "/v1/audit/entries/0",
    "/v1/audit/export",
    "/v1/audit/stats",
    "/v1/audit/proofs/consistency?from=1&to=2",
]


def _forbidden(response: httpx2.Response) -> dict[str, Any]:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


# P1
@pytest.mark.parametrize("who", ["court", "police", "admin"])
@pytest.mark.parametrize("path", REGULATOR_ROUTES)
def test_p01_regulator_routes_refuse_other_roles(sec: Gateway, who: str, path: str) -> None:
    response = sec.client.get(path, headers=sec.auth(who))
    body = _forbidden(response)
    assert body["type"] == "/problems/insufficient-scope"
    assert "X-Audit-Index" in response.headers  # an authenticated refusal is recorded
    assert not {"entries", "hashes", "leaf"} & set(body)


# P2
@pytest.mark.parametrize("who", ["court", "regulator"])
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"{ADMIN}/versions", None),
        ("POST", f"{ADMIN}/candidates", {"comment": "x", "files": {}}),
        ("POST", f"{ADMIN}/explain", {"request": {}}),
        ("POST", f"{ADMIN}/versions/sha256:{'0' * 64}/approve", {"comment": "x"}),
        ("POST", f"{ADMIN}/rollback", {"version_id": f"sha256:{'0' * 64}", "comment": "x"}),
    ],
)
def test_p02_policy_administration_refuses_other_roles(
    sec: Gateway, who: str, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = sec.client.request(method, path, json=body, headers=sec.auth(who))
    assert _forbidden(response)["type"] == "/problems/insufficient-scope"


def _current(sec: Gateway) -> str:
    version: str = sec.client.app.state.runtime.policy.current.version  # type: ignore[attr-defined]
    return version


def _submit(sec: Gateway, who: str = "admin") -> str:
    court = "permissions/court.yaml"
    files = {**SHIPPED, court: SHIPPED[court] + f"# {uuid.uuid4().hex}\n"}
    response = sec.client.post(
        f"{ADMIN}/candidates",
        json={"comment": "attack-matrix candidate", "files": files},
        headers=sec.auth(who),
    )
    assert response.status_code == 201, response.text
    version_id: str = response.json()["version_id"]
    return version_id


# P3
@pytest.mark.parametrize("verb", ["approve", "reject"])
def test_p03_maker_checker_refuses_the_submitters_own_review(sec: Gateway, verb: str) -> None:
    before = _current(sec)
    version_id = _submit(sec)
    response = sec.client.post(
        f"{ADMIN}/versions/{version_id}/{verb}", json={"comment": "mine"}, headers=sec.auth("admin")
    )
    assert "maker-checker" in _forbidden(response)["detail"]
    shown = sec.client.get(f"{ADMIN}/versions/{version_id}", headers=sec.auth("approver"))
    assert shown.json()["status"] == "candidate"
    assert _current(sec) == before


# P4
def test_p04_rollback_cannot_publish_an_unapproved_candidate(sec: Gateway) -> None:
    """Maker-checker bypass attempt: 'restore' one's own candidate instead of approving it."""
    before = _current(sec)
    version_id = _submit(sec)
    for who in ("admin", "approver"):
        response = sec.client.post(
            f"{ADMIN}/rollback",
            json={"version_id": version_id, "comment": "restore"},
            headers=sec.auth(who),
        )
        assert response.status_code == 409, response.text
    assert _current(sec) == before


# P5
def test_p05_exchange_clients_prove_only_their_own_receipts(sec: Gateway) -> None:
    own = sec.client.get(CASE_FILE, headers=exchange_headers(sec, "court", "TRIAL", COURT_CASE))
    other = sec.client.get(
        CASE_FILE, headers=exchange_headers(sec, "procuratorate", "TRIAL", COURT_CASE)
    )
    own_index, other_index = int(own.headers["X-Audit-Index"]), int(other.headers["X-Audit-Index"])
    sec.client.app.state.runtime.checkpointer.checkpoint_now()  # type: ignore[attr-defined]
    note = sec.client.get("/v1/audit/checkpoint", headers=sec.auth("court"))
    assert note.status_code == 200, note.text
    size = int(note.text.splitlines()[1])
    assert size > max(own_index, other_index)

    def proof(index: int, who: str = "court") -> httpx2.Response:
        return sec.client.get(
            "/v1/audit/proofs/inclusion",
            params={"index": index, "tree_size": size},
            headers=sec.auth(who),
        )

    assert proof(own_index).status_code == 200, proof(own_index).text
    refused = [proof(other_index), proof(10**12)]  # another's, and one that does not exist
    shapes = []
    for response in refused:
        body = _forbidden(response)
        assert "hashes" not in body
        shapes.append({k: v for k, v in body.items() if k not in ("request_id", "instance")})
    assert shapes[0] == shapes[1]  # no oracle for the log's size or other clients' entries
    assert audit_entry(sec, refused[0])["decision"] == "deny"
    # a regulator may prove any entry
    assert proof(other_index, "regulator").status_code == 200


# P6
@pytest.mark.parametrize("who", ["regulator", "admin"])
def test_p06_data_routes_refuse_non_exchange_roles(sec: Gateway, who: str) -> None:
    headers = {**sec.auth(who), "X-Purpose": "TRIAL", "X-Operator-Id": "o1"}
    response = sec.client.get(CASE_FILE, headers=headers)
    assert _forbidden(response)["type"] == "/problems/insufficient-scope"
    assert "insufficient_scope" in response.headers["www-authenticate"]
    assert audit_entry(sec, response)["upstream"]["status"] is None
    assert sec.client.get("/v1/catalog", headers=sec.auth(who)).status_code == 403


# P7
@pytest.mark.parametrize("refusal", ["insufficient-scope", "rate-limited"])
def test_p07_refused_exchange_requests_name_the_authenticated_caller(
    sec: Gateway, refusal: str
) -> None:
    if refusal == "insufficient-scope":
        who, status = "regulator", 403
    else:
        who, status = fresh_name("flood"), 429
        register(sec, who, "FY640104", ["exchange"], rate_limit_per_second=0.2, rate_limit_burst=1)
        sec.client.get("/v1/me", headers=sec.auth(who))
    headers = {**sec.auth(who), "X-Purpose": "TRIAL", "X-Operator-Id": "o1"}
    response = sec.client.get(CASE_FILE, headers=headers)
    assert response.status_code == status
    entry = audit_entry(sec, response)
    assert entry["requester"]["client_id"] == sec.clients[who].client_id


# P8
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", CASE_FILE),
        ("OPTIONS", CASE_FILE),
        ("GET", "/v1/me"),
        ("OPTIONS", "/oauth/token"),
        ("GET", "/v1/audit/checkpoint"),
    ],
)
def test_p08_cors_is_not_enabled(sec: Gateway, method: str, path: str) -> None:
    """No browser origin may read gateway answers with an officer's ambient credentials."""
    headers = {
        **exchange_headers(sec, "court", "TRIAL", COURT_CASE),
        "Origin": "https://evil.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization,x-purpose",
    }
    response = sec.client.request(method, path, headers=headers)
    assert not [h for h in response.headers if h.lower().startswith("access-control-")]
    if method == "OPTIONS":
        assert response.status_code == 405


# P9
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"])
@pytest.mark.parametrize("path", [CASE_FILE, "/v1/resources/person?case_id=C00000020"])
def test_p09_data_routes_take_get_only(sec: Gateway, method: str, path: str) -> None:
    response = sec.client.request(
        method, path, headers=exchange_headers(sec, "court", "TRIAL", COURT_CASE), json={}
    )
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == "GET"
    assert "case_name" not in response.text
    # no exchange happened, but the refusal is an entry naming the caller its token names
    refused = audit_entry(sec, response)
    assert (refused["kind"], refused["status"], refused["decision"]) == ("access", 405, "invalid")
    assert refused["requester"]["client_id"] == sec.clients["court"].client_id
    assert refused["action"]["problem"] == "method-not-allowed"
    assert refused["record_ids"] == []


# P10
def test_p10_public_routes_name_no_client_case_or_record(sec: Gateway) -> None:
    """/healthz, /readyz, JWKS, metadata and the API description are public: they must not
    carry client ids, case numbers, record ids or secrets. (/metrics, which counts requests
    per agency, needs a token: P11.)"""
    sec.client.get(CASE_FILE, headers=exchange_headers(sec, "court", "TRIAL", COURT_CASE))
    client_ids = [c.client_id for c in sec.clients.values()]
    secrets = [c.client_secret for c in sec.clients.values()]
    for path in (
        "/healthz",
        "/readyz",
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
        "/openapi.json",
        "/v1/audit/key",
    ):
        response = sec.client.get(path)
        assert response.status_code in (200, 503), (path, response.status_code)
        text = response.text
        for needle in (*client_ids, *secrets, "C00000020", "宁0104", "P00000", '"d":'):
            assert needle not in text, (path, needle)
        assert not re.search(r"Traceback|sqlite:|postgresql|/tmp/", text), path


# P11
def test_p11_metrics_need_the_metrics_read_scope(sec: Gateway) -> None:
    """/metrics counts requests per agency and route: not for everyone."""
    sec.client.get(CASE_FILE, headers=exchange_headers(sec, "court", "TRIAL", COURT_CASE))
    anonymous = sec.client.get("/metrics")
    assert anonymous.status_code == 401
    exchange = sec.client.get("/metrics", headers=sec.auth("court"))
    assert exchange.status_code == 403
    assert "metrics:read" in exchange.json()["detail"]
    refused = audit_entry(sec, exchange)  # an identified caller's refusal is an entry
    assert (refused["kind"], refused["status"]) == ("access", 403)
    name = fresh_name("prometheus")
    register(sec, name, "ZF640000", ["metrics:read"])
    scraped = sec.client.get("/metrics", headers=sec.auth(name))
    assert scraped.status_code == 200
    assert "gateway_requests_total" in scraped.text


def test_p11b_or_a_metrics_port_of_their_own(make_gateway: Any) -> None:
    port = _free_port()
    gw = make_gateway(metrics_port=port)
    assert gw.client.get("/metrics", headers=gw.auth("admin")).status_code in (403, 404)
    deadline = time.monotonic() + 10
    while True:
        try:
            answer = httpx2.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
            break
        except httpx2.ConnectError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert answer.status_code == 200
    assert "gateway_requests_total" in answer.text
    assert httpx2.get(f"http://127.0.0.1:{port}/v1/me", timeout=2).status_code == 404
    assert httpx2.post(f"http://127.0.0.1:{port}/metrics", timeout=2).status_code == 405


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# P12
@pytest.mark.parametrize(
    "scopes",
    [
        ["exchange", "policy:admin"],
        ["exchange", "audit:read"],
        ["policy:admin", "audit:read"],
    ],
)
def test_p12_one_client_holds_one_duty_unless_forced(sec: Gateway, scopes: list[str]) -> None:
    name = fresh_name("dual")
    with pytest.raises(ClientError, match="separation of duties"):
        register(sec, name, "ZF640000", scopes)
    forced = register(sec, name, "ZF640000", scopes, force_combined_roles=True)
    assert forced.duties_combined is True
    assert sec.client.get("/v1/me", headers=sec.auth(name)).json()["scopes"] == sorted(scopes)
