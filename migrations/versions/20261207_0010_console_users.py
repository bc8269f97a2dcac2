"""web console: people who sign in, their one-time authorization codes, console sessions

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.db import UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "human_users",
        sa.Column("username", sa.String(48), nullable=False),
        sa.Column("display_name", sa.String(128), nullable=False),
        sa.Column("agency_code", sa.String(32), nullable=False),
        sa.Column("scopes", sa.String(256), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("totp_secret", sa.String(128), nullable=True),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("username", name=op.f("pk_human_users")),
    )
    op.create_table(
        "authorization_codes",
        sa.Column("code_sha256", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("username", sa.String(48), nullable=False),
        sa.Column("redirect_uri", sa.String(512), nullable=False),
        sa.Column("code_challenge", sa.String(128), nullable=False),
        sa.Column("scopes", sa.String(256), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("code_sha256", name=op.f("pk_authorization_codes")),
    )
    op.create_table(
        "console_sessions",
        sa.Column("id_sha256", sa.String(64), nullable=False),
        sa.Column("username", sa.String(48), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id_sha256", name=op.f("pk_console_sessions")),
    )


def downgrade() -> None:
    op.drop_table("console_sessions")
    op.drop_table("authorization_codes")
    op.drop_table("human_users")
