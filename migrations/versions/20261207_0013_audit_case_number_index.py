"""audit_entries: drop ix_audit_entries_case_number, which no query reads

Since migration 0004 the regulators' case filter is a join on ``audit_case_refs`` (the number
the request named and both numbers of the case record), so this index on the entry's own
column only cost the audit writer one more B-tree insert and page per append: on a log of
many cases a random leaf page per entry (docs/performance.md §6, "sixth pass").

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_audit_entries_case_number", table_name="audit_entries")


def downgrade() -> None:
    op.create_index("ix_audit_entries_case_number", "audit_entries", ["case_number", "idx"])
