"""audit_nodes keeps interior nodes only: a leaf's hash is its entry's leaf_hash

Level 0 of ``audit_nodes`` repeated ``audit_entries.leaf_hash`` row for row: half of all
node rows, one more row per append, and a second copy the verifier never needed (it
recomputes each leaf hash from the leaf). Proofs now read leaf hashes from
``audit_entries`` in the same statement (``gateway.audit.repository.node_select``).

The append-only triggers are lifted for this one statement and restored as they were.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_NO_DELETE = (
    "CREATE TRIGGER audit_nodes_no_delete BEFORE DELETE ON audit_nodes "
    "BEGIN SELECT RAISE(ABORT, 'audit_nodes is append-only'); END"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE audit_nodes DISABLE TRIGGER audit_nodes_append_only")
        op.execute("DELETE FROM audit_nodes WHERE level = 0")
        op.execute("ALTER TABLE audit_nodes ENABLE TRIGGER audit_nodes_append_only")
    else:
        op.execute("DROP TRIGGER audit_nodes_no_delete")
        op.execute("DELETE FROM audit_nodes WHERE level = 0")
        op.execute(_SQLITE_NO_DELETE)


def downgrade() -> None:
    op.execute(
        "INSERT INTO audit_nodes (level, idx, hash) SELECT 0, idx, leaf_hash FROM audit_entries"
    )
