"""SQLite keeps the audit log's index tables WITHOUT ROWID (migration 0014, one B-tree each
instead of two); a log written before the migration keeps its rows, triggers and proofs, both
ways."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError

from tests.audit.conftest import AuditLog
from tests.audit.test_interior_nodes import _migrate

TABLES = ("audit_rule_hits", "audit_case_refs", "audit_nodes")


def _rows(log: AuditLog) -> dict[str, list[tuple[object, ...]]]:
    return {
        table: sorted(tuple(r) for r in log.rows(f"SELECT * FROM {table}"))  # noqa: S608
        for table in TABLES
    }


def _without_rowid(log: AuditLog, table: str) -> bool:
    if log.is_postgres:
        return False  # no rowid tables there: 0014 changes nothing on PostgreSQL
    sql = log.scalar("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t", t=table)
    return str(sql).rstrip().upper().endswith("WITHOUT ROWID")


def test_a_log_from_before_the_migration_keeps_rows_triggers_and_proofs(
    audit_log: AuditLog, tmp_path: Path
) -> None:
    sqlite = not audit_log.is_postgres
    assert all(_without_rowid(audit_log, t) == sqlite for t in TABLES)
    _migrate(audit_log, tmp_path, "0013")
    assert not any(_without_rowid(audit_log, t) for t in TABLES)
    audit_log.fill(13)
    assert audit_log.checkpoint() == 13
    before = _rows(audit_log)
    assert all(before.values())  # hits, case references and nodes were written

    _migrate(audit_log, tmp_path, "head")
    assert all(_without_rowid(audit_log, t) == sqlite for t in TABLES)
    assert _rows(audit_log) == before
    audit_log.fill(5, start=13)
    assert audit_log.checkpoint() == 18
    report = audit_log.verify()
    assert report.ok, report.problems
    for table in TABLES:  # the append-only triggers came back with the tables
        for statement in (f"DELETE FROM {table}", f"UPDATE {table} SET idx = idx + 1"):  # noqa: S608
            with pytest.raises(DBAPIError, match="append-only"), audit_log.engine.begin() as c:
                c.exec_driver_sql(statement)

    _migrate(audit_log, tmp_path, "0013")  # and back: the same rows in rowid tables
    assert not any(_without_rowid(audit_log, t) for t in TABLES)
    assert audit_log.verify().ok
