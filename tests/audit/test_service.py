"""AuditService: entries, filters, keyset pages, export, statistics and proofs (no HTTP)."""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import orjson
import pytest

from gateway.audit.checkpoint import open_checkpoint, parse_verifier
from gateway.audit.leaf import leaf_bytes
from gateway.audit.merkle import Frontier, leaf_hash, verify_consistency, verify_inclusion
from gateway.audit.repository import EntryFilter
from gateway.audit.service import EXPORT_COLUMNS, AuditService, neutralise_cell
from gateway.errors import BadRequest, NotFound
from tests.audit.conftest import SAMPLE_ROWS, T0, AuditLog

# Column positions in SAMPLE_ROWS.
REQ, OWNER, RES, PURPOSE, DEC, OP, CASE, RULES, LAT, DAY = range(10)


def _where(predicate: Callable[[tuple[Any, ...]], bool]) -> list[int]:
    return [i for i, row in enumerate(SAMPLE_ROWS) if predicate(row)]


FILTER_CASES: list[tuple[str, EntryFilter, list[int]]] = [
    ("requester", EntryFilter(requester_agency="JC640104"), _where(lambda r: r[REQ] == "JC640104")),
    ("owner", EntryFilter(owner_agency="court"), _where(lambda r: r[OWNER] == "court")),
    ("resource", EntryFilter(resource="case"), _where(lambda r: r[RES] == "case")),
    ("case", EntryFilter(case_number="C1"), _where(lambda r: r[CASE] == "C1")),
    ("operator", EntryFilter(operator_id="op-c"), _where(lambda r: r[OP] == "op-c")),
    ("purpose", EntryFilter(purpose="REVIEW"), _where(lambda r: r[PURPOSE] == "REVIEW")),
    ("decision", EntryFilter(decision="deny"), _where(lambda r: r[DEC] == "deny")),
    ("rule r1", EntryFilter(rule_id="r1"), _where(lambda r: "r1" in r[RULES])),
    ("rule r3", EntryFilter(rule_id="r3"), _where(lambda r: "r3" in r[RULES])),
    ("rule unknown", EntryFilter(rule_id="nope"), []),
    ("since", EntryFilter(since=T0 + timedelta(days=1)), _where(lambda r: r[DAY] >= 1)),
    ("until", EntryFilter(until=T0 + timedelta(days=1)), _where(lambda r: r[DAY] < 1)),
    (
        "one day",
        EntryFilter(since=T0 + timedelta(days=1), until=T0 + timedelta(days=2)),
        _where(lambda r: r[DAY] == 1),
    ),
    (
        "combined",
        EntryFilter(requester_agency="GA640104", decision="allow"),
        _where(lambda r: r[REQ] == "GA640104" and r[DEC] == "allow"),
    ),
    ("nothing", EntryFilter(owner_agency="nobody"), []),
]


def test_filter_cases_are_not_trivial() -> None:
    for name, _, expected in FILTER_CASES:
        if name not in ("rule unknown", "nothing"):
            assert 0 < len(expected) < len(SAMPLE_ROWS), name


@pytest.mark.parametrize(
    ("name", "filters", "expected"), FILTER_CASES, ids=[c[0] for c in FILTER_CASES]
)
def test_each_filter_selects_the_right_entries(
    sample_log: AuditLog, name: str, filters: EntryFilter, expected: list[int]
) -> None:
    views, next_after = sample_log.service.entries(filters, after=None, limit=100)
    assert [v.index for v in views] == expected
    assert next_after is None


def test_an_entry_carries_its_exact_leaf(sample_log: AuditLog) -> None:
    view = sample_log.service.entry(4)
    stored = bytes(sample_log.scalar("SELECT leaf FROM audit_entries WHERE idx = 4"))
    assert view.leaf == stored
    assert view.document == orjson.loads(stored)
    body = view.as_json()
    assert body["index"] == 4
    assert base64.b64decode(body["leaf"]) == stored
    assert body["decision"] == "deny"
    assert body["requester"]["agency"] == "JC640104"
    assert body["rule_ids"] == ["r2", "r3"]
    # The JSON body is the leaf document: re-encoding it gives the leaf bytes back.
    assert leaf_bytes({k: v for k, v in body.items() if k != "leaf"}) == stored
    with pytest.raises(NotFound):
        sample_log.service.entry(len(SAMPLE_ROWS))


@pytest.mark.parametrize("limit", [1, 3, 4, 10, 11])
def test_keyset_pages_cover_every_entry_once(sample_log: AuditLog, limit: int) -> None:
    seen: list[int] = []
    after: int | None = None
    pages = 0
    while True:
        views, after = sample_log.service.entries(EntryFilter(), after=after, limit=limit)
        pages += 1
        assert len(views) <= limit
        seen.extend(v.index for v in views)
        if after is None:
            break
        assert after == views[-1].index
    assert seen == list(range(len(SAMPLE_ROWS)))
    assert pages == -(-len(SAMPLE_ROWS) // limit)  # no empty page after a full last one


def test_filtered_pages(sample_log: AuditLog) -> None:
    filters = EntryFilter(owner_agency="court")
    views, after = sample_log.service.entries(filters, after=None, limit=2)
    assert [v.index for v in views] == [0, 1]
    views, after = sample_log.service.entries(filters, after=after, limit=2)
    assert [v.index for v in views] == [3, 8]
    views, after = sample_log.service.entries(filters, after=after, limit=2)
    assert [v.index for v in views] == [9]
    assert after is None


def _jsonl(service: AuditService, filters: EntryFilter) -> list[dict[str, Any]]:
    return [
        orjson.loads(line) for line in b"".join(service.export_lines(filters, "jsonl")).splitlines()
    ]


def _csv(service: AuditService, filters: EntryFilter) -> list[dict[str, str]]:
    text = b"".join(service.export_lines(filters, "csv")).decode("utf-8")
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == EXPORT_COLUMNS
    return list(reader)


@pytest.mark.parametrize(
    "filters", [EntryFilter(), EntryFilter(decision="deny"), EntryFilter(rule_id="r1")]
)
def test_jsonl_and_csv_exports_hold_the_same_entries(
    sample_log: AuditLog, filters: EntryFilter
) -> None:
    views, _ = sample_log.service.entries(filters, after=None, limit=100)
    lines = _jsonl(sample_log.service, filters)
    rows = _csv(sample_log.service, filters)
    assert lines == [v.as_json() for v in views]
    assert [int(r["index"]) for r in rows] == [v.index for v in views]
    for line, row in zip(lines, rows, strict=True):
        assert row["leaf"] == line["leaf"]
        assert row["decision"] == line["decision"]
        assert row["requester_agency"] == line["requester"]["agency"]
        assert row["rule_ids"] == " ".join(line["rule_ids"])
        assert row["case_number"] == (line["case_number"] or "")
        assert row["upstream_latency_us"] == str(line["upstream"]["latency_us"] or "")


def test_export_streams_across_batches(audit_log: AuditLog) -> None:
    """More than one read batch (1000): nothing dropped or repeated at the boundary."""
    audit_log.fill(2001)
    lines = _jsonl(audit_log.service, EntryFilter())
    assert [line["index"] for line in lines] == list(range(2001))
    assert len(_csv(audit_log.service, EntryFilter())) == 2001


def _rows_by(rows: list[dict[str, Any]], *keys: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(r[k] for k in keys): r for r in rows}


def test_stats_counts_and_denials(sample_log: AuditLog) -> None:
    rows = sample_log.service.stats(EntryFilter(), ["requester"], None)
    by = _rows_by(rows, "requester")
    for agency in ("GA640104", "JC640104", "FY640104"):
        mine = [r for r in SAMPLE_ROWS if r[REQ] == agency]
        assert by[(agency,)]["count"] == len(mine)
        assert by[(agency,)]["denied"] == sum(r[DEC] == "deny" for r in mine)
        assert by[(agency,)]["errors"] == sum(r[DEC] in ("error", "invalid") for r in mine)
    assert sum(r["count"] for r in rows) == len(SAMPLE_ROWS)

    by = _rows_by(sample_log.service.stats(EntryFilter(), ["decision"], None), "decision")
    assert {k[0]: v["count"] for k, v in by.items()} == {
        "allow": 6,
        "deny": 2,
        "error": 1,
        "invalid": 1,
    }
    assert by[("deny",)]["denied"] == 2


def test_stats_default_grouping_and_interval(sample_log: AuditLog) -> None:
    rows = sample_log.service.stats(
        EntryFilter(), ["requester", "owner", "resource", "decision"], "day"
    )
    assert sum(r["count"] for r in rows) == len(SAMPLE_ROWS)
    key = ("2026-03-01", "GA640104", "court", "judgment", "allow")
    by = _rows_by(rows, "period", "requester", "owner", "resource", "decision")
    assert by[key]["count"] == 1
    assert by[("2026-03-03", "GA640104", "court", "judgment", "allow")]["count"] == 2

    per_day = {r["period"]: r["count"] for r in sample_log.service.stats(EntryFilter(), [], "day")}
    assert per_day == {"2026-03-01": 3, "2026-03-02": 3, "2026-03-03": 4}
    per_month = sample_log.service.stats(EntryFilter(), [], "month")
    assert per_month == [
        {
            "period": "2026-03",
            "count": 10,
            "denied": 2,
            "concealed": 0,
            "errors": 2,
            "upstream_latency_us": {"p50": 400, "p95": 5000, "p99": 5000},
        }
    ]


def test_stats_latency_percentiles(sample_log: AuditLog) -> None:
    by = _rows_by(sample_log.service.stats(EntryFilter(), ["purpose"], None), "purpose")
    review = by[("REVIEW",)]["upstream_latency_us"]  # latencies 300, 200, 400 (and one None)
    assert review == {"p50": 300, "p95": 400, "p99": 400}
    filtered = sample_log.service.stats(EntryFilter(decision="deny"), ["resource"], None)
    assert all(
        r["upstream_latency_us"] == {"p50": None, "p95": None, "p99": None} for r in filtered
    )
    assert sum(r["denied"] for r in filtered) == 2


def test_stats_filtered_by_rule(sample_log: AuditLog) -> None:
    rows = sample_log.service.stats(EntryFilter(rule_id="r2"), ["decision"], None)
    assert rows[0]["decision"] == "deny"
    assert (rows[0]["count"], rows[0]["denied"]) == (2, 2)


def test_stats_unknown_interval(sample_log: AuditLog) -> None:
    with pytest.raises(BadRequest):
        sample_log.service.stats(EntryFilter(), [], "fortnight")


# --- proofs -------------------------------------------------------------------------------------


def _root(log: AuditLog, size: int) -> bytes:
    frontier = Frontier()
    for row in log.rows("SELECT leaf FROM audit_entries WHERE idx < :n ORDER BY idx", n=size):
        frontier.append(leaf_hash(bytes(row.leaf)))
    return frontier.root()


def _checkpoint_root(log: AuditLog, size: int) -> bytes:
    return open_checkpoint(log.notes()[size], [parse_verifier(log.verifier_text)]).root


def test_no_checkpoint_yet(audit_log: AuditLog) -> None:
    with pytest.raises(NotFound):
        audit_log.service.latest_checkpoint_note()
    audit_log.fill(1)
    with pytest.raises(BadRequest):
        audit_log.service.inclusion(0, 1)  # nothing signed yet


def test_inclusion_proofs_verify_against_the_checkpoint(audit_log: AuditLog) -> None:
    audit_log.fill(13)
    audit_log.checkpoint()
    audit_log.fill(2, start=13)  # beyond the checkpoint: not provable yet
    assert audit_log.service.latest_checkpoint_note() == audit_log.notes()[13]
    root = _checkpoint_root(audit_log, 13)
    leaves = audit_log.leaves()
    for index in range(13):
        proof = audit_log.service.inclusion(index, 13)
        verify_inclusion(leaf_hash(leaves[index]), index, 13, proof, root)
    # A smaller tree that was never checkpointed itself: verify against its recomputed root.
    verify_inclusion(
        leaf_hash(leaves[2]), 2, 5, audit_log.service.inclusion(2, 5), _root(audit_log, 5)
    )

    with pytest.raises(BadRequest, match="beyond the latest checkpoint"):
        audit_log.service.inclusion(13, 14)
    with pytest.raises(BadRequest, match="not inside"):
        audit_log.service.inclusion(13, 13)


def test_consistency_proofs_verify_between_checkpoints(audit_log: AuditLog) -> None:
    sizes: list[int] = []
    for count in (5, 3, 9):
        audit_log.fill(count, start=sum(sizes))
        sizes.append(count)
        audit_log.checkpoint()
    signed = sorted(audit_log.notes())
    assert signed == [5, 8, 17]
    for first in signed:
        for second in signed:
            if first > second:
                continue
            proof = audit_log.service.consistency(first, second)
            verify_consistency(
                first,
                second,
                proof,
                _checkpoint_root(audit_log, first),
                _checkpoint_root(audit_log, second),
            )
    assert audit_log.service.consistency(8, 8) == []
    with pytest.raises(BadRequest, match="larger than"):
        audit_log.service.consistency(8, 5)
    with pytest.raises(BadRequest, match="beyond the latest checkpoint"):
        audit_log.service.consistency(5, 18)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("=cmd|' C calc'!A0", "'=cmd|' C calc'!A0"),
        ("+1+1", "'+1+1"),
        ("-2-3", "'-2-3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("judgment", "judgment"),
        ("a=b", "a=b"),
        (None, ""),
        (200, "200"),
    ],
)
def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(value: object, shown: str) -> None:
    assert neutralise_cell(value) == shown
