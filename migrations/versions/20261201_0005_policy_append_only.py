"""policy tables append-only: proposals and reviews of their own, a linear publication log

A version row no longer changes when it is reviewed: proposals (candidate, rollback, the
initial import) and their reviews are rows of their own, and a publication names the one it
follows (unique). Every policy table refuses UPDATE, DELETE and TRUNCATE. A version records
the SHA-256 of its stored files, checked when it is loaded.

Existing rows: each version gets the proposal it was (the import from files an ``initial``
one, which is **not** reviewed: nobody reviewed the files; a second administrator approves
it, or ``gateway db upgrade --policy-files-reviewed`` records that the deployment did), with
its review if it had one. Candidates still open have no recorded base and must be
resubmitted (approving them answers 409 stale-candidate).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gateway.db import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("policy_versions", "policy_proposals", "policy_reviews", "policy_publications")
SEQUENCE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
SYSTEM_AUTHOR = "system:files"


def _append_only(postgres: bool) -> None:
    if postgres:
        op.execute(
            """
            CREATE FUNCTION policy_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              RAISE EXCEPTION 'table % is append-only', TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
            END $$;
            """
        )
    for table in TABLES:
        if postgres:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION policy_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION policy_append_only()"
            )
        else:
            for event in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )


def _drop_append_only(postgres: bool) -> None:
    for table in TABLES:
        if postgres:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        else:
            for event in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{event}")
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS policy_append_only()")


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    proposals = op.create_table(
        "policy_proposals",
        sa.Column("proposal_id", SEQUENCE, autoincrement=True, nullable=False),
        sa.Column("version_id", sa.String(80), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("base_version_id", sa.String(80), nullable=True),
        sa.Column("proposed_by", sa.String(64), nullable=False),
        sa.Column("proposed_at", UTCDateTime(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["policy_versions.version_id"],
            name=op.f("fk_policy_proposals_version_id_policy_versions"),
        ),
        sa.PrimaryKeyConstraint("proposal_id", name=op.f("pk_policy_proposals")),
    )
    reviews = op.create_table(
        "policy_reviews",
        sa.Column("proposal_id", SEQUENCE, nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("reviewer", sa.String(64), nullable=False),
        sa.Column("reviewed_at", UTCDateTime(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["policy_proposals.proposal_id"],
            name=op.f("fk_policy_reviews_proposal_id_policy_proposals"),
        ),
        sa.PrimaryKeyConstraint("proposal_id", name=op.f("pk_policy_reviews")),
    )
    # NOT NULL with a placeholder default, filled below: SQLite cannot alter a column later.
    op.add_column(
        "policy_versions",
        sa.Column("content_sha256", sa.String(64), nullable=False, server_default=""),
    )
    op.add_column(
        "policy_publications",
        sa.Column("previous_seq", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.add_column("policy_publications", sa.Column("proposal_id", SEQUENCE, nullable=True))

    versions = bind.execute(
        sa.text(
            "SELECT version_id, created_at, author, comment, status, files, reviewer, "
            "reviewed_at, review_comment FROM policy_versions ORDER BY created_at"
        )
    ).all()
    candidate_proposal: dict[str, int] = {}
    for number, row in enumerate(versions, start=1):
        bind.execute(
            sa.text("UPDATE policy_versions SET content_sha256 = :h WHERE version_id = :v"),
            {"h": hashlib.sha256(bytes(row.files)).hexdigest(), "v": row.version_id},
        )
        initial = row.author == SYSTEM_AUTHOR
        bind.execute(
            proposals.insert().values(
                proposal_id=number,
                version_id=row.version_id,
                kind="initial" if initial else "candidate",
                base_version_id=None,
                proposed_by=row.author,
                proposed_at=row.created_at,
                comment=row.comment,
            )
        )
        candidate_proposal[row.version_id] = number
        if not initial and row.status in ("approved", "rejected") and row.reviewer:
            bind.execute(
                reviews.insert().values(
                    proposal_id=number,
                    verdict=row.status,
                    reviewer=row.reviewer,
                    reviewed_at=row.reviewed_at or row.created_at,
                    comment=row.review_comment or "",
                )
            )
    if postgres and versions:
        op.execute(
            "SELECT setval(pg_get_serial_sequence('policy_proposals', 'proposal_id'), "
            f"{len(versions)})"
        )
    previous = 0
    for row in bind.execute(
        sa.text("SELECT seq, version_id, kind FROM policy_publications ORDER BY seq")
    ).all():
        bind.execute(
            sa.text(
                "UPDATE policy_publications SET previous_seq = :p, proposal_id = :q WHERE seq = :s"
            ),
            {
                "p": previous,
                "q": candidate_proposal.get(row.version_id) if row.kind == "approval" else None,
                "s": row.seq,
            },
        )
        previous = row.seq

    if postgres:
        op.alter_column("policy_versions", "content_sha256", server_default=None)
        op.alter_column("policy_publications", "previous_seq", server_default=None)
    # Plain ALTER TABLE … DROP COLUMN (SQLite 3.35+): a batch copy of policy_versions would
    # have to drop a table other tables reference.
    for column in ("status", "reviewer", "reviewed_at", "review_comment"):
        op.drop_column("policy_versions", column)
    op.create_index(
        "uq_policy_publications_previous_seq", "policy_publications", ["previous_seq"], unique=True
    )
    _append_only(postgres)


def downgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    _drop_append_only(postgres)
    op.add_column(
        "policy_versions",
        sa.Column("status", sa.String(16), nullable=False, server_default="candidate"),
    )
    op.add_column("policy_versions", sa.Column("reviewer", sa.String(64), nullable=True))
    op.add_column("policy_versions", sa.Column("reviewed_at", UTCDateTime(), nullable=True))
    op.add_column("policy_versions", sa.Column("review_comment", sa.Text(), nullable=True))
    for row in bind.execute(
        sa.text(
            "SELECT p.version_id, r.verdict, r.reviewer, r.reviewed_at, r.comment "
            "FROM policy_proposals p LEFT JOIN policy_reviews r ON r.proposal_id = p.proposal_id "
            "ORDER BY p.proposal_id"
        )
    ).all():
        bind.execute(
            sa.text(
                "UPDATE policy_versions SET status = :s, reviewer = :r, reviewed_at = :t, "
                "review_comment = :c WHERE version_id = :v"
            ),
            {
                "s": row.verdict or "candidate",
                "r": row.reviewer,
                "t": row.reviewed_at,
                "c": row.comment,
                "v": row.version_id,
            },
        )
    # Published versions were approved (the import and the freeze set included).
    bind.execute(
        sa.text(
            "UPDATE policy_versions SET status = 'approved' "
            "WHERE version_id IN (SELECT version_id FROM policy_publications)"
        )
    )
    if postgres:
        op.alter_column("policy_versions", "status", server_default=None)
    op.drop_index("uq_policy_publications_previous_seq", table_name="policy_publications")
    op.drop_column("policy_publications", "proposal_id")
    op.drop_column("policy_publications", "previous_seq")
    op.drop_column("policy_versions", "content_sha256")
    op.drop_table("policy_reviews")
    op.drop_table("policy_proposals")
