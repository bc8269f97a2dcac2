"""Policy versions and publications in the database: the administered state of the lists.

A version is a whole policy set (the permissions, negative-list and test files), named
by its content hash. Publications are an append-only log; the latest names the set in
force. Workers follow it (see :mod:`gateway.policy.admin`), so a publish or rollback on
one worker reaches every worker within seconds, and each swaps the set whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

import orjson
from sqlalchemy import (
    BigInteger,
    CursorResult,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from gateway.db import Base, UTCDateTime, utcnow

__all__ = [
    "PolicyPublication",
    "PolicyRepository",
    "PolicyVersion",
    "PublicationKind",
    "VersionStatus",
]


class VersionStatus(StrEnum):
    CANDIDATE = "candidate"
    APPROVED = "approved"
    REJECTED = "rejected"


class PublicationKind(StrEnum):
    INITIAL = "initial"
    APPROVAL = "approval"
    ROLLBACK = "rollback"


class PolicyVersion(Base):
    __tablename__ = "policy_versions"

    version_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    author: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    files: Mapped[bytes] = mapped_column(LargeBinary)
    reviewer: Mapped[str | None] = mapped_column(String(64))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    review_comment: Mapped[str | None] = mapped_column(Text)

    def file_map(self) -> dict[str, str]:
        files: dict[str, str] = orjson.loads(self.files)
        return files


class PolicyPublication(Base):
    __tablename__ = "policy_publications"

    # INTEGER on SQLite: only an INTEGER PRIMARY KEY is its auto-incrementing rowid.
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    version_id: Mapped[str] = mapped_column(ForeignKey("policy_versions.version_id"))
    kind: Mapped[str] = mapped_column(String(16))
    published_by: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PolicyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def version(self, version_id: str) -> PolicyVersion | None:
        return self.session.get(PolicyVersion, version_id)

    def versions(self) -> Sequence[PolicyVersion]:
        return self.session.scalars(
            select(PolicyVersion).order_by(PolicyVersion.created_at.desc())
        ).all()

    def add_version(self, version: PolicyVersion) -> None:
        self.session.add(version)
        self.session.flush()

    def review(self, version_id: str, status: VersionStatus, reviewer: str, comment: str) -> bool:
        """Mark a candidate approved or rejected; False if it is no longer a candidate.

        One conditional UPDATE: of two reviewers racing (on any worker, either backend)
        exactly one wins, so a candidate is never published twice.
        """
        result = cast(
            CursorResult[Any],
            self.session.execute(
                update(PolicyVersion)
                .where(PolicyVersion.version_id == version_id)
                .where(PolicyVersion.status == str(VersionStatus.CANDIDATE))
                .values(
                    status=str(status),
                    reviewer=reviewer,
                    reviewed_at=utcnow(),
                    review_comment=comment,
                )
                .execution_options(synchronize_session=False)
            ),
        )
        return result.rowcount == 1

    def publish(self, version_id: str, kind: PublicationKind, by: str) -> PolicyPublication:
        publication = PolicyPublication(
            version_id=version_id, kind=str(kind), published_by=by, published_at=utcnow()
        )
        self.session.add(publication)
        self.session.flush()
        return publication

    def current(self) -> PolicyPublication | None:
        return self.session.scalars(
            select(PolicyPublication).order_by(PolicyPublication.seq.desc()).limit(1)
        ).first()

    def publications(self, limit: int = 100) -> Sequence[PolicyPublication]:
        return self.session.scalars(
            select(PolicyPublication).order_by(PolicyPublication.seq.desc()).limit(limit)
        ).all()
