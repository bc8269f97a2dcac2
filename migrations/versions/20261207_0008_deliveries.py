"""deliveries (协同办案): deliveries, their events, the durable outbox, idempotency keys

The application role may update a delivery (status, deadline, answer, receipt) and the outbox
(attempts, lease); it may only read and append events and idempotency keys; it may delete
nothing (``gateway.migrate``'s grants).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.db import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("from_agency", sa.String(32), nullable=False),
        sa.Column("to_agency", sa.String(32), nullable=False),
        sa.Column("case_number", sa.String(128), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=True),
        sa.Column("answered_at", UTCDateTime(), nullable=True),
        sa.Column("decision", sa.String(16), nullable=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("operator_id", sa.String(64), nullable=True),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("receipt", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
    )
    op.create_index(
        "ix_deliveries_from_agency", "deliveries", ["from_agency", "created_at", "id"]
    )
    op.create_index("ix_deliveries_to_agency", "deliveries", ["to_agency", "created_at", "id"])
    op.create_index("ix_deliveries_case_number", "deliveries", ["case_number"])
    op.create_index("ix_deliveries_status_due_at", "deliveries", ["status", "due_at"])
    op.create_table(
        "delivery_events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("delivery_id", sa.String(32), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("type", sa.String(24), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("audit_index", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_delivery_events_delivery_id_deliveries"),
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_delivery_events")),
    )
    op.create_index(
        "ix_delivery_events_delivery_id", "delivery_events", ["delivery_id", "seq"]
    )
    op.create_table(
        "delivery_outbox",
        sa.Column("delivery_id", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.String(256), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_delivery_outbox_delivery_id_deliveries"),
        ),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_delivery_outbox")),
    )
    op.create_index("ix_delivery_outbox_due", "delivery_outbox", ["state", "next_attempt_at"])
    op.create_table(
        "delivery_idempotency",
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("request_sha256", sa.String(64), nullable=False),
        sa.Column("delivery_id", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_delivery_idempotency_delivery_id_deliveries"),
        ),
        sa.PrimaryKeyConstraint("client_id", "key", name=op.f("pk_delivery_idempotency")),
    )


def downgrade() -> None:
    op.drop_table("delivery_idempotency")
    op.drop_index("ix_delivery_outbox_due", table_name="delivery_outbox")
    op.drop_table("delivery_outbox")
    op.drop_index("ix_delivery_events_delivery_id", table_name="delivery_events")
    op.drop_table("delivery_events")
    op.drop_index("ix_deliveries_status_due_at", table_name="deliveries")
    op.drop_index("ix_deliveries_case_number", table_name="deliveries")
    op.drop_index("ix_deliveries_to_agency", table_name="deliveries")
    op.drop_index("ix_deliveries_from_agency", table_name="deliveries")
    op.drop_table("deliveries")
