"""conditional sharing: applications and grants (有条件共享)

The application role reads, inserts and updates these rows (gateway/migrate.py), never
deletes them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.db import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sharing_applications",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("requester_agency", sa.String(32), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("operator_id", sa.String(64), nullable=False),
        sa.Column("owner_agency", sa.String(32), nullable=False),
        sa.Column("resource", sa.String(64), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("record_ids", sa.Text(), nullable=True),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("case_number", sa.String(256), nullable=False),
        sa.Column("case_id", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("answered_at", UTCDateTime(), nullable=True),
        sa.Column("answered_by", sa.String(64), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("refusal_reason", sa.Text(), nullable=True),
        sa.Column("granted_days", sa.Integer(), nullable=True),
        sa.Column("grant_id", sa.String(36), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sharing_applications")),
    )
    op.create_index(
        "ix_sharing_applications_requester",
        "sharing_applications",
        ["requester_agency", "created_at"],
    )
    op.create_index(
        "ix_sharing_applications_owner", "sharing_applications", ["owner_agency", "created_at"]
    )
    op.create_table(
        "sharing_grants",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("application_id", sa.String(36), nullable=False),
        sa.Column("requester_agency", sa.String(32), nullable=False),
        sa.Column("owner_agency", sa.String(32), nullable=False),
        sa.Column("resource", sa.String(64), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("record_ids", sa.Text(), nullable=True),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("case_id", sa.String(128), nullable=False),
        sa.Column("case_number", sa.String(256), nullable=False),
        sa.Column("valid_from", UTCDateTime(), nullable=False),
        sa.Column("valid_until", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_by", sa.String(64), nullable=True),
        sa.Column("expiry_recorded", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["sharing_applications.id"],
            name=op.f("fk_sharing_grants_application_id_sharing_applications"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sharing_grants")),
    )
    op.create_index("ix_sharing_grants_live", "sharing_grants", ["revoked_at", "valid_until"])
    op.create_index("ix_sharing_grants_application", "sharing_grants", ["application_id"])


def downgrade() -> None:
    op.drop_index("ix_sharing_grants_application", table_name="sharing_grants")
    op.drop_index("ix_sharing_grants_live", table_name="sharing_grants")
    op.drop_table("sharing_grants")
    op.drop_index("ix_sharing_applications_owner", table_name="sharing_applications")
    op.drop_index("ix_sharing_applications_requester", table_name="sharing_applications")
    op.drop_table("sharing_applications")
