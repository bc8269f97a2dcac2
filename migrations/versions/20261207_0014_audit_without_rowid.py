"""SQLite: the audit log's index tables (rule hits, case references, Merkle nodes) WITHOUT ROWID

Each of the three is nothing but its primary key (a node adds its hash). As rowid tables,
SQLite kept every row twice, in the table's rowid B-tree and in the primary key's own index,
so an exchange entry's six rule hits and two case references alone cost sixteen B-tree
inserts. WITHOUT ROWID, the primary key is the table: half the inserts and pages per append,
and ~15 µs less of the audit writer's CPU per entry (docs/performance.md §6, "sixth pass").
Rows, names, primary keys and the append-only triggers stay as they were. PostgreSQL has no
rowid: nothing changes there.

The tables are rebuilt (copied row by row): on a large log this takes a while, once.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table: (column definitions and primary key, the columns copied)
_TABLES = {
    "audit_rule_hits": (
        "rule_id VARCHAR(128) NOT NULL, idx BIGINT NOT NULL, "
        "CONSTRAINT pk_audit_rule_hits PRIMARY KEY (rule_id, idx)",
        "rule_id, idx",
    ),
    "audit_case_refs": (
        "case_number VARCHAR(128) NOT NULL, idx BIGINT NOT NULL, "
        "CONSTRAINT pk_audit_case_refs PRIMARY KEY (case_number, idx)",
        "case_number, idx",
    ),
    "audit_nodes": (
        "level SMALLINT NOT NULL, idx BIGINT NOT NULL, hash BLOB NOT NULL, "
        "CONSTRAINT pk_audit_nodes PRIMARY KEY (level, idx)",
        "level, idx, hash",
    ),
}


def _rebuild(*, without_rowid: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    suffix = " WITHOUT ROWID" if without_rowid else ""
    for table, (definition, columns) in _TABLES.items():
        # The append-only triggers go with the old table; they are created again as they were.
        triggers = [
            row[0]
            for row in bind.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", (table,)
            )
        ]
        op.execute(f"CREATE TABLE {table}_rebuilt ({definition}){suffix}")
        op.execute(
            f"INSERT INTO {table}_rebuilt ({columns}) SELECT {columns} FROM {table}"  # noqa: S608
        )
        op.execute(f"DROP TABLE {table}")
        op.execute(f"ALTER TABLE {table}_rebuilt RENAME TO {table}")
        for sql in triggers:
            op.execute(sql)


def upgrade() -> None:
    _rebuild(without_rowid=True)


def downgrade() -> None:
    _rebuild(without_rowid=False)
