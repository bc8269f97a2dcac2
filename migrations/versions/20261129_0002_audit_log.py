"""audit log: entries, Merkle nodes, tree head, checkpoints; append-only triggers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.audit.merkle import Frontier
from gateway.db import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = ("audit_entries", "audit_nodes", "audit_checkpoints", "audit_rule_hits")


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("requester_agency", sa.String(32), nullable=True),
        sa.Column("client_id", sa.String(64), nullable=True),
        sa.Column("operator_id", sa.String(64), nullable=True),
        sa.Column("owner_agency", sa.String(32), nullable=True),
        sa.Column("resource", sa.String(64), nullable=True),
        sa.Column("purpose", sa.String(64), nullable=True),
        sa.Column("case_number", sa.String(128), nullable=True),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("upstream_status", sa.Integer(), nullable=True),
        sa.Column("upstream_latency_us", sa.BigInteger(), nullable=True),
        sa.Column("policy_version", sa.String(80), nullable=True),
        sa.Column("leaf", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("idx", name=op.f("pk_audit_entries")),
    )
    for name, columns in {
        "ix_audit_entries_created_at": ["created_at"],
        "ix_audit_entries_requester_agency": ["requester_agency", "idx"],
        "ix_audit_entries_owner_agency": ["owner_agency", "idx"],
        "ix_audit_entries_case_number": ["case_number", "idx"],
        "ix_audit_entries_operator_id": ["operator_id", "idx"],
        "ix_audit_entries_client_id": ["client_id", "idx"],
        "ix_audit_entries_resource": ["resource", "idx"],
        "ix_audit_entries_purpose": ["purpose", "idx"],
        "ix_audit_entries_decision": ["decision", "idx"],
    }.items():
        op.create_index(name, "audit_entries", columns)
    op.create_table(
        "audit_rule_hits",
        sa.Column("rule_id", sa.String(128), nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("rule_id", "idx", name=op.f("pk_audit_rule_hits")),
    )
    op.create_table(
        "audit_nodes",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_audit_nodes")),
    )
    head = op.create_table(
        "audit_tree_head",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_tree_head")),
    )
    op.bulk_insert(head, [{"id": 1, "size": 0, "frontier": Frontier().to_bytes()}])
    op.create_table(
        "audit_checkpoints",
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tree_size", name=op.f("pk_audit_checkpoints")),
    )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              RAISE EXCEPTION 'table % is append-only', TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
            END $$;
            """
        )
        op.execute(
            """
            CREATE FUNCTION audit_head_grows() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF TG_OP = 'DELETE' OR NEW.size < OLD.size THEN
                RAISE EXCEPTION 'the audit tree head only grows'
                  USING ERRCODE = 'insufficient_privilege';
              END IF;
              RETURN NEW;
            END $$;
            """
        )
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION audit_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()"
            )
        op.execute(
            "CREATE TRIGGER audit_tree_head_grows BEFORE UPDATE OR DELETE ON audit_tree_head "
            "FOR EACH ROW EXECUTE FUNCTION audit_head_grows()"
        )
        op.execute(
            "CREATE TRIGGER audit_tree_head_no_truncate BEFORE TRUNCATE ON audit_tree_head "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()"
        )
    else:
        for table in APPEND_ONLY:
            for event in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )
        op.execute(
            "CREATE TRIGGER audit_tree_head_grows BEFORE UPDATE ON audit_tree_head "
            "WHEN NEW.size < OLD.size "
            "BEGIN SELECT RAISE(ABORT, 'the audit tree head only grows'); END"
        )
        op.execute(
            "CREATE TRIGGER audit_tree_head_no_delete BEFORE DELETE ON audit_tree_head "
            "BEGIN SELECT RAISE(ABORT, 'the audit tree head only grows'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_tree_head_grows ON audit_tree_head")
        op.execute("DROP TRIGGER IF EXISTS audit_tree_head_no_truncate ON audit_tree_head")
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS audit_append_only()")
        op.execute("DROP FUNCTION IF EXISTS audit_head_grows()")
    for table in (*APPEND_ONLY, "audit_tree_head"):
        op.drop_table(table)
