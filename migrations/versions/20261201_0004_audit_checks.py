"""audit: case-number index (both numbers of a case), tree head root, checks by the database

The tree head gets its root. On PostgreSQL a trigger recomputes, on every update of the head,
the frontier and the root from the leaves the update adds (each leaf re-hashed from its bytes)
and refuses the update unless they match; a checkpoint must agree with the head. SQLite has no
SHA-256 in SQL: it checks that the head only grows and that the frontier states its size.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.audit.merkle import Frontier

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HEAD_CHECK = r"""
CREATE FUNCTION audit_head_checked() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  hashes bytea[] := ARRAY[]::bytea[];
  n bigint;
  h bytea;
  lvl int;
  k int;
  entry record;
  serialised bytea;
  root bytea;
BEGIN
  IF TG_OP = 'DELETE' OR NEW.id <> OLD.id OR NEW.size < OLD.size THEN
    RAISE EXCEPTION 'the audit tree head only grows' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF NEW.size = OLD.size THEN
    IF NEW.frontier IS DISTINCT FROM OLD.frontier OR NEW.root IS DISTINCT FROM OLD.root THEN
      RAISE EXCEPTION 'the audit tree head changed without new entries'
        USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
  END IF;
  IF substring(OLD.frontier FROM 1 FOR 8) <> int8send(OLD.size) THEN
    RAISE EXCEPTION 'the stored audit tree head is inconsistent'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  FOR k IN 0 .. (length(OLD.frontier) - 8) / 32 - 1 LOOP
    hashes := hashes || substring(OLD.frontier FROM 9 + 32 * k FOR 32);
  END LOOP;
  n := OLD.size;
  FOR entry IN
    SELECT idx, leaf, leaf_hash FROM audit_entries
    WHERE idx >= OLD.size AND idx < NEW.size ORDER BY idx
  LOOP
    IF entry.idx <> n THEN
      RAISE EXCEPTION 'audit entry % is missing', n USING ERRCODE = 'insufficient_privilege';
    END IF;
    h := sha256('\x00'::bytea || entry.leaf);
    IF h <> entry.leaf_hash THEN
      RAISE EXCEPTION 'audit entry % does not hash to its leaf hash', n
        USING ERRCODE = 'insufficient_privilege';
    END IF;
    lvl := 0;
    WHILE ((n >> lvl) & 1) = 1 LOOP
      h := sha256('\x01'::bytea || hashes[array_length(hashes, 1)] || h);
      hashes := hashes[1 : array_length(hashes, 1) - 1];
      lvl := lvl + 1;
    END LOOP;
    hashes := hashes || h;
    n := n + 1;
  END LOOP;
  IF n <> NEW.size THEN
    RAISE EXCEPTION 'audit entries % to % are missing', n, NEW.size - 1
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  serialised := int8send(n);
  FOR k IN 1 .. coalesce(array_length(hashes, 1), 0) LOOP
    serialised := serialised || hashes[k];
  END LOOP;
  IF NEW.frontier IS DISTINCT FROM serialised THEN
    RAISE EXCEPTION 'the audit tree head frontier does not match the entries'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  root := hashes[array_length(hashes, 1)];
  FOR k IN REVERSE array_length(hashes, 1) - 1 .. 1 LOOP
    root := sha256('\x01'::bytea || hashes[k] || root);
  END LOOP;
  IF NEW.root IS DISTINCT FROM root THEN
    RAISE EXCEPTION 'the audit tree head root does not match the entries'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$;
"""

CHECKPOINT_CHECK = r"""
CREATE FUNCTION audit_checkpoint_checked() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  head record;
BEGIN
  SELECT size, root INTO head FROM audit_tree_head WHERE id = 1;
  IF NEW.tree_size > head.size THEN
    RAISE EXCEPTION 'a checkpoint for % entries, beyond the tree head (%)', NEW.tree_size,
      head.size USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF NEW.tree_size = head.size AND NEW.root IS DISTINCT FROM head.root THEN
    RAISE EXCEPTION 'the checkpoint root is not the tree head root'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$;
"""


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "audit_case_refs",
        sa.Column("case_number", sa.String(128), nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("case_number", "idx", name=op.f("pk_audit_case_refs")),
    )
    op.execute(
        "INSERT INTO audit_case_refs (case_number, idx) "
        "SELECT case_number, idx FROM audit_entries WHERE case_number IS NOT NULL"
    )
    op.add_column("audit_tree_head", sa.Column("root", sa.LargeBinary(32), nullable=True))
    bind = op.get_bind()
    for row in bind.execute(sa.text("SELECT id, frontier FROM audit_tree_head")).all():
        bind.execute(
            sa.text("UPDATE audit_tree_head SET root = :root WHERE id = :id"),
            {"root": Frontier.from_bytes(bytes(row.frontier)).root(), "id": row.id},
        )
    if postgres:
        op.execute("DROP TRIGGER audit_tree_head_grows ON audit_tree_head")
        op.execute("DROP FUNCTION audit_head_grows()")
        op.execute(HEAD_CHECK)
        op.execute(CHECKPOINT_CHECK)
        op.execute(
            "CREATE TRIGGER audit_tree_head_checked BEFORE UPDATE OR DELETE ON audit_tree_head "
            "FOR EACH ROW EXECUTE FUNCTION audit_head_checked()"
        )
        op.execute(
            "CREATE TRIGGER audit_checkpoints_checked BEFORE INSERT ON audit_checkpoints "
            "FOR EACH ROW EXECUTE FUNCTION audit_checkpoint_checked()"
        )
        op.execute(
            "CREATE TRIGGER audit_case_refs_append_only BEFORE UPDATE OR DELETE ON "
            "audit_case_refs FOR EACH ROW EXECUTE FUNCTION audit_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_case_refs_no_truncate BEFORE TRUNCATE ON audit_case_refs "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()"
        )
    else:
        op.execute("DROP TRIGGER audit_tree_head_grows")
        op.execute(
            "CREATE TRIGGER audit_tree_head_checked BEFORE UPDATE ON audit_tree_head "
            "WHEN NEW.size < OLD.size OR NEW.id <> OLD.id "
            "OR hex(substr(NEW.frontier, 1, 8)) <> printf('%016X', NEW.size) "
            "OR length(NEW.root) <> 32 "
            "BEGIN SELECT RAISE(ABORT, 'the audit tree head only grows, with its own size'); END"
        )
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_case_refs_no_{event.lower()} BEFORE {event} ON "
                "audit_case_refs BEGIN SELECT RAISE(ABORT, 'audit_case_refs is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_tree_head_checked ON audit_tree_head")
        op.execute("DROP TRIGGER audit_checkpoints_checked ON audit_checkpoints")
        op.execute("DROP FUNCTION audit_head_checked()")
        op.execute("DROP FUNCTION audit_checkpoint_checked()")
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
        op.execute(
            "CREATE TRIGGER audit_tree_head_grows BEFORE UPDATE OR DELETE ON audit_tree_head "
            "FOR EACH ROW EXECUTE FUNCTION audit_head_grows()"
        )
    else:
        op.execute("DROP TRIGGER audit_tree_head_checked")
        op.execute(
            "CREATE TRIGGER audit_tree_head_grows BEFORE UPDATE ON audit_tree_head "
            "WHEN NEW.size < OLD.size "
            "BEGIN SELECT RAISE(ABORT, 'the audit tree head only grows'); END"
        )
    op.drop_column("audit_tree_head", "root")
    op.drop_table("audit_case_refs")
