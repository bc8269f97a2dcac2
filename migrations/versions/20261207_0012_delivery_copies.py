"""delivery copies (抄送): a delivery may be the copy of another

``deliveries.copy_of`` names the main delivery of which the row is a copy (NULL for a main
delivery). A copy is its own delivery (same kind and content, its own recipient, pushed by the
outbox, no answer, no deadline). The application role's grants on ``deliveries`` are unchanged
(SELECT, INSERT, UPDATE; ``gateway.migrate``).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("copy_of", sa.String(32), nullable=True))
        batch.create_foreign_key(
            op.f("fk_deliveries_copy_of_deliveries"), "deliveries", ["copy_of"], ["id"]
        )
        batch.create_index("ix_deliveries_copy_of", ["copy_of"])


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_copy_of")
        batch.drop_constraint(op.f("fk_deliveries_copy_of_deliveries"), type_="foreignkey")
        batch.drop_column("copy_of")
