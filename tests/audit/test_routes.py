"""The regulators' audit API over HTTP, on both backends.

One gateway per backend is shared by the module (starting one costs about a
second): it holds SAMPLE_ROWS at indices 0-9 and a checkpoint of them, and
every regulator query appends its own entry, so tests compare before and after
instead of assuming a fixed size.
"""

from __future__ import annotations

import base64
import csv
import io
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from httpx2 import Response

from gateway.audit.checkpoint import Checkpoint, open_checkpoint, parse_verifier
from gateway.audit.entry import AuditKind, EntryDraft
from gateway.audit.merkle import EMPTY_ROOT, leaf_hash, verify_consistency, verify_inclusion
from gateway.errors import PROBLEM_CONTENT_TYPE
from tests.audit.conftest import SAMPLE_ROWS, AuditGateway, exchange_draft
from tests.conftest import Gateway

REQ, OWNER, RES, PURPOSE, DEC, OP, CASE, RULES, LAT, DAY = range(10)
SAMPLE_WINDOW = {"since": "2026-03-01T00:00:00Z", "until": "2026-03-04T00:00:00Z"}


def _where(predicate: Callable[[tuple[Any, ...]], bool]) -> list[int]:
    return [i for i, row in enumerate(SAMPLE_ROWS) if predicate(row)]


def _problem(response: Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_CONTENT_TYPE)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def _key(gw: AuditGateway) -> str:
    response = gw.client.get("/v1/audit/key")
    assert response.status_code == 200
    return response.text.strip()


def _checkpoint(gw: AuditGateway) -> Checkpoint:
    response = gw.client.get("/v1/audit/checkpoint", headers=gw.auth("regulator"))
    assert response.status_code == 200, response.text
    return open_checkpoint(response.text, [parse_verifier(_key(gw))])


def _get(gw: AuditGateway, path: str, who: str = "regulator", **params: Any) -> Response:
    return gw.client.get(path, params=params, headers=gw.auth(who))


def _b64(values: list[str]) -> list[bytes]:
    return [base64.b64decode(v, validate=True) for v in values]


# --- key and checkpoint ----------------------------------------------------------------------


def test_key_is_public_text(audit_gateway: AuditGateway) -> None:
    response = audit_gateway.client.get("/v1/audit/key")  # no token
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text.strip()
    assert re.fullmatch(r"[^+\s]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*", text)
    assert base64.b64decode(text.split("+", 2)[2])[0] == 0x01  # Ed25519
    signer = audit_gateway.runtime.checkpoint_signer
    assert signer is not None
    assert parse_verifier(text) == signer.verifier()


def test_checkpoint_is_a_signed_note(audit_gateway: AuditGateway) -> None:
    before = audit_gateway.size()
    response = _get(audit_gateway, "/v1/audit/checkpoint")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    checkpoint = open_checkpoint(response.text, [parse_verifier(_key(audit_gateway))])
    assert checkpoint.origin == audit_gateway.runtime.settings.audit_origin
    assert checkpoint.size >= len(SAMPLE_ROWS)
    assert response.headers["X-Audit-Index"] == str(before)
    assert audit_gateway.size() == before + 1


def test_a_started_gateway_has_signed_the_empty_tree(sqlite_gateway: Gateway) -> None:
    """Signed at start-up: the checkpoint route never answers 404 on a running gateway."""
    key = sqlite_gateway.client.get("/v1/audit/key").text.strip()
    response = sqlite_gateway.client.get(
        "/v1/audit/checkpoint", headers=sqlite_gateway.auth("regulator")
    )
    assert response.status_code == 200, response.text
    checkpoint = open_checkpoint(response.text, [parse_verifier(key)])
    assert (checkpoint.size, checkpoint.root) == (0, EMPTY_ROOT)
    # C2SP tlog-checkpoint: the key's name is the origin, a schema-less URL.
    origin = sqlite_gateway.settings.audit_origin
    assert checkpoint.origin == origin
    assert key.startswith(f"{origin}+")
    assert f"\n— {origin} " in response.text


# --- entries ---------------------------------------------------------------------------------


def test_entry_by_index(audit_gateway: AuditGateway) -> None:
    response = _get(audit_gateway, "/v1/audit/entries/4")
    assert response.status_code == 200
    body = response.json()
    stored = bytes(audit_gateway.rows("SELECT leaf FROM audit_entries WHERE idx = 4")[0].leaf)
    assert body["index"] == 4
    assert base64.b64decode(body["leaf"]) == stored
    document = orjson.loads(stored)
    assert {k: v for k, v in body.items() if k not in ("index", "leaf")} == {
        k: v for k, v in document.items() if k != "index"
    }
    assert (body["decision"], body["resource"], body["requester"]["agency"]) == (
        "deny",
        "case",
        "JC640104",
    )


def test_entry_out_of_range(audit_gateway: AuditGateway) -> None:
    _problem(_get(audit_gateway, "/v1/audit/entries/999999"), 404)
    _problem(_get(audit_gateway, "/v1/audit/entries/-1"), 422)
    _problem(_get(audit_gateway, "/v1/audit/entries/abc"), 422)
    _problem(_get(audit_gateway, f"/v1/audit/entries/{2**63}"), 422)


DAY_1 = _where(lambda r: r[DAY] == 1)
R1_AT_COURT = _where(lambda r: "r1" in r[RULES] and r[OWNER] == "court")
FILTER_CASES: list[tuple[dict[str, str], list[int]]] = [
    ({"requester_agency": "JC640104"}, _where(lambda r: r[REQ] == "JC640104")),
    ({"owner_agency": "court"}, _where(lambda r: r[OWNER] == "court")),
    ({"resource": "case"}, _where(lambda r: r[RES] == "case")),
    ({"case_number": "C1"}, _where(lambda r: r[CASE] == "C1")),
    ({"operator_id": "op-c"}, _where(lambda r: r[OP] == "op-c")),
    ({"purpose": "REVIEW"}, _where(lambda r: r[PURPOSE] == "REVIEW")),
    ({"decision": "deny"}, _where(lambda r: r[DEC] == "deny")),
    ({"rule_id": "r3"}, _where(lambda r: "r3" in r[RULES])),
    ({"rule_id": "r1", "owner_agency": "court"}, R1_AT_COURT),
    ({"since": "2026-03-02T00:00:00Z", "until": "2026-03-03T00:00:00Z"}, DAY_1),
    # The same instant written with another offset.
    ({"since": "2026-03-02T08:00:00+08:00", "until": "2026-03-03T00:00:00Z"}, DAY_1),
    ({"until": "2026-03-02T00:00:00Z"}, _where(lambda r: r[DAY] == 0)),
    ({"owner_agency": "nobody"}, []),
]  # fmt: skip


@pytest.mark.parametrize(
    ("params", "expected"), FILTER_CASES, ids=["&".join(c[0]) for c in FILTER_CASES]
)
def test_entries_filters(
    audit_gateway: AuditGateway, params: dict[str, str], expected: list[int]
) -> None:
    response = _get(audit_gateway, "/v1/audit/entries", **params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [e["index"] for e in body["entries"]] == expected
    assert body["next_cursor"] is None


def test_pagination_with_cursors_covers_every_entry_once(audit_gateway: AuditGateway) -> None:
    existing = audit_gateway.size()
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 4}
        if cursor:
            params["cursor"] = cursor
        body = _get(audit_gateway, "/v1/audit/entries", **params).json()
        seen.extend(e["index"] for e in body["entries"])
        cursor = body["next_cursor"]
        pages += 1
        if cursor is None:
            break
        assert pages < 100
    # Index order, no repeats, no gaps; paging itself appended query entries, which the
    # keyset walk picks up, and nothing that existed before was skipped.
    assert seen == list(range(len(seen)))
    assert len(seen) >= existing


def test_filtered_pagination(audit_gateway: AuditGateway) -> None:
    expected = _where(lambda r: r[OWNER] == "court")
    seen: list[int] = []
    params: dict[str, Any] = {"owner_agency": "court", "limit": 2}
    while True:
        body = _get(audit_gateway, "/v1/audit/entries", **params).json()
        assert len(body["entries"]) <= 2
        seen.extend(e["index"] for e in body["entries"])
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    assert seen == expected


def _cursor(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).decode("ascii").rstrip("=")


def _query_id(path: str, params: dict[str, Any]) -> str:
    return path.rsplit("/", 1)[1] + "-" + "&".join(f"{k}={v}"[:40] for k, v in params.items())


BAD_QUERIES: list[tuple[str, dict[str, Any], int]] = [
    ("/v1/audit/entries", {"cursor": "!!!not-base64!!!"}, 422),
    ("/v1/audit/entries", {"cursor": "eyJrIjoib3RoZXIiLCJhIjoxfQ"}, 422),  # {"k":"other","a":1}
    ("/v1/audit/entries", {"cursor": "bm90IGpzb24"}, 422),  # "not json"
    ("/v1/audit/entries", {"cursor": _cursor(b'{"k":"audit","a":"x"}')}, 422),
    ("/v1/audit/entries", {"cursor": _cursor(b'{"k":"audit","a":-5}')}, 422),
    ("/v1/audit/entries", {"cursor": _cursor(b'{"k":"audit","a":true}')}, 422),
    ("/v1/audit/entries", {"cursor": _cursor(b'{"k":"audit","a":99999999999999999999}')}, 422),
    ("/v1/audit/entries", {"cursor": "x" * 600}, 422),
    ("/v1/audit/entries", {"limit": 0}, 422),
    ("/v1/audit/entries", {"limit": 1001}, 422),
    ("/v1/audit/entries", {"requester_agency": "police"}, 422),
    ("/v1/audit/entries", {"owner_agency": "Court!"}, 422),
    ("/v1/audit/entries", {"decision": "maybe"}, 422),
    ("/v1/audit/entries", {"since": "yesterday"}, 422),
    ("/v1/audit/entries", {"since": "2026-03-01T00:00:00"}, 422),  # no time zone
    ("/v1/audit/entries", {"case_number": ""}, 422),
    ("/v1/audit/entries", {"rule_id": "r" * 129}, 422),
    ("/v1/audit/export", {"format": "xml"}, 422),
    ("/v1/audit/export", {"until": "2026-13-01T00:00:00Z"}, 422),
    ("/v1/audit/stats", {"group_by": "requester,colour"}, 422),
    ("/v1/audit/stats", {"group_by": "owner,owner"}, 422),
    ("/v1/audit/stats", {"interval": "week"}, 422),
    ("/v1/audit/proofs/inclusion", {"index": 0}, 422),
    ("/v1/audit/proofs/inclusion", {"index": -1, "tree_size": 5}, 422),
    ("/v1/audit/proofs/inclusion", {"index": 0, "tree_size": 0}, 422),
    ("/v1/audit/proofs/inclusion", {"index": 5, "tree_size": 5}, 400),  # index beyond the tree
    ("/v1/audit/proofs/inclusion", {"index": 0, "tree_size": 10**9}, 400),  # beyond checkpoint
    ("/v1/audit/proofs/consistency", {"from": 5, "to": 3}, 400),
    ("/v1/audit/proofs/consistency", {"from": 1, "to": 10**9}, 400),
    ("/v1/audit/proofs/consistency", {"from": 0, "to": 3}, 422),
    ("/v1/audit/proofs/consistency", {"to": 3}, 422),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "params", "status"),
    BAD_QUERIES,
    ids=[_query_id(p, q) for p, q, _ in BAD_QUERIES],
)
def test_bad_input_is_a_4xx_problem(
    audit_gateway: AuditGateway, path: str, params: dict[str, Any], status: int
) -> None:
    before = audit_gateway.size()
    response = _get(audit_gateway, path, **params)
    body = _problem(response, status)
    assert "detail" in body or "title" in body
    # A refused query releases nothing, and is itself recorded with its status.
    assert audit_gateway.size() == before + 1
    assert response.headers["X-Audit-Index"] == str(before)
    entry = audit_gateway.rows("SELECT kind, status FROM audit_entries WHERE idx = :i", i=before)
    assert (entry[0].kind, entry[0].status) == ("audit_query", status)


# --- proofs ----------------------------------------------------------------------------------


def test_inclusion_proofs_from_the_api_verify(audit_gateway: AuditGateway) -> None:
    checkpoint = _checkpoint(audit_gateway)
    size = checkpoint.size
    for index in sorted({0, 1, 4, size // 2, size - 1}):
        leaf = base64.b64decode(_get(audit_gateway, f"/v1/audit/entries/{index}").json()["leaf"])
        response = _get(audit_gateway, "/v1/audit/proofs/inclusion", index=index, tree_size=size)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["index"], body["tree_size"]) == (index, size)
        verify_inclusion(leaf_hash(leaf), index, size, _b64(body["hashes"]), checkpoint.root)


def test_consistency_proof_between_two_checkpoints(audit_gateway: AuditGateway) -> None:
    first = _checkpoint(audit_gateway)
    # (Timed now, outside the sample window the statistics tests count.)
    audit_gateway.append(*(exchange_draft(100 + i, time=datetime.now(UTC)) for i in range(5)))
    assert audit_gateway.checkpoint() is not None
    second = _checkpoint(audit_gateway)
    assert second.size > first.size
    response = audit_gateway.client.get(
        "/v1/audit/proofs/consistency",
        params={"from": first.size, "to": second.size},
        headers=audit_gateway.auth("regulator"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["from"], body["to"]) == (first.size, second.size)
    verify_consistency(first.size, second.size, _b64(body["hashes"]), first.root, second.root)


# --- export and statistics -----------------------------------------------------------------


def test_export_jsonl_and_csv_hold_the_same_entries(audit_gateway: AuditGateway) -> None:
    params = {"owner_agency": "court"}
    listed = _get(audit_gateway, "/v1/audit/entries", **params).json()["entries"]
    jsonl = _get(audit_gateway, "/v1/audit/export", format="jsonl", **params)
    assert jsonl.status_code == 200
    assert jsonl.headers["content-type"].startswith("application/x-ndjson")
    assert "X-Audit-Index" in jsonl.headers
    lines = [orjson.loads(line) for line in jsonl.content.splitlines()]
    assert lines == listed

    exported = _get(audit_gateway, "/v1/audit/export", format="csv", **params)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [int(r["index"]) for r in rows] == [e["index"] for e in listed]
    assert [r["leaf"] for r in rows] == [e["leaf"] for e in listed]
    assert [r["decision"] for r in rows] == [e["decision"] for e in listed]


def test_stats(audit_gateway: AuditGateway) -> None:
    response = _get(
        audit_gateway,
        "/v1/audit/stats",
        group_by="requester,owner,resource,decision",
        interval="day",
        **SAMPLE_WINDOW,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["group_by"] == ["requester", "owner", "resource", "decision"]
    assert body["interval"] == "day"
    rows = body["rows"]
    assert sum(r["count"] for r in rows) == len(SAMPLE_ROWS)
    court = [
        r
        for r in rows
        if (r["period"], r["requester"], r["owner"], r["resource"], r["decision"])
        == ("2026-03-03", "GA640104", "court", "judgment", "allow")
    ]
    assert len(court) == 1
    assert court[0]["count"] == 2
    # Latencies 500 and 600: the percentiles pick the nearest rank.
    assert court[0]["upstream_latency_us"] == {"p50": 500, "p95": 600, "p99": 600}

    by_requester = {
        r["requester"]: r
        for r in _get(
            audit_gateway, "/v1/audit/stats", group_by="requester", **SAMPLE_WINDOW
        ).json()["rows"]
    }
    for agency in ("GA640104", "JC640104", "FY640104"):
        mine = [r for r in SAMPLE_ROWS if r[REQ] == agency]
        assert by_requester[agency]["count"] == len(mine)
        assert by_requester[agency]["denied"] == sum(r[DEC] == "deny" for r in mine)


def test_stats_default_grouping(audit_gateway: AuditGateway) -> None:
    body = _get(audit_gateway, "/v1/audit/stats", decision="deny").json()
    assert body["group_by"] == ["requester", "owner", "resource", "decision"]
    assert sum(r["denied"] for r in body["rows"]) == 2


# --- the watchers are watched ------------------------------------------------------------------


REGULATOR_QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("/v1/audit/checkpoint", {}),
    ("/v1/audit/entries/3", {}),
    ("/v1/audit/entries", {"owner_agency": "court", "limit": 2}),
    ("/v1/audit/export", {"format": "csv", "decision": "deny"}),
    ("/v1/audit/export", {"format": "jsonl"}),
    ("/v1/audit/stats", {"group_by": "decision"}),
    ("/v1/audit/proofs/inclusion", {"index": 2, "tree_size": 10}),
    ("/v1/audit/proofs/consistency", {"from": 3, "to": 10}),
]


@pytest.mark.parametrize(
    ("path", "params"), REGULATOR_QUERIES, ids=[q[0] for q in REGULATOR_QUERIES]
)
def test_every_regulator_query_is_one_entry(
    audit_gateway: AuditGateway, path: str, params: dict[str, Any]
) -> None:
    before = audit_gateway.size()
    response = _get(audit_gateway, path, **params)
    assert response.status_code == 200, response.text
    assert audit_gateway.size() == before + 1
    index = int(response.headers["X-Audit-Index"])
    assert index == before
    entry = _get(audit_gateway, f"/v1/audit/entries/{index}").json()
    assert entry["kind"] == AuditKind.AUDIT_QUERY
    assert entry["requester"] == {
        "agency": "ZF640000",
        "client_id": audit_gateway.client_id("regulator"),
        "operator_id": None,
    }
    assert entry["decision"] == "allow"
    assert entry["action"]["route"] == path
    for key, value in params.items():
        assert f"{key}={value}".replace(",", "%2C") in entry["action"]["query"]


def test_regulator_queries_never_change_existing_entries(audit_gateway: AuditGateway) -> None:
    def snapshot() -> dict[int, tuple[Any, ...]]:
        return {
            int(r.idx): tuple(r)
            for r in audit_gateway.rows("SELECT * FROM audit_entries ORDER BY idx")
        }

    before = snapshot()
    for path, params in REGULATOR_QUERIES:
        assert _get(audit_gateway, path, **params).status_code == 200
    after = snapshot()
    assert {i: after[i] for i in before} == before
    added = sorted(set(after) - set(before))
    assert added == list(range(len(before), len(before) + len(REGULATOR_QUERIES)))
    kinds = audit_gateway.rows(
        "SELECT DISTINCT kind FROM audit_entries WHERE idx >= :i", i=len(before)
    )
    assert [k.kind for k in kinds] == ["audit_query"]
    report = audit_gateway.verify()
    assert report.ok, report.problems


def test_query_fails_closed_when_its_entry_cannot_be_written(audit_gateway: AuditGateway) -> None:
    writer = audit_gateway.runtime.audit_writer
    before = audit_gateway.size()
    writer.stop()
    try:
        for path, params in REGULATOR_QUERIES:
            response = _get(audit_gateway, path, **params)
            body = _problem(response, 503)
            assert "X-Audit-Index" not in response.headers
            assert "rows" not in body
            assert "entries" not in body
            assert "hashes" not in body
    finally:
        writer.start()
    assert audit_gateway.size() == before
    response = _get(audit_gateway, "/v1/audit/stats")
    assert response.status_code == 200
    assert response.headers["X-Audit-Index"] == str(before)


# --- who may ask ---------------------------------------------------------------------------------


def test_exchange_client_may_prove_its_own_entries_only(audit_gateway: AuditGateway) -> None:
    police, court = audit_gateway.client_id("police"), audit_gateway.client_id("court")
    own, other = audit_gateway.append(
        EntryDraft(kind=AuditKind.EXCHANGE, client_id=police, requester_agency="GA640104"),
        EntryDraft(kind=AuditKind.EXCHANGE, client_id=court, requester_agency="FY640104"),
    )
    audit_gateway.checkpoint()
    # The agency system reads the checkpoint too; every read of the log is recorded.
    before = audit_gateway.size()
    note = _get(audit_gateway, "/v1/audit/checkpoint", who="police")
    assert note.status_code == 200
    assert note.headers["X-Audit-Index"] == str(before)
    checkpoint = open_checkpoint(note.text, [parse_verifier(_key(audit_gateway))])

    response = _get(
        audit_gateway,
        "/v1/audit/proofs/inclusion",
        who="police",
        index=own,
        tree_size=checkpoint.size,
    )
    assert response.status_code == 200, response.text
    leaf = bytes(audit_gateway.rows("SELECT leaf FROM audit_entries WHERE idx = :i", i=own)[0].leaf)
    verify_inclusion(
        leaf_hash(leaf), own, checkpoint.size, _b64(response.json()["hashes"]), checkpoint.root
    )
    assert audit_gateway.size() == before + 2

    for index in (other, 0, 10**9):  # another client's, a regulator-free sample, none at all
        _problem(
            _get(
                audit_gateway,
                "/v1/audit/proofs/inclusion",
                who="police",
                index=index,
                tree_size=checkpoint.size,
            ),
            403,
        )


@pytest.mark.parametrize(
    "path",
    [
        "/v1/audit/entries/0",
        "/v1/audit/entries",
        "/v1/audit/export",
        "/v1/audit/stats",
        "/v1/audit/proofs/consistency?from=1&to=2",
    ],
)
def test_exchange_client_may_not_read_the_log(audit_gateway: AuditGateway, path: str) -> None:
    _problem(audit_gateway.client.get(path, headers=audit_gateway.auth("police")), 403)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/audit/checkpoint",
        "/v1/audit/entries/0",
        "/v1/audit/entries",
        "/v1/audit/export",
        "/v1/audit/stats",
        "/v1/audit/proofs/inclusion?index=0&tree_size=1",
        "/v1/audit/proofs/consistency?from=1&to=2",
    ],
)
def test_token_and_scope_are_required(audit_gateway: AuditGateway, path: str) -> None:
    before = audit_gateway.size()
    _problem(audit_gateway.client.get(path), 401)
    _problem(audit_gateway.client.get(path, headers={"Authorization": "Bearer nonsense"}), 401)
    # No accountable caller without a valid token: not recorded.
    assert audit_gateway.size() == before
    refused = audit_gateway.client.get(path, headers=audit_gateway.auth("admin"))
    _problem(refused, 403)
    # An authenticated caller without the scope is: a refused query is an entry too.
    assert audit_gateway.size() == before + 1
    assert refused.headers["X-Audit-Index"] == str(before)


def test_the_log_verifies_after_all_of_it(audit_gateway: AuditGateway) -> None:
    audit_gateway.checkpoint()
    report = audit_gateway.verify()
    assert report.ok, report.problems
    assert report.entries == audit_gateway.size()
