"""Append-only storage: the migration's triggers refuse changes on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError

from gateway.audit.writer import AuditUnavailable
from tests.audit.conftest import APPEND_ONLY_TABLES, AuditLog, exchange_draft, open_audit_log

CHANGES = {
    "audit_entries": (
        "UPDATE audit_entries SET decision = 'deny' WHERE idx = 0",
        "DELETE FROM audit_entries WHERE idx = 2",
    ),
    "audit_nodes": (
        "UPDATE audit_nodes SET hash = hash WHERE level = 1 AND idx = 0",  # even a no-op
        "DELETE FROM audit_nodes WHERE level = 1",
    ),
    "audit_checkpoints": (
        "UPDATE audit_checkpoints SET note = 'forged'",
        "DELETE FROM audit_checkpoints",
    ),
    "audit_rule_hits": (
        "UPDATE audit_rule_hits SET rule_id = 'other-rule'",
        "DELETE FROM audit_rule_hits",
    ),
}


@pytest.fixture
def filled(audit_log: AuditLog) -> AuditLog:
    audit_log.fill(3)
    assert audit_log.checkpoint() == 3
    return audit_log


@pytest.fixture
def pg_filled(tmp_path: Path, postgres_url: str) -> Iterator[AuditLog]:
    log = open_audit_log(tmp_path, postgres_url)
    log.fill(3)
    assert log.checkpoint() == 3
    yield log
    log.close()


def _snapshot(log: AuditLog) -> dict[str, list[tuple[object, ...]]]:
    return {
        table: sorted(tuple(r) for r in log.rows(f"SELECT * FROM {table}"))  # noqa: S608
        for table in (*APPEND_ONLY_TABLES, "audit_tree_head")
    }


@pytest.mark.parametrize("table", APPEND_ONLY_TABLES)
def test_append_only_tables_refuse_update_and_delete(filled: AuditLog, table: str) -> None:
    before = _snapshot(filled)
    for statement in CHANGES[table]:
        with pytest.raises(DBAPIError, match="append-only"):
            filled.execute(statement)
        assert _snapshot(filled) == before
    assert filled.verify().ok


@pytest.mark.postgres
@pytest.mark.parametrize("table", APPEND_ONLY_TABLES)
def test_postgres_refuses_truncate(pg_filled: AuditLog, table: str) -> None:
    with pytest.raises(DBAPIError, match="append-only"):
        pg_filled.execute(f"TRUNCATE {table} CASCADE")
    assert pg_filled.verify().ok


def test_tree_head_only_grows(filled: AuditLog) -> None:
    with pytest.raises(DBAPIError, match="only grows"):
        filled.execute("UPDATE audit_tree_head SET size = size - 1 WHERE id = 1")
    with pytest.raises(DBAPIError, match="only grows"):
        filled.execute("UPDATE audit_tree_head SET size = 0 WHERE id = 1")
    with pytest.raises(DBAPIError, match="only grows"):
        filled.execute("DELETE FROM audit_tree_head")
    assert filled.scalar("SELECT size FROM audit_tree_head WHERE id = 1") == 3
    # Growing (what the writer does) is allowed, and the log continues.
    assert filled.append(exchange_draft(3)) == [3]
    assert filled.verify().ok


def test_inserting_over_an_existing_index_is_refused(filled: AuditLog) -> None:
    """An index is taken once: a second row for it violates the primary key."""
    row = filled.rows("SELECT * FROM audit_entries WHERE idx = 1")[0]
    values = dict(row._mapping)
    columns = ", ".join(values)
    placeholders = ", ".join(f":{c}" for c in values)
    with pytest.raises(DBAPIError):
        filled.execute(f"INSERT INTO audit_entries ({columns}) VALUES ({placeholders})", **values)  # noqa: S608


@pytest.mark.postgres
def test_postgres_refuses_truncating_the_tree_head(pg_filled: AuditLog) -> None:
    with pytest.raises(DBAPIError, match="append-only"):
        pg_filled.execute("TRUNCATE audit_tree_head")
    assert pg_filled.scalar("SELECT size FROM audit_tree_head WHERE id = 1") == 3
    assert pg_filled.verify().ok


@pytest.mark.postgres
def test_a_reseeded_tree_head_cannot_fork_the_log(pg_filled: AuditLog) -> None:
    """Even with the triggers dropped by a database owner, emptying and re-seeding the head
    does not fork the log: the writer fails closed on the taken index 0."""
    filled = pg_filled
    filled.execute("DROP TRIGGER audit_tree_head_no_truncate ON audit_tree_head")
    filled.execute("TRUNCATE audit_tree_head")
    filled.execute("INSERT INTO audit_tree_head (id, size, frontier) VALUES (1, 0, :f)", f=bytes(8))
    with pytest.raises(AuditUnavailable):
        filled.writer.append_blocking(exchange_draft(10))
    assert filled.scalar("SELECT COUNT(*) FROM audit_entries") == 3
