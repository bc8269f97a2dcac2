"""Attack matrix, injection and traversal (J1-J12).

Every malformed id, filter, cursor, field list or header is refused before any call for
data: 4xx (404 when the path no longer names a route, 422/400 otherwise), never 200, never
500, and when the request reached the exchange its audit entry says ``invalid`` with no
upstream status. NUL bytes get their own section: PostgreSQL cannot store them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx2
import pytest

from gateway.policy.bundle import bundle_from_directory
from gateway.settings import REPO_ROOT
from tests.conftest import Gateway, postgres_schema, started_gateway
from tests.exchange.conftest import exchange_headers
from tests.security.conftest import LiveGateway
from tests.security.helpers import aggregated_entries, audit_entry, send_raw

PERSON_SEARCH = "/v1/resources/person"


@pytest.fixture
def headers(sec: Gateway, sealed_case_number: str) -> dict[str, str]:
    """The committee supervising the sealed person's case (挂牌督办), to whom it is sealed."""
    headers = exchange_headers(sec, "committee", "OVERSIGHT", sealed_case_number)
    headers["X-Approval-Reference"] = "%E5%AE%81%E6%94%BF%E6%B3%95%E7%9D%A3%E3%80%943%E5%8F%B7"
    return headers


def _refused_before_any_call(
    sec: Gateway, response: httpx2.Response, statuses: tuple[int, ...]
) -> None:
    assert response.status_code in statuses, response.text
    assert response.headers["content-type"] == "application/problem+json"
    if "X-Audit-Index" in response.headers:  # it reached the exchange: audited, no data call
        entry = audit_entry(sec, response)
        assert entry["decision"] == "invalid"
        assert entry["upstream"]["status"] is None
        assert entry["status"] == response.status_code


def test_control_the_search_works(sec: Gateway, headers: dict[str, str]) -> None:
    response = sec.client.get(PERSON_SEARCH, params={"case_id": "C00000003"}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["records"]


# J1
@pytest.mark.parametrize(
    "path",
    [
        "..%2F..%2F..%2Foauth%2Ftoken",
        "..%2f..%2fhealthz",
        "%2e%2e",
        "%2E%2E%2F%2E%2E%2Fcatalog",
        ".%2e",
        "P0000000302%2F..%2FP0000000301",
        "a/b",
        "P0000000302%5C..%5CP0000000301",
        "P0000000302%3B..",
        "P0000000302%3F_fault%3Dgarbage",
        "P0000000302%23",
    ],
)
def test_j01_path_traversal_and_encoded_slashes_in_record_ids(
    sec: Gateway, headers: dict[str, str], path: str
) -> None:
    response = sec.client.get(
        f"/v1/resources/person/{path}", headers=headers, follow_redirects=False
    )
    _refused_before_any_call(sec, response, (404, 422))
    assert "record" not in response.json()


def test_j01b_trailing_encoded_slash_redirects_to_the_same_record(
    sec: Gateway, headers: dict[str, str]
) -> None:
    """The router's slash redirect keeps the id as it was: no way into another path."""
    response = sec.client.get(
        "/v1/resources/person/P0000000302%2F", headers=headers, follow_redirects=False
    )
    assert response.status_code == 307
    assert response.headers["location"].endswith("/v1/resources/person/P0000000302")
    assert "X-Audit-Index" not in response.headers  # nothing was served: no exchange


# J2
def test_j02_dot_segments_on_the_wire_are_not_resolved(live: LiveGateway) -> None:
    """On a real server the raw request line reaches the router as sent: no normalisation
    turns /v1/resources/x/../../.. into another route. (Double encodings are tested here only:
    Starlette's TestClient decodes a path twice.)"""
    for target in (
        "/v1/resources/person/../../../healthz",
        "/v1/resources/person/..%2F..%2F..%2Fhealthz",
        "/v1/resources/person/%2e%2e/%2e%2e/%2e%2e/healthz",
        "/v1/resources/person/..\\..\\..\\healthz",
        "/v1/resources/person/%252e%252e%252f%252e%252e%252fhealthz",
        "/v1/resources/person/%c0%ae%c0%ae%c0%af",
    ):
        sent = f"GET {target} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n"
        result = send_raw(live.port, sent.encode())
        assert result.statuses, result.data
        assert all(400 <= s < 500 for s in result.statuses), (target, result.data[:300])


# J3
@pytest.mark.parametrize(
    "record_id",
    [
        "P0000000302'--",
        "P0000000302' OR '1'='1",
        "P0000000302;DROP TABLE persons",
        "P0000000302\x00",
        "P0000000302\r\nX-Injected: 1",
        "P" * 65,
        "-P0000000302",
        "_P0000000302",
        " P0000000302",
        "P0000000302 ",
        "$(id)",
        "{{7*7}}",
        "${jndi:ldap://x}",
        "*",
        "%",
        "P0000000302%00",
    ],
)
def test_j03_injection_in_record_ids(sec: Gateway, headers: dict[str, str], record_id: str) -> None:
    response = sec.client.get("/v1/resources/person/" + quote(record_id, safe=""), headers=headers)
    _refused_before_any_call(sec, response, (404, 422))
    if response.status_code == 422:
        assert response.json()["errors"][0]["field"] == "record_id"


# J4
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"case_id": "C00000003' OR '1'='1"}, "case_id"),
        ({"case_id": "C00000003'--"}, "case_id"),
        ({"case_id": "C00000003\x00"}, "case_id"),
        ({"case_id": "C00000003%"}, "case_id"),
        ({"case_id": "*"}, "case_id"),
        ({"case_id": "C" * 20_000}, "case_id"),
        ({"case_id": ""}, "case_id"),
        ({"id_number": "' OR 1=1 --"}, "id_number"),
        ({"id_number": "640522198510300072' OR '1'='1"}, "id_number"),
        ({"id_number": "64052219851030007%"}, "id_number"),
        ({"case_id": "C00000003", "1=1": "1"}, "1=1"),
        ({"case_id": "C00000003", "case_id' OR '1'='1": "x"}, "case_id' OR '1'='1"),
        ({"case_id": "C00000003", "name": "%"}, "name"),
        ({"case_id": "C00000003", "limit": "1; DROP TABLE x"}, "limit"),
        ({"case_id": "C00000003", "limit": "9" * 400}, "limit"),
        ({"case_id": "C00000003", "limit": "-1"}, "limit"),
        ({"case_id": "C00000003", "fields": "person_id,*"}, "fields"),
        ({"case_id": "C00000003", "fields": "person_id);DROP TABLE x;--"}, "fields"),
        ({"case_id": "C00000003", "fields": "__class__"}, "fields"),
    ],
)
def test_j04_injection_in_filters_limit_and_fields(
    sec: Gateway, headers: dict[str, str], params: dict[str, str], field: str
) -> None:
    response = sec.client.get(PERSON_SEARCH, params=params, headers=headers)
    _refused_before_any_call(sec, response, (422,))
    assert field[:64] in {e["field"] for e in response.json()["errors"]}


def test_j05_repeated_filters_are_refused(sec: Gateway, headers: dict[str, str]) -> None:
    """Parameter pollution: which of two values would the agency system use?"""
    for query in (
        "case_id=C00000003&case_id=C00000020",
        "case_id=C00000003&limit=1&limit=100",
        "case_id=C00000003&cursor=a&cursor=b",
    ):
        response = sec.client.get(f"{PERSON_SEARCH}?{query}", headers=headers)
        _refused_before_any_call(sec, response, (422,))


def _cursor(payload: Any) -> str:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _fingerprint(resource: str, filters: dict[str, str]) -> str:
    """The unsealed cursor format's search fingerprint, as an attacker would forge it. Cursors
    are sealed now (AES-GCM, docs/exchange.md), so every one of these must fail alike."""
    text = resource + "\n" + "\n".join(f"{k}={v}" for k, v in sorted(filters.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


SEARCH_Q = _fingerprint("person", {"case_id": "C00000003"})


# J6
@pytest.mark.parametrize(
    "cursor",
    [
        "!!!not-base64!!!",
        _cursor(b"not json"),
        _cursor(b"\xff\xfe\x00"),
        _cursor([1, 2, 3]),
        _cursor("search"),
        _cursor({"k": "audit", "a": 5}),
        _cursor({"k": "search", "a": "P0000000301", "q": "0" * 16}),
        _cursor(
            {
                "k": "search",
                "a": "P0000000301",
                "q": _fingerprint("person", {"case_id": "C00000020"}),
            }
        ),
        _cursor({"k": "search", "a": 1, "q": SEARCH_Q}),
        _cursor({"k": "search", "a": ["P1"], "q": SEARCH_Q}),
        _cursor({"k": "search", "a": None, "q": SEARCH_Q}),
        _cursor({"k": "search", "q": SEARCH_Q}),
        "A" * 513,
        _cursor({"k": "search", "a": "P1", "q": SEARCH_Q, "x": "y" * 400}),
        _cursor(b"[" * 300 + b"]" * 300),
    ],
    ids=[
        "not-base64",
        "not-json",
        "binary",
        "list",
        "string",
        "other-kind",
        "other-search",
        "other-filters",
        "after-int",
        "after-list",
        "after-null",
        "after-missing",
        "too-long",
        "padded-too-long",
        "deep-nesting",
    ],
)
def test_j06_forged_and_malformed_cursors(
    sec: Gateway, headers: dict[str, str], cursor: str
) -> None:
    response = sec.client.get(
        PERSON_SEARCH, params={"case_id": "C00000003", "cursor": cursor}, headers=headers
    )
    _refused_before_any_call(sec, response, (422,))
    assert "cursor" in {e["field"] for e in response.json()["errors"]}


# J7
@pytest.mark.parametrize(
    "after",
    ["' OR '1'='1", "\x00", "../../admin", "P0000000302&case_id=C00000020", "A" * 300],
    ids=["sql", "nul", "traversal", "param-injection", "long"],
)
def test_j07_forged_cursor_position_is_checked(
    sec: Gateway, headers: dict[str, str], after: str
) -> None:
    cursor = _cursor({"k": "search", "a": after, "q": SEARCH_Q})
    response = sec.client.get(
        PERSON_SEARCH, params={"case_id": "C00000003", "cursor": cursor}, headers=headers
    )
    _refused_before_any_call(sec, response, (422,))


# J8
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Operator-Id", "o1' OR '1'='1"),
        ("X-Operator-Id", "o1;rm -rf /"),
        ("X-Operator-Id", "<script>alert(1)</script>"),
        ("X-Operator-Id", "o" * 65),
        ("X-Operator-Id", "o1%00"),
        ("X-Purpose", "TRIAL' --"),
        ("X-Purpose", "trial"),
        ("X-Purpose", "COMMUNITY_CORRECTION,TRIAL"),
        ("X-Case-Number", "%27%20OR%20%271%27%3D%271"),
        ("X-Case-Number", "(2019)%E5%AE%810104%E5%88%91%E5%88%9D8049%E5%8F%B7'--"),
        ("X-Case-Number", "%00"),
        ("X-Case-Number", "%ZZ"),
        ("X-Case-Number", "%C0%AF"),
        ("X-Case-Number", "%ED%A0%80"),
        ("X-Case-Number", "A6401040000002024078396%0D%0AX-Injected:1"),
    ],
)
def test_j08_injection_in_exchange_headers(
    sec: Gateway, headers: dict[str, str], name: str, value: str
) -> None:
    response = sec.client.get("/v1/resources/person/P0000000302", headers={**headers, name: value})
    _refused_before_any_call(sec, response, (400,))
    assert response.json()["header"] == name


# J9
@pytest.mark.parametrize(
    "query",
    [
        {"operator_id": "' OR '1'='1"},
        {"case_number": "x' UNION SELECT leaf FROM audit_entries --"},
        {"rule_id": "%"},
        {"resource": "case' --"},
        {"requester_agency": "FY640104' OR '1'='1"},
        {"since": "2024-01-01T00:00:00+00:00' --"},
    ],
)
def test_j09_injection_in_audit_filters_matches_nothing(
    sec: Gateway, query: dict[str, str]
) -> None:
    """The regulator's filters are parameters, never SQL: literal matches or a 422."""
    response = sec.client.get("/v1/audit/entries", params=query, headers=sec.auth("regulator"))
    assert response.status_code in (200, 422), response.text
    if response.status_code == 200:
        assert response.json()["entries"] == []


# --- NUL bytes: PostgreSQL text cannot hold them ----------------------------------------


@pytest.fixture(scope="module")
def pg(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """A PostgreSQL gateway gathering audit entries for 100 ms per batch (group commit)."""
    server: str = request.getfixturevalue("postgres_server")
    tmp = tmp_path_factory.mktemp("security-pg")
    with postgres_schema(server) as url, started_gateway(tmp, url, audit_batch_wait_ms=100) as gw:
        yield gw


NUL_RESOURCE = "/v1/resources/pers%00on/P0000000302"


# J10
@pytest.mark.postgres
def test_j10_nul_in_the_resource_segment_is_a_plain_4xx(pg: Gateway) -> None:
    """A NUL in the resource segment must not break an insert (PostgreSQL text refuses NUL),
    even from an unauthenticated caller."""
    response = pg.client.get(NUL_RESOURCE)
    assert response.status_code == 401
    # anonymous: counted under the route's template, so the NUL never reaches the log
    assert "X-Audit-Index" not in response.headers
    [counted] = [
        e for e in aggregated_entries(pg) if e["aggregate"]["route"].endswith("/{record_id}")
    ]
    assert counted["aggregate"]["route"] == "GET /v1/resources/{resource}/{record_id}"
    assert counted["aggregate"]["statuses"] == {"401": 1}


# J11
@pytest.mark.postgres
def test_j11_a_poisoned_entry_does_not_fail_its_neighbours(pg: Gateway) -> None:
    """Group commit: one bad entry must not fail the batch it shares with other clients."""
    headers = {**pg.auth("court"), "X-Purpose": "TRIAL", "X-Operator-Id": "innocent-1"}
    innocent: list[int] = []

    def attack() -> None:
        pg.client.get(NUL_RESOURCE)

    def legitimate() -> None:
        innocent.append(pg.client.get("/v1/resources/no_such_type/X1", headers=headers).status_code)

    for _ in range(4):  # both land in one 100 ms batch
        threads = [threading.Thread(target=attack), threading.Thread(target=legitimate)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert innocent == [404] * 4


# J12
@pytest.mark.postgres
@pytest.mark.parametrize("name", ["operator_id", "case_number", "rule_id"])
def test_j12_nul_in_audit_filters_is_a_422(pg: Gateway, name: str) -> None:
    """A NUL in a regulator's filter is refused, not handed to PostgreSQL (a 500, unaudited)."""
    response = pg.client.get(
        "/v1/audit/entries", params={name: "x\x00y"}, headers=pg.auth("regulator")
    )
    assert response.status_code == 422


SHIPPED = bundle_from_directory(REPO_ROOT / "policies")


def _candidate(comment: str, extra: str = "") -> dict[str, Any]:
    court = "permissions/court.yaml"
    files = {**SHIPPED, court: SHIPPED[court] + f"# {uuid.uuid4().hex}\n{extra}"}
    return {"comment": comment, "files": files}


# J13
def test_j13_control_characters_in_a_candidate_are_a_422(sec: Gateway) -> None:
    response = sec.client.post(
        "/v1/admin/policies/candidates",
        json=_candidate("nul in yaml", "# \x00\n"),
        headers=sec.auth("admin"),
    )
    assert response.status_code == 422


# J14
@pytest.mark.postgres
def test_j14_nul_in_a_policy_comment_is_a_422(pg: Gateway) -> None:
    response = pg.client.post(
        "/v1/admin/policies/candidates", json=_candidate("a\x00b"), headers=pg.auth("admin")
    )
    assert response.status_code == 422


@pytest.mark.postgres
def test_j15_nul_elsewhere_on_postgresql_is_refused_cleanly(pg: Gateway) -> None:
    """Control for J10-J14: where the input is validated first, NUL is a plain 4xx."""
    headers = {**pg.auth("court"), "X-Purpose": "TRIAL", "X-Operator-Id": "o1"}
    for path, status in (
        ("/v1/resources/person/P%00", 422),
        ("/v1/resources/person?case_id=C1%00", 422),
        ("/v1/resources/person?ca%00se_id=C1", 422),
        ("/v1/resources/person/P1?fields=case_id%00", 422),
    ):
        response = pg.client.get(path, headers=headers)
        assert response.status_code == status, (path, response.text)
        assert "X-Audit-Index" in response.headers
    token = pg.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "a\x00b", "client_secret": "x"},
    )
    assert token.status_code == 401
