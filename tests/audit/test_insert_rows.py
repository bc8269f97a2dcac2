"""The writer's bulk insert (PostgreSQL COPY, SQLite multi-row INSERTs) and its node write."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from gateway.audit.merkle import Frontier
from gateway.audit.models import AuditEntry, AuditNode, AuditRuleHit
from gateway.audit.rows import (
    ENTRY_COLUMNS,
    HIT_COLUMNS,
    NODE_COLUMNS,
    entry_row,
    insert_rows,
)
from gateway.audit.writer import AuditWriter
from gateway.db import create_db_engine
from tests.audit.conftest import AuditLog, exchange_draft, migrate

# Text that COPY's text format must escape, and values it must keep apart ("" vs NULL).
AWKWARD = [
    "tab\there",
    "new\nline",
    "cr\rx",
    "back\\slash",
    "\\N",
    "\\.",
    "\\x41",
    "é中\U0001f600",
    "",
    None,
    "quote ' and \"",
    "end\\",
]


@pytest.fixture
def engine(tmp_path: Path, database_url: str) -> Iterator[Engine]:
    migrate(tmp_path, database_url)
    engine = create_db_engine(database_url)
    yield engine
    engine.dispose()


def _entry_values(n: int, text_value: str | None) -> dict[str, Any]:
    return {
        "idx": n,
        "created_at": datetime(2026, 3, 1, 16, 0, 0, 123456, tzinfo=timezone(timedelta(hours=8))),
        "kind": "exchange",
        "request_id": text_value,
        "requester_agency": "GA640104",
        "client_id": text_value,
        "operator_id": None,
        "owner_agency": "法院",
        "resource": text_value,
        "purpose": "P",
        "case_number": text_value,
        "decision": "allow",
        "status": 200,
        "upstream_status": None,
        "upstream_latency_us": 2**40,
        "policy_version": text_value,
        "leaf": bytes(range(256)) + b"\\N\t\n",
        "leaf_hash": hashlib.sha256(str(n).encode()).digest(),
    }


def _read(engine: Engine, idx: int) -> dict[str, Any]:
    with Session(engine) as session:
        row = session.get(AuditEntry, idx)
        assert row is not None
        values = {c: getattr(row, c) for c in ENTRY_COLUMNS if c != "idx"}
    values["leaf"], values["leaf_hash"] = bytes(values["leaf"]), bytes(values["leaf_hash"])
    return values


def test_entries_read_back_as_a_sqlalchemy_insert_would_store_them(engine: Engine) -> None:
    for k, value in enumerate(AWKWARD):
        orm_values = _entry_values(2 * k, value)
        bulk_values = _entry_values(2 * k + 1, value)
        with engine.begin() as conn:
            conn.execute(insert(AuditEntry), [orm_values])
            insert_rows(
                conn,
                AuditEntry,
                ENTRY_COLUMNS,
                [tuple(bulk_values[c] for c in ENTRY_COLUMNS)],
            )
        orm, bulk = _read(engine, 2 * k), _read(engine, 2 * k + 1)
        assert bulk.pop("leaf_hash") != orm.pop("leaf_hash")
        assert bulk == orm, value
        assert bulk["request_id"] == value
        assert bulk["created_at"] == orm_values["created_at"]
        assert bulk["created_at"].utcoffset() == timedelta(0)
    # Stored identically, not merely read back alike (e.g. SQLite's text form of a time).
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT idx, created_at FROM audit_entries ORDER BY idx")).all()
    assert len({str(row.created_at) for row in stored}) == 1
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            kinds = conn.execute(
                text(
                    "SELECT DISTINCT typeof(created_at), typeof(leaf), typeof(leaf_hash) "
                    "FROM audit_entries"
                )
            ).all()
        assert [tuple(k) for k in kinds] == [("text", "blob", "blob")]


def test_hits_and_nodes(engine: Engine) -> None:
    hits = [("rule\t1", 0), ("规则-2", 0), ("r\\3", 5)]
    nodes = [(0, 0, bytes(32)), (0, 1, bytes(range(32))), (1, 0, b"\\N" * 16)]
    with engine.begin() as conn:
        insert_rows(conn, AuditRuleHit, HIT_COLUMNS, hits)
        insert_rows(conn, AuditNode, NODE_COLUMNS, nodes)
        insert_rows(conn, AuditNode, NODE_COLUMNS, [])  # nothing to do
    with engine.connect() as conn:
        stored_hits = conn.execute(select(AuditRuleHit.rule_id, AuditRuleHit.idx)).all()
        stored_nodes = conn.execute(select(AuditNode.level, AuditNode.idx, AuditNode.hash)).all()
    assert sorted(tuple(h) for h in stored_hits) == sorted(hits)
    assert sorted((n.level, n.idx, bytes(n.hash)) for n in stored_nodes) == sorted(nodes)


@pytest.mark.parametrize("count", [1, 2, 63, 64, 65, 127, 200])
def test_every_row_stored_once_across_chunks(engine: Engine, count: int) -> None:
    """SQLite inserts in multi-row chunks (powers of two, at most 64 rows): none lost or
    doubled at a chunk's edge, the entries' own columns (the widest) included."""
    hits = [(f"rule-{n}", n) for n in range(count)]
    rows = [tuple(_entry_values(n, f"r{n}")[c] for c in ENTRY_COLUMNS) for n in range(count)]
    with engine.begin() as conn:
        insert_rows(conn, AuditRuleHit, HIT_COLUMNS, hits)
        insert_rows(conn, AuditEntry, ENTRY_COLUMNS, rows)
    with engine.connect() as conn:
        stored = conn.execute(select(AuditRuleHit.rule_id, AuditRuleHit.idx)).all()
        ids = conn.execute(select(AuditEntry.idx, AuditEntry.request_id)).all()
    assert sorted(tuple(h) for h in stored) == sorted(hits)
    assert sorted(tuple(e) for e in ids) == [(n, f"r{n}") for n in range(count)]


def test_a_failed_bulk_insert_rolls_back_the_transaction(engine: Engine) -> None:
    row = tuple(_entry_values(0, "x")[c] for c in ENTRY_COLUMNS)
    with engine.begin() as conn:
        insert_rows(conn, AuditEntry, ENTRY_COLUMNS, [row])

    def again() -> None:
        with engine.begin() as conn:
            insert_rows(conn, AuditRuleHit, HIT_COLUMNS, [("kept?", 0)])
            insert_rows(conn, AuditEntry, ENTRY_COLUMNS, [row])  # idx 0 again

    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        again()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM audit_rule_hits")).scalar() == 0
        assert conn.execute(text("SELECT COUNT(*) FROM audit_entries")).scalar() == 1


def test_entry_row_follows_entry_columns() -> None:
    draft = exchange_draft(3)
    row = dict(zip(ENTRY_COLUMNS, entry_row(9, draft, b"{}", b"h" * 32), strict=True))
    assert row["idx"] == 9
    assert row["created_at"] == draft.time
    assert (row["kind"], row["decision"]) == ("exchange", "allow")
    assert (row["request_id"], row["upstream_latency_us"]) == ("req-00003", 1003)
    assert (row["leaf"], row["leaf_hash"]) == (b"{}", b"h" * 32)
    assert set(ENTRY_COLUMNS) == {c.name for c in AuditEntry.__table__.c}


@pytest.mark.parametrize("burst", [1, 2, 37, 300])
def test_writer_stores_exactly_the_tree_nodes(audit_log: AuditLog, burst: int) -> None:
    audit_log.append(*(exchange_draft(i) for i in range(burst)))
    audit_log.append(*(exchange_draft(1000 + i) for i in range(5)))
    leaves = [
        bytes(r.leaf_hash)
        for r in audit_log.rows("SELECT leaf_hash FROM audit_entries ORDER BY idx")
    ]
    expected: set[tuple[int, int, bytes]] = set()
    frontier = Frontier()
    for digest in leaves:
        # Interior nodes only: a leaf's hash (level 0) is its entry's leaf_hash.
        expected.update((w.level, w.index, w.hash) for w in frontier.append(digest) if w.level)
    stored = {
        (int(r.level), int(r.idx), bytes(r.hash))
        for r in audit_log.rows("SELECT level, idx, hash FROM audit_nodes")
    }
    assert stored == expected
    assert audit_log.scalar("SELECT COUNT(*) FROM audit_nodes") == len(expected)
    head = audit_log.rows("SELECT size, frontier FROM audit_tree_head WHERE id = 1")[0]
    assert (head.size, bytes(head.frontier)) == (len(leaves), frontier.to_bytes())
    assert audit_log.verify().ok


def test_tree_head_disagreement_fails_closed(audit_log: AuditLog) -> None:
    audit_log.append(exchange_draft(0))
    # The database refuses a head whose size no longer matches its frontier …
    with pytest.raises(DBAPIError):
        audit_log.execute("UPDATE audit_tree_head SET size = 5 WHERE id = 1")
    # … so only behind its back (the triggers bypassed by an owner) can there be one.
    audit_log.tamper("UPDATE audit_tree_head SET size = 5 WHERE id = 1")
    future = audit_log.writer.submit(exchange_draft(1))
    with pytest.raises(Exception, match="cannot be written"):
        future.result(timeout=30)
    assert audit_log.writer.last_error is not None
    assert "disagree" in audit_log.writer.last_error
    assert audit_log.scalar("SELECT COUNT(*) FROM audit_entries") == 1


def test_times_are_stored_in_utc(engine: Engine) -> None:
    values = _entry_values(0, "x")
    values["created_at"] = datetime(2026, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    with engine.begin() as conn:
        insert_rows(conn, AuditEntry, ENTRY_COLUMNS, [tuple(values[c] for c in ENTRY_COLUMNS)])
    assert _read(engine, 0)["created_at"] == datetime(2026, 3, 2, 4, 30, tzinfo=UTC)


def test_postgres_writer_needs_psycopg3(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/test")
    monkeypatch.setattr(engine.dialect, "driver", "psycopg2")
    with pytest.raises(ValueError, match="psycopg 3"):
        AuditWriter("unused", engine=engine)
    engine.dispose()
