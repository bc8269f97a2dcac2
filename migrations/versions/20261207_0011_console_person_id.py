"""web console: the person behind each user account (two-person approval is per person)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("human_users") as batch:
        batch.add_column(sa.Column("person_id", sa.String(64), nullable=True))
    # An account registered before had no person recorded: it stands for a person of its own.
    op.execute("UPDATE human_users SET person_id = username WHERE person_id IS NULL")
    with op.batch_alter_table("human_users") as batch:
        batch.alter_column("person_id", existing_type=sa.String(64), nullable=False)
        batch.create_index("ix_human_users_person_id", ["person_id"])


def downgrade() -> None:
    with op.batch_alter_table("human_users") as batch:
        batch.drop_index("ix_human_users_person_id")
        batch.drop_column("person_id")
